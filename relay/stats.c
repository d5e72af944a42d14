/* Reading counters: sums over workers, taken without stopping anyone. The
 * per-session view carries counters and RTP statistics, never addresses. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/hmac.h"
#include "relay.h"
#include "worker.h"

#ifndef QR_VERSION
#define QR_VERSION "dev"
#endif

const struct stat_name stat_names[STAT_COUNT] = {
    [STAT_RX_PACKETS] = {"packets", "received"},
    [STAT_RX_BYTES] = {"bytes", "received"},
    [STAT_FWD_PACKETS] = {"packets", "forwarded"},
    [STAT_FWD_BYTES] = {"bytes", "forwarded"},
    [STAT_STUN_REQUESTS] = {"stun", "requests"},
    [STAT_STUN_SUCCESS] = {"stun", "success"},
    [STAT_STUN_BAD_REQUEST] = {"stun", "bad_request"},
    [STAT_STUN_UNAUTHENTICATED] = {"stun", "unauthenticated"},
    [STAT_STUN_UNKNOWN_ATTRIBUTE] = {"stun", "unknown_attribute"},
    [STAT_STUN_ROLE_CONFLICT] = {"stun", "role_conflict"},
    [STAT_STUN_IGNORED_CREDENTIALS] = {"stun", "ignored_credentials"},
    [STAT_STUN_IGNORED_EXPIRED] = {"stun", "ignored_expired"},
    [STAT_STUN_IGNORED_REVOKED] = {"stun", "ignored_revoked"},
    [STAT_STUN_IGNORED_DRAINING] = {"stun", "ignored_draining"},
    [STAT_STUN_IGNORED_OTHER] = {"stun", "ignored_other"},
    [STAT_STUN_IGNORED_FORGED] = {"stun", "ignored_forged"},
    [STAT_STUN_IGNORED_V1] = {"stun", "ignored_v1"},
    [STAT_STUN_ERRORS_LIMITED] = {"stun", "errors_rate_limited"},
    [STAT_LEGS_BOUND] = {"legs", "binds"},
    [STAT_LEGS_MOVED] = {"legs", "moves"},
    [STAT_LEGS_SUPERSEDED] = {"legs", "superseded"},
    [STAT_LEGS_KEPT] = {"legs", "kept"},
    [STAT_RTP_UNTRACKED] = {"rtp", "untracked"},
    [STAT_KFWD_USERSPACE] = {"kernel_path", "userspace_packets"},
    [STAT_EARLY_HELD] = {"early_dtls", "held"},
    [STAT_EARLY_FLUSHED] = {"early_dtls", "flushed"},
    [STAT_DROP_MALFORMED] = {"dropped", "malformed"},
    [STAT_DROP_TRUNCATED] = {"dropped", "truncated"},
    [STAT_DROP_PROTOCOL] = {"dropped", "protocol"},
    [STAT_DROP_UNBOUND] = {"dropped", "unbound"},
    [STAT_DROP_INACTIVE] = {"dropped", "inactive"},
    [STAT_DROP_PEER_UNBOUND] = {"dropped", "peer_unbound"},
    [STAT_DROP_EARLY_FULL] = {"dropped", "early_full"},
    [STAT_DROP_AMPLIFICATION] = {"dropped", "amplification"},
    [STAT_DROP_TABLE_FULL] = {"dropped", "table_full"},
    [STAT_DROP_SEND_FAILED] = {"dropped", "send_failed"},
    [STAT_TCP_RX_PACKETS] = {"tcp", "packets_received"},
    [STAT_TCP_RX_BYTES] = {"tcp", "bytes_received"},
    [STAT_TCP_FWD_PACKETS] = {"tcp", "packets_forwarded"},
    [STAT_TCP_FWD_BYTES] = {"tcp", "bytes_forwarded"},
    [STAT_TCP_HANDED_OVER] = {"tcp", "handed_over"},
    [STAT_TCP_ACCEPTED] = {"tcp_connections", "accepted"},
    [STAT_TCP_REFUSED_FULL] = {"tcp_connections", "refused_full"},
    [STAT_TCP_REFUSED_WAITING] = {"tcp_connections", "refused_waiting"},
    [STAT_TCP_REFUSED_ERROR] = {"tcp_connections", "refused_error"},
    [STAT_TCP_CLOSED_NO_CHECK] = {"tcp_closed", "no_check"},
    [STAT_TCP_CLOSED_NOT_BOUND] = {"tcp_closed", "not_bound"},
    [STAT_TCP_CLOSED_BAD_FIRST] = {"tcp_closed", "bad_first_frame"},
    [STAT_TCP_CLOSED_BAD_FRAME] = {"tcp_closed", "bad_frame"},
    [STAT_TCP_CLOSED_CONSENT] = {"tcp_closed", "consent"},
    [STAT_TCP_CLOSED_UNBOUND] = {"tcp_closed", "leg_unbound"},
    [STAT_TCP_CLOSED_PEER] = {"tcp_closed", "peer"},
    [STAT_TCP_CLOSED_ERROR] = {"tcp_closed", "error"},
    [STAT_TCP_OTHER_LEG] = {"stun", "ignored_other_leg"},
    [STAT_TCP_DROP_SLOW] = {"dropped", "tcp_slow_reader"},
    [STAT_TCP_DROP_HANDOFF] = {"dropped", "tcp_handoff_full"},
    [STAT_TCP_DROP_GONE] = {"dropped", "tcp_connection_gone"},
    [STAT_BUSY_NS] = {"workers_busy", "ns"},
};

static const char *const stats_states[] = {
    [LINK_FREE] = "free",     [LINK_ACTIVE] = "active", [LINK_REVOKED] = "revoked",
    [LINK_EXPIRED] = "expired", [LINK_CLOSED] = "closed",
};

static json_t *stats__group(json_t *root, const char *name)
{
    json_t *g = json_object_get(root, name);

    if (g == NULL) {
        g = json_object();
        json_object_set_new(root, name, g);
    }
    return g;
}

const double stats_loss_bounds[STATS_LOSS_BOUNDS] = {0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2};

unsigned stats_loss_bucket(double loss)
{
    unsigned b = 0;

    while (b < STATS_LOSS_BOUNDS && loss > stats_loss_bounds[b])
        b++;
    return b;
}

struct stats__scan {
    struct stats_view *v;
    uint64_t *keys;          /* one per active link: kid and session key */
    uint32_t n_keys, cap;
};

static void stats__scan_link(void *arg, const struct link *k)
{
    struct stats__scan *sc = arg;
    uint64_t key;

    memcpy(&key, k->id.session, sizeof(key));
    if (sc->n_keys < sc->cap)
        sc->keys[sc->n_keys++] = key ^ (uint64_t)k->id.kid << 56;
    for (int side = 0; side < 2; side++) {
        struct rtpstats_summary s[QR_SSRC_SLOTS];
        int n = rtpstats_read(&k->leg[side].rtp, s, QR_SSRC_SLOTS);

        for (int i = 0; i < n; i++) {
            if (s[i].expected >= QR_LOSS_MIN_EXPECTED)
                sc->v->loss_streams[stats_loss_bucket(s[i].loss_ratio)]++;
        }
    }
}

static int stats__cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Live RTP loss and the number of distinct sessions, under the table lock. */
static void stats__scan_links(struct relay *r, struct stats_view *v)
{
    struct stats__scan sc = {.v = v, .cap = table_capacity(r->table)};

    sc.keys = malloc(sc.cap * sizeof(*sc.keys));
    if (sc.keys == NULL)
        sc.cap = 0;
    table_foreach(r->table, stats__scan_link, &sc);
    qsort(sc.keys, sc.n_keys, sizeof(*sc.keys), stats__cmp_u64);
    for (uint32_t i = 0; i < sc.n_keys; i++)
        v->sessions += i == 0 || sc.keys[i] != sc.keys[i - 1];
    free(sc.keys);
}

/* The kernel path's share, pulled first so that every figure is current. */
static void stats__kfwd(struct relay *r, struct stats_view *v)
{
    v->kfwd_active = r->kfwd != NULL;
    v->kfwd_mode = r->cfg.kernel_forward;
    v->kfwd_reason = r->kfwd_reason;
    if (r->kfwd == NULL)
        return;
    table_kfwd_pull(r->table);
    kfwd_totals(r->kfwd, &v->kfwd);
    v->sum[STAT_RX_PACKETS] += v->kfwd.packets;
    v->sum[STAT_RX_BYTES] += v->kfwd.bytes;
    v->sum[STAT_FWD_PACKETS] += v->kfwd.packets;
    v->sum[STAT_FWD_BYTES] += v->kfwd.bytes;
    v->sum[STAT_RTP_UNTRACKED] += v->kfwd.rtp_untracked;
}

void stats_view(struct relay *r, struct stats_view *v)
{
    memset(v, 0, sizeof(*v));
    stats__kfwd(r, v);
    v->n_workers = r->n_workers;
    for (unsigned w = 0; w < r->n_workers; w++) {
        for (int i = 0; i < STAT_COUNT; i++)
            v->sum[i] += atomic_load_explicit(&r->workers[w]->stats.v[i], memory_order_relaxed);
        v->busy_ns[w] = atomic_load_explicit(&r->workers[w]->stats.v[STAT_BUSY_NS],
                                             memory_order_relaxed);
        v->busy_ratio[w] = atomic_load_explicit(&r->busy_ppm[w], memory_order_relaxed) / 1e6;
    }
    table_usage(r->table, &v->usage);
    v->capacity = table_capacity(r->table);
    stats__scan_links(r, v);
    v->draining = atomic_load(&r->draining);
    if (v->draining) {
        /* drain-timeout is reloadable: the deadline follows it. */
        uint64_t end = atomic_load(&r->drain_started_ms) +
                       (uint64_t)atomic_load(&r->live.drain_timeout_s) * 1000, now = clock_mono_ms();

        v->drain_left_s = end > now ? (end - now) / 1000 : 0;
    }
    v->healthy = atomic_load(&r->healthy);
    v->ready = !v->draining && v->healthy;
    if (r->audit != NULL) {
        v->has_audit = true;
        audit_get_counters(r->audit, &v->audit);
        v->has_ship = audit_get_ship_counters(r->audit, &v->ship);
    }
    v->uptime_s = (clock_mono_ms() - r->started_mono_ms) / 1000;
}

static json_t *stats__loss_json(const struct stats_view *v)
{
    json_t *le = json_array(), *streams = json_array();
    uint32_t cumulative = 0;

    for (unsigned b = 0; b <= STATS_LOSS_BOUNDS; b++) {
        cumulative += v->loss_streams[b];
        if (b < STATS_LOSS_BOUNDS)
            json_array_append_new(le, json_real(stats_loss_bounds[b]));
        json_array_append_new(streams, json_integer(cumulative));
    }
    return json_pack("{s:o,s:o}", "le", le, "active_streams", streams);
}

/* Fills o, the "kernel_path" group (which holds its counter already). */
static void stats__kfwd_json(const struct relay *r, const struct stats_view *v, json_t *o)
{
    json_t *names = json_array();
    unsigned n;
    const char *list = kfwd_interfaces(r->kfwd, &n);

    /* The names as a list: "lo, veth0" split at ", ". */
    while (names != NULL && *list != '\0') {
        size_t len = strcspn(list, ",");

        json_array_append_new(names, json_stringn(list, len));
        list += len;
        list += strspn(list, ", ");
    }
    json_object_set_new(o, "mode", json_string(kfwd_mode_name(v->kfwd_mode)));
    json_object_set_new(o, "active", json_boolean(v->kfwd_active));
    if (!v->kfwd_active)
        json_object_set_new(o, "reason", json_string(kfwd_reason_name(v->kfwd_reason)));
    json_object_set_new(o, "interfaces", names);
    json_object_set_new(o, "flows", json_integer(v->kfwd.flows));
    json_object_set_new(o, "packets", json_integer((json_int_t)v->kfwd.packets));
    json_object_set_new(o, "bytes", json_integer((json_int_t)v->kfwd.bytes));
    json_object_set_new(o, "flow_errors", json_integer((json_int_t)v->kfwd.flow_errors));
    json_object_set_new(o, "bypassed", json_integer((json_int_t)v->kfwd.bypassed));
}

json_t *stats_relay_json(struct relay *r)
{
    struct stats_view v;
    json_t *root, *busy = json_array();

    stats_view(r, &v);
    for (unsigned w = 0; w < v.n_workers; w++)
        json_array_append_new(busy, json_real(v.busy_ratio[w]));
    root = json_pack("{s:s,s:s,s:I,s:i,s:b,s:b,s:b,s:{s:i},s:{s:i,s:i},s:{s:i},s:i,s:{s:i},"
                     "s:o,s:o}",
                     "version", QR_VERSION, "node", r->cfg.daemon.node_id, "uptime_s",
                     (json_int_t)v.uptime_s, "workers", (int)v.n_workers, "draining", v.draining,
                     "ready", v.ready, "healthy", v.healthy, "sessions", "active",
                     (int)v.sessions, "links", "active", (int)v.usage.links, "capacity",
                     (int)v.capacity, "legs", "active", (int)v.usage.legs_bound, "revocations",
                     (int)v.usage.revocations, "early_dtls", "queued", (int)v.usage.early_held,
                     "worker_busy", busy, "rtp_loss", stats__loss_json(&v));
    if (root == NULL)
        return NULL;
    for (int i = 0; i < STAT_COUNT; i++)
        json_object_set_new(stats__group(root, stat_names[i].group), stat_names[i].name,
                            json_integer((json_int_t)v.sum[i]));
    json_object_set_new(stats__group(root, "tcp_connections"), "open",
                        json_integer(atomic_load(&r->tcp_open)));
    json_object_set_new(stats__group(root, "tcp_connections"), "waiting",
                        json_integer(atomic_load(&r->tcp_waiting)));
    /* Signaling moves a draining relay's calls elsewhere before this runs out. */
    if (v.draining)
        json_object_set_new(root, "drain_left_s", json_integer((json_int_t)v.drain_left_s));
    stats__kfwd_json(r, &v, stats__group(root, "kernel_path"));
    if (v.has_audit)
        json_object_set_new(root, "audit",
                            json_pack("{s:I,s:I,s:I}", "written", (json_int_t)v.audit.written,
                                      "dropped", (json_int_t)v.audit.dropped, "write_errors",
                                      (json_int_t)v.audit.write_errors));
    return root;
}

/* Wall-clock ms of a leg time (ms after the link's birth), 0 for never. */
static json_int_t stats__wall(const struct link *k, uint32_t t, uint64_t now_mono,
                              uint64_t now_wall)
{
    uint64_t mono = k->born_ms + t;

    if (t == LEG_NEVER || mono > now_mono)
        return 0;
    return (json_int_t)(now_wall - (now_mono - mono));
}

static json_t *stats__leg(const struct link *k, const struct leg *l)
{
    struct rtpstats_summary s[QR_SSRC_SLOTS];
    int n = rtpstats_read(&l->rtp, s, QR_SSRC_SLOTS);
    uint64_t now_mono = clock_mono_ms(), now_wall = clock_wall_ms();
    uint32_t seen = leg_last_seen(l);
    json_t *streams = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(
            streams, json_pack("{s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "ssrc", (json_int_t)s[i].ssrc,
                               "clock_rate", (json_int_t)s[i].clock_rate, "expected",
                               (json_int_t)s[i].expected, "lost", (json_int_t)s[i].lost,
                               "reordered", (json_int_t)s[i].reordered, "loss_ratio",
                               s[i].loss_ratio, "jitter_ms", s[i].jitter_ms));
    struct leg_addr a;
    json_t *out;

    leg_addr_load(l, &a);
    out = json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:o}", "bound", (int)(a.family != 0),
                     "first_seen_ms", stats__wall(k, l->up, now_mono, now_wall), "packets_in",
                     (json_int_t)leg_rx_packets(l), "bytes_in", (json_int_t)leg_rx_bytes(l),
                     "packets_forwarded", (json_int_t)leg_fwd_packets(l), "bytes_forwarded",
                     (json_int_t)leg_fwd_bytes(l), "last_seen_ms",
                     leg_rx_packets(l) > 0 ? stats__wall(k, seen, now_mono, now_wall) : 0,
                     "moves", (int)l->moves, "rtp", streams);
    if (out != NULL && a.family != 0)
        json_object_set_new(out, "transport",
                            json_string(a.listen == LEG_LISTEN_TCP ? "tcp" : "udp"));
    return out;
}

struct stats__session_ctx {
    const struct keyring *keys;
    uint8_t session[QR_KEYS_MAX][CREDS_SESSION_KEY_LEN];
    json_t *links;
};

static void stats__match(void *arg, const struct link *k)
{
    struct stats__session_ctx *ctx = arg;

    for (unsigned i = 0; i < ctx->keys->n; i++) {
        if (ctx->keys->keys[i].id != k->id.kid ||
            memcmp(ctx->session[i], k->id.session, CREDS_SESSION_KEY_LEN) != 0)
            continue;
        json_array_append_new(
            ctx->links, json_pack("{s:i,s:i,s:s,s:I,s:{s:o,s:o}}", "link", k->id.link, "kid",
                                  k->id.kid, "state", stats_states[link_state(k)], "expires",
                                  (json_int_t)k->id.expires, "legs", "a", stats__leg(k, &k->leg[0]),
                                  "b", stats__leg(k, &k->leg[1])));
    }
}

json_t *stats_session_json(struct relay *r, const char *sid)
{
    struct stats__session_ctx ctx = {.keys = relay_keys(r), .links = json_array()};
    struct hmac *h = hmac_new(HMAC_SHA256);

    if (h == NULL || ctx.links == NULL)
        goto fail;
    for (unsigned i = 0; i < ctx.keys->n; i++) {
        if (creds_session_key(&ctx.keys->keys[i], sid, strlen(sid), h, ctx.session[i]) != 0)
            goto fail;
    }
    if (r->kfwd != NULL)
        table_kfwd_pull(r->table);
    table_foreach(r->table, stats__match, &ctx);
    hmac_free(h);
    return ctx.links;
fail:
    hmac_free(h);
    json_decref(ctx.links);
    return NULL;
}
