/* Prometheus names follow docs/operations.md, which is the contract with
 * the alert rules and dashboards in deploy/. */
#include "ops.h"

#include <stdio.h>
#include <string.h>

#include "quietroom/ops/metrics.h"
#include "quietroom/ops/metrics_audit.h"
#include "quietroom/ops/opshttp.h"
#include "stats.h"

#ifndef QR_VERSION
#define QR_VERSION "dev"
#endif

#define OPS_PROM "text/plain; version=0.0.4; charset=utf-8"

/* Counters that map one to one onto a metric. */
static const struct {
    enum stat_id id;
    const char *name;
    const char *help;
} ops_counters[] = {
    {STAT_RX_PACKETS, "quietroom_relay_packets_received_total", "Datagrams received."},
    {STAT_RX_BYTES, "quietroom_relay_bytes_received_total", "Bytes of datagrams received."},
    {STAT_FWD_PACKETS, "quietroom_relay_packets_forwarded_total",
     "DTLS, RTP and RTCP datagrams sent to a peer leg."},
    {STAT_FWD_BYTES, "quietroom_relay_bytes_forwarded_total", "Bytes forwarded to peer legs."},
    {STAT_LEGS_BOUND, "quietroom_relay_legs_bound_total", "Legs bound by a nominated check."},
    {STAT_LEGS_MOVED, "quietroom_relay_legs_moved_total", "Legs moved to a new address."},
    {STAT_LEGS_SUPERSEDED, "quietroom_relay_legs_superseded_total",
     "Legs replaced at their address by another leg (ICE restart)."},
    {STAT_LEGS_KEPT, "quietroom_relay_legs_kept_total",
     "Nominated checks on a less preferred path that left a leg where it was (alive)."},
    {STAT_EARLY_HELD, "quietroom_relay_early_dtls_held_total",
     "DTLS packets held for a peer leg not yet bound."},
    {STAT_EARLY_FLUSHED, "quietroom_relay_early_dtls_flushed_total",
     "Held DTLS packets delivered when the peer leg bound."},
    {STAT_RTP_UNTRACKED, "quietroom_relay_rtp_untracked_packets_total",
     "RTP packets of SSRCs beyond the two tracked per leg."},
    {STAT_KFWD_USERSPACE, "quietroom_relay_kernel_path_userspace_packets_total",
     "Packets of kernel-path legs forwarded by a socket instead (IP options, fragments, GSO, "
     "in flight when the flow was installed)."},
};

/* The stun counters by result: the "stun" group of stat_names. */
static void ops__labelled(struct metrics *m, const struct stats_view *v, const char *group,
                          const char *name, const char *label, const char *help)
{
    metrics_family(m, name, "counter", help);
    for (int i = 0; i < STAT_COUNT; i++) {
        if (strcmp(stat_names[i].group, group) == 0 && i != STAT_STUN_REQUESTS)
            metrics_u64(m, name, label, stat_names[i].name, v->sum[i]);
    }
}

static void ops__workers(struct metrics *m, const struct relay *r, const struct stats_view *v)
{
    char w[16];

    metrics_gauge(m, "quietroom_relay_workers", "Forwarding threads.", v->n_workers);
    metrics_family(m, "quietroom_relay_workers_reason", "gauge",
                   "Always 1; why the relay runs that many workers (configured, affinity, "
                   "cgroup_quota).");
    metrics_u64(m, "quietroom_relay_workers_reason", "reason", cpus_reason_name(r->cpus.reason),
                1);
    metrics_family(m, "quietroom_relay_worker_busy_ratio", "gauge",
                   "Share of the last second the worker spent handling packets.");
    for (unsigned i = 0; i < v->n_workers; i++) {
        snprintf(w, sizeof(w), "%u", i);
        metrics_double(m, "quietroom_relay_worker_busy_ratio", "worker", w, v->busy_ratio[i]);
    }
    metrics_family(m, "quietroom_relay_worker_busy_seconds_total", "counter",
                   "Time the worker spent handling packets.");
    for (unsigned i = 0; i < v->n_workers; i++) {
        snprintf(w, sizeof(w), "%u", i);
        metrics_double(m, "quietroom_relay_worker_busy_seconds_total", "worker", w,
                       (double)v->busy_ns[i] / 1e9);
    }
}

/* Media split by transport: the TCP counters, and UDP as the rest. */
static void ops__transport(struct metrics *m, const struct relay *r, const struct stats_view *v)
{
    static const struct {
        const char *name, *help;
        enum stat_id all, tcp;
    } fam[] = {
        {"quietroom_relay_transport_packets_received_total",
         "Packets received (datagrams, or frames on ICE-TCP), by transport.", STAT_RX_PACKETS,
         STAT_TCP_RX_PACKETS},
        {"quietroom_relay_transport_bytes_received_total", "Bytes received, by transport.",
         STAT_RX_BYTES, STAT_TCP_RX_BYTES},
        {"quietroom_relay_transport_packets_forwarded_total",
         "Packets forwarded to peer legs, by the peer leg's transport.", STAT_FWD_PACKETS,
         STAT_TCP_FWD_PACKETS},
        {"quietroom_relay_transport_bytes_forwarded_total",
         "Bytes forwarded to peer legs, by the peer leg's transport.", STAT_FWD_BYTES,
         STAT_TCP_FWD_BYTES},
    };

    for (size_t i = 0; i < sizeof(fam) / sizeof(fam[0]); i++) {
        metrics_family(m, fam[i].name, "counter", fam[i].help);
        metrics_u64(m, fam[i].name, "transport", "udp", v->sum[fam[i].all] - v->sum[fam[i].tcp]);
        metrics_u64(m, fam[i].name, "transport", "tcp", v->sum[fam[i].tcp]);
    }
    metrics_family(m, "quietroom_relay_tcp_connections", "gauge",
                   "ICE-TCP connections open now, and those of them whose leg is not bound to "
                   "them (yet).");
    metrics_u64(m, "quietroom_relay_tcp_connections", "state", "open",
                atomic_load(&r->tcp_open));
    metrics_u64(m, "quietroom_relay_tcp_connections", "state", "waiting",
                atomic_load(&r->tcp_waiting));
    ops__labelled(m, v, "tcp_connections", "quietroom_relay_tcp_connections_total", "result",
                  "ICE-TCP connections accepted, or refused at a limit.");
    ops__labelled(m, v, "tcp_closed", "quietroom_relay_tcp_closed_total", "reason",
                  "ICE-TCP connections the relay closed or saw closed, by reason.");
}

static void ops__usage(struct metrics *m, const struct stats_view *v)
{
    metrics_gauge(m, "quietroom_relay_sessions_active", "Sessions with at least one active link.",
                  v->sessions);
    metrics_gauge(m, "quietroom_relay_links_active", "Active links.", v->usage.links);
    metrics_gauge(m, "quietroom_relay_links_capacity", "Link slots (max-links).", v->capacity);
    metrics_gauge(m, "quietroom_relay_legs_active", "Bound legs.", v->usage.legs_bound);
    metrics_gauge(m, "quietroom_relay_revocations_active", "Revoked sessions remembered.",
                  v->usage.revocations);
    metrics_gauge(m, "quietroom_relay_early_dtls_queued", "DTLS packets held now.",
                  v->usage.early_held);
}

static void ops__loss(struct metrics *m, struct relay *r, const struct stats_view *v)
{
    uint32_t cumulative = 0;
    char le[32];

    metrics_histogram_write(m, "quietroom_relay_rtp_loss_ratio",
                            "Loss of each RTP stream over its life, observed when its leg goes "
                            "down.",
                            &r->loss);
    metrics_family(m, "quietroom_relay_rtp_active_streams", "gauge",
                   "Active RTP streams whose loss so far is at most loss_le.");
    for (unsigned b = 0; b <= STATS_LOSS_BOUNDS; b++) {
        cumulative += v->loss_streams[b];
        if (b < STATS_LOSS_BOUNDS)
            snprintf(le, sizeof(le), "%g", stats_loss_bounds[b]);
        else
            snprintf(le, sizeof(le), "+Inf");
        metrics_u64(m, "quietroom_relay_rtp_active_streams", "loss_le", le, cumulative);
    }
}

/* The kernel path; its packets are in the received and forwarded totals
 * too, so dashboards built on those keep working. */
static void ops__kfwd(struct metrics *m, const struct stats_view *v)
{
    metrics_gauge(m, "quietroom_relay_kernel_path_active",
                  "1 while the kernel path (kernel-forward) forwards bound legs.", v->kfwd_active);
    if (!v->kfwd_active && v->kfwd_mode == KFWD_AUTO) {
        metrics_family(m, "quietroom_relay_kernel_path_fallback", "gauge",
                       "1 when kernel-forward auto fell back to the sockets; why, as label.");
        metrics_u64(m, "quietroom_relay_kernel_path_fallback", "reason",
                    kfwd_reason_name(v->kfwd_reason), 1);
    }
    metrics_gauge(m, "quietroom_relay_kernel_path_flows",
                  "Flows in the kernel path now (two per link it forwards).", v->kfwd.flows);
    metrics_counter(m, "quietroom_relay_kernel_path_packets_total",
                    "Packets the kernel path forwarded.", v->kfwd.packets);
    metrics_counter(m, "quietroom_relay_kernel_path_bytes_total",
                    "UDP payload bytes the kernel path forwarded.", v->kfwd.bytes);
    metrics_counter(m, "quietroom_relay_kernel_path_flow_errors_total",
                    "Flows the kernel path could not install; their links stayed on the sockets.",
                    v->kfwd.flow_errors);
    metrics_counter(m, "quietroom_relay_kernel_path_bypassed_total",
                    "Legs returned to the sockets because their packets reached the relay by an "
                    "interface without the program.",
                    v->kfwd.bypassed);
}

static void ops__metrics(void *ctx, const char *query, struct ops_response *out)
{
    struct relay *r = ctx;
    struct stats_view v;
    struct metrics m;

    (void)query;
    stats_view(r, &v);
    metrics_init(&m);
    metrics_family(&m, "quietroom_relay_build_info", "gauge", "Always 1; the version as label.");
    metrics_u64(&m, "quietroom_relay_build_info", "version", QR_VERSION, 1);
    metrics_gauge(&m, "quietroom_relay_ready", "1 while accepting new sessions.", v.ready);
    metrics_gauge(&m, "quietroom_relay_draining", "1 after the first SIGTERM.", v.draining);
    ops__workers(&m, r, &v);
    for (size_t i = 0; i < sizeof(ops_counters) / sizeof(ops_counters[0]); i++)
        metrics_counter(&m, ops_counters[i].name, ops_counters[i].help, v.sum[ops_counters[i].id]);
    ops__labelled(&m, &v, "dropped", "quietroom_relay_packets_dropped_total", "reason",
                  "Datagrams dropped, by reason.");
    ops__labelled(&m, &v, "stun", "quietroom_relay_stun_requests_total", "result",
                  "STUN messages by what the relay did with them.");
    ops__transport(&m, r, &v);
    ops__usage(&m, &v);
    ops__loss(&m, r, &v);
    ops__kfwd(&m, &v);
    if (v.has_audit)
        metrics_audit(&m, "quietroom_relay", &v.audit, v.has_ship ? &v.ship : NULL);
    metrics_process(&m);
    out->status = 200;
    out->content_type = OPS_PROM;
    if ((out->body = metrics_take(&m, &out->len)) == NULL)
        ops_reply(out, 500, NULL, "out of memory\n");
}

static void ops__healthz(void *ctx, const char *query, struct ops_response *out)
{
    struct relay *r = ctx;

    (void)query;
    if (atomic_load(&r->healthy))
        ops_reply(out, 200, NULL, "ok\n");
    else
        ops_reply(out, 503, NULL, "workers stalled\n");
}

static void ops__readyz(void *ctx, const char *query, struct ops_response *out)
{
    struct relay *r = ctx;

    (void)query;
    if (atomic_load(&r->draining))
        ops_reply(out, 503, NULL, "draining\n");
    else if (!atomic_load(&r->healthy))
        ops_reply(out, 503, NULL, "workers stalled\n");
    else
        ops_reply(out, 200, NULL, "ready\n");
}

static const struct ops_route ops_routes[] = {
    {"/metrics", ops__metrics, false},
    {"/healthz", ops__healthz, true},
    {"/readyz", ops__readyz, true},
};

int ops_start(struct relay *r, char *err, size_t errlen)
{
    if (!r->cfg.daemon.has_ops)
        return 0;
    if (r->cfg.daemon.ops_token_file[0] != '\0' &&
        ops_token_load(r->cfg.daemon.ops_token_file, r->ops_token, err, errlen) != 0)
        return -1;
    r->ops_site = (struct ops_site){ops_routes, sizeof(ops_routes) / sizeof(ops_routes[0]), r,
                                    r->ops_token[0] ? r->ops_token : NULL};
    r->ops = ops_http_start(&r->cfg.daemon.ops_listen, &r->ops_site, err, errlen);
    return r->ops != NULL ? 0 : -1;
}

int ops_port(const struct relay *r)
{
    return r->ops ? ops_http_port(r->ops) : 0;
}

void ops_stop(struct relay *r)
{
    ops_http_stop(r->ops);
    r->ops = NULL;
}
