/* Prometheus text for signaling. Label values are the server's own codes
 * and the operator's relay names; every labelled family that has a fixed
 * set of values shows all of them from the start, so that rate() works
 * before the first event. */
#include "exposition.h"

#include <stdlib.h>
#include <string.h>

#include "lifecycle.h"
#include "quietroom/audit/audit.h"
#include "quietroom/ops/metrics_audit.h"
#include "relays.h"
#include "server.h"
#include "session.h"

#ifndef QR_VERSION
#define QR_VERSION "dev"
#endif

static const char *const exposition_end_reasons[] = {
    "ended_by_clinician", "idle_timeout", "max_length", "server_shutdown", "empty",
};

static const char *const exposition_move_reasons[] = {
    "relay_lost", "relay_draining", "relay_unknown", "relay_available",
};

static const char *const exposition_check_results[] = {"started", "good", "weak", "none"};

/* A labelled counter family: the fixed values first (0 if never seen),
 * then any other value seen. */

static void exposition__labelled(struct metrics *m, const char *name, const char *help,
                                 const char *label, const struct stats_labelled *t,
                                 const char *const *fixed, unsigned n_fixed)
{
    metrics_family(m, name, "counter", help);
    for (unsigned i = 0; i < n_fixed; i++)
        metrics_u64(m, name, label, fixed[i], stats_get(t, fixed[i]));
    for (unsigned i = 0; i < t->n; i++) {
        bool listed = false;

        for (unsigned j = 0; j < n_fixed && !listed; j++)
            listed = strcmp(fixed[j], t->v[i].label) == 0;
        if (!listed)
            metrics_u64(m, name, label, t->v[i].label, t->v[i].count);
    }
}

static void exposition__sessions(struct signal_server *srv, struct metrics *m)
{
    const struct signal_stats *st = &srv->stats;
    static const char *const auth_fixed[] = {"ok", "resumed", "rejoined", "link_checked"};
    struct sessions_census c;

    sessions_census(srv->sessions, &c);
    metrics_gauge(m, "quietroom_signal_ws_connections", "Open WebSockets.", (double)st->ws_open);
    metrics_counter(m, "quietroom_signal_ws_connections_total", "WebSockets opened.",
                    st->ws_opened);
    exposition__labelled(m, "quietroom_signal_auth_total",
                         "Authentications by result: ok, resumed, rejoined (a link's seat taken "
                         "back), link_checked (verified only), or the refusal's error code.",
                         "result", &st->auth, auth_fixed, 4);
    metrics_counter(m, "quietroom_signal_messages_total", "WebSocket messages received.",
                    st->messages);
    exposition__labelled(m, "quietroom_signal_messages_rejected_total",
                         "Messages refused, by error code.", "reason", &st->rejected, NULL, 0);
    metrics_gauge(m, "quietroom_signal_sessions_active", "Visits in progress.", (double)c.sessions);
    metrics_counter(m, "quietroom_signal_sessions_total", "Visits started.",
                    st->sessions_started);
    exposition__labelled(m, "quietroom_signal_sessions_ended_total", "Visits ended, by reason.",
                         "reason", &st->ended, exposition_end_reasons,
                         sizeof(exposition_end_reasons) / sizeof(exposition_end_reasons[0]));
    exposition__labelled(m, "quietroom_signal_media_moves_total",
                         "Media pairs moved off a relay (relay_lost, relay_draining, "
                         "relay_unknown) or placed on one after waiting (relay_available).",
                         "reason", &st->media_moves, exposition_move_reasons,
                         sizeof(exposition_move_reasons) / sizeof(exposition_move_reasons[0]));
    metrics_gauge(m, "quietroom_signal_media_pairs_waiting",
                  "Media pairs waiting for a relay (none was ready when they were made or moved).",
                  (double)c.pairs_waiting);
    metrics_family(m, "quietroom_signal_participants_connected", "gauge",
                   "Participants with an open connection, by role.");
    for (int r = 0; r < ROLE_COUNT; r++)
        metrics_u64(m, "quietroom_signal_participants_connected", "role", role_name((enum role)r),
                    c.connected[r]);
    metrics_gauge(m, "quietroom_signal_waiting_room_size",
                  "Participants waiting to be admitted.", (double)c.waiting);
    metrics_histogram_write(m, "quietroom_signal_session_setup_seconds",
                            "From two people being brought together to the answer of their "
                            "first offer/answer exchange.",
                            &st->setup);
    metrics_counter(m, "quietroom_signal_sdp_rewritten_total",
                    "Offers and answers rewritten to the relay.", st->sdp_rewritten);
    metrics_counter(m, "quietroom_signal_candidates_dropped_total",
                    "Browser candidates dropped (never forwarded).", st->candidates_dropped);
    exposition__labelled(m, "quietroom_signal_connection_checks_total",
                         "Connection checks through a relay: started, and results by verdict "
                         "(good, weak, none).",
                         "result", &st->checks, exposition_check_results,
                         sizeof(exposition_check_results) / sizeof(exposition_check_results[0]));
    metrics_counter(m, "quietroom_signal_waiting_notices_total",
                    "Waiting-room messages from clinicians passed on (never stored).",
                    st->notices);
}

static void exposition__store(struct signal_server *srv, struct metrics *m)
{
    static const char *const ops[] = {"claim", "save", "forget", "unreadable"};

    metrics_counter(m, "quietroom_signal_store_writes_total",
                    "Visit records written to the state store.", srv->stats.store_writes);
    exposition__labelled(m, "quietroom_signal_store_failures_total",
                         "State store operations that failed, by operation (claim, save, "
                         "forget, encode; unreadable and no_room: records not loaded).",
                         "op", &srv->stats.store_failures, ops, 4);
    metrics_counter(m, "quietroom_signal_cluster_takeovers_total",
                    "Visits this replica took over from the cluster's store (their owner died, "
                    "or handed them on).",
                    srv->stats.takeovers);
    metrics_counter(m, "quietroom_signal_cluster_visits_lost_total",
                    "Visits another replica took from this one (its lease lapsed while it ran "
                    "them).",
                    srv->stats.lost_visits);
    metrics_counter(m, "quietroom_signal_cluster_messages_dropped_total",
                    "Messages from other replicas dropped (not JSON, or the inbox was full).",
                    session_cluster_dropped(srv));
}

static void exposition__relays(struct signal_server *srv, struct metrics *m)
{
    unsigned n = relays_count(srv->relays);
    struct relays_view *v = calloc(n ? n : 1, sizeof(*v));

    if (v == NULL) {
        m->failed = true;
        return;
    }
    for (unsigned i = 0; i < n; i++)
        relays_view(srv->relays, i, &v[i]);
    metrics_family(m, "quietroom_signal_relay_up", "gauge",
                   "1 if the relay's control connection is up and answering.");
    for (unsigned i = 0; i < n; i++)
        metrics_u64(m, "quietroom_signal_relay_up", "relay", v[i].name, v[i].up);
    metrics_family(m, "quietroom_signal_relay_draining", "gauge", "1 if the relay reports a drain.");
    for (unsigned i = 0; i < n; i++)
        metrics_u64(m, "quietroom_signal_relay_draining", "relay", v[i].name,
                    v[i].up && v[i].st.draining == RELAYSTAT_YES);
    free(v);
}

static void exposition__audit(struct signal_server *srv, struct metrics *m)
{
    struct audit_counters a;
    struct audit_ship_counters s;

    if (srv->audit == NULL)
        return;
    audit_get_counters(srv->audit, &a);
    metrics_audit(m, "quietroom_signal", &a,
                  audit_get_ship_counters(srv->audit, &s) ? &s : NULL);
}

void exposition_write(struct signal_server *srv, struct metrics *m)
{
    metrics_family(m, "quietroom_signal_build_info", "gauge", "Always 1; the version as a label.");
    metrics_u64(m, "quietroom_signal_build_info", "version", QR_VERSION, 1);
    metrics_gauge(m, "quietroom_signal_ready", "1 while accepting new visits.",
                  lifecycle_unready(srv) == NULL);
    metrics_gauge(m, "quietroom_signal_draining", "1 after the first SIGTERM.", srv->draining);
    exposition__sessions(srv, m);
    exposition__store(srv, m);
    exposition__relays(srv, m);
    exposition__audit(srv, m);
    metrics_process(m);
}
