/* Drain and readiness. A drain refuses new visits in session.c (before a
 * token's jti is spent) and is ended here, from the main loop; the orderly
 * shutdown that follows is main.c's. */
#include "lifecycle.h"

#include <jansson.h>

#include "events.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/log.h"
#include "relays.h"
#include "server.h"
#include "session.h"

void lifecycle_drain(struct signal_server *srv)
{
    unsigned left = sessions_count(srv->sessions);

    if (srv->draining)
        return;
    srv->draining = true;
    srv->drain_started_ms = clock_mono_ms();
    if (srv->cluster != NULL) {
        unsigned n = session_cluster_drain(srv);

        log_info("draining: %u visit(s) handed on to the other replicas of the cluster", n);
        events_drain(srv, n, 0);
        return;
    }
    log_info("draining: no new visits; %u visit(s) go on, for at most %u s (a second SIGTERM "
             "stops at once)",
             left, srv->cfg.daemon.drain_timeout_s);
    events_drain(srv, left, srv->cfg.daemon.drain_timeout_s);
}

bool lifecycle_drain_over(struct signal_server *srv, uint64_t now_ms)
{
    if (!srv->draining)
        return false;
    if (sessions_count(srv->sessions) == 0) {
        log_info("drained: no visit is left");
        return true;
    }
    if (now_ms - srv->drain_started_ms >= (uint64_t)srv->cfg.daemon.drain_timeout_s * 1000u) {
        log_warn("drain-timeout: ending the %u visit(s) left", sessions_count(srv->sessions));
        return true;
    }
    return false;
}

uint64_t lifecycle_drain_left_s(const struct signal_server *srv, uint64_t now_ms)
{
    uint64_t end = srv->drain_started_ms + (uint64_t)srv->cfg.daemon.drain_timeout_s * 1000u;

    if (!srv->draining || now_ms >= end)
        return 0;
    return (end - now_ms + 999) / 1000;
}

const char *lifecycle_unready(struct signal_server *srv)
{
    if (srv->draining)
        return "draining";
    switch (relays_readiness(srv->relays)) {
    case RELAYS_READY:
        return NULL;
    case RELAYS_STARTING:
        return "starting";
    case RELAYS_NONE:
    default:
        return "no relay";
    }
}

char *lifecycle_health_json(struct signal_server *srv)
{
    json_t *relays = relays_status(srv->relays), *doc, *r;
    int healthy = 0;
    char *text;
    size_t i;

    json_array_foreach(relays, i, r)
    {
        healthy += json_is_true(json_object_get(r, "healthy"));
    }
    json_decref(relays);
    doc = json_pack("{s:s,s:i,s:i,s:b}", "status", "ok", "relays_healthy", healthy, "sessions",
                    (int)sessions_count(srv->sessions), "draining", srv->draining);
    text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}
