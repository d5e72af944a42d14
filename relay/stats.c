/* Reading counters: sums over workers, taken without stopping anyone. The
 * per-session view carries counters and RTP statistics, never addresses. */
#include "stats.h"

#include <string.h>

#include "events.h"
#include "quietroom/clock.h"
#include "quietroom/hmac.h"
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
    [STAT_STUN_IGNORED_OTHER] = {"stun", "ignored_other"},
    [STAT_LEGS_BOUND] = {"legs", "binds"},
    [STAT_LEGS_MOVED] = {"legs", "moves"},
    [STAT_LEGS_SUPERSEDED] = {"legs", "superseded"},
    [STAT_RTP_UNTRACKED] = {"rtp", "untracked"},
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

json_t *stats_relay_json(struct relay *r)
{
    uint64_t sum[STAT_COUNT] = {0};
    struct table_usage u;
    json_t *root;

    for (unsigned w = 0; w < r->n_workers; w++) {
        for (int i = 0; i < STAT_COUNT; i++)
            sum[i] += atomic_load_explicit(&r->workers[w]->stats.v[i], memory_order_relaxed);
    }
    table_usage(r->table, &u);
    root = json_pack("{s:s,s:s,s:I,s:i,s:{s:i,s:i},s:{s:i},s:i,s:{s:i}}", "version", QR_VERSION,
                     "node", r->cfg.node_id, "uptime_s",
                     (json_int_t)((clock_mono_ms() - r->started_mono_ms) / 1000), "workers",
                     (int)r->n_workers, "links", "active", (int)u.links, "capacity",
                     (int)table_capacity(r->table), "legs", "active", (int)u.legs_bound,
                     "revocations", (int)u.revocations, "early_dtls", "queued",
                     (int)u.early_held);
    if (root == NULL)
        return NULL;
    for (int i = 0; i < STAT_COUNT; i++)
        json_object_set_new(stats__group(root, stat_names[i].group), stat_names[i].name,
                            json_integer((json_int_t)sum[i]));
    if (r->audit != NULL) {
        struct audit_counters a;

        audit_get_counters(r->audit, &a);
        json_object_set_new(root, "audit",
                            json_pack("{s:I,s:I,s:I}", "written", (json_int_t)a.written,
                                      "dropped", (json_int_t)a.dropped, "write_errors",
                                      (json_int_t)a.write_errors));
    }
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
    uint32_t seen = atomic_load_explicit(&l->last_seen, memory_order_relaxed);
    json_t *streams = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(
            streams, json_pack("{s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "ssrc", (json_int_t)s[i].ssrc,
                               "clock_rate", (json_int_t)s[i].clock_rate, "expected",
                               (json_int_t)s[i].expected, "lost", (json_int_t)s[i].lost,
                               "reordered", (json_int_t)s[i].reordered, "loss_ratio",
                               s[i].loss_ratio, "jitter_ms", s[i].jitter_ms));
    return json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:o}", "bound", (int)leg_bound(l),
                     "first_seen_ms", stats__wall(k, l->up, now_mono, now_wall), "packets_in",
                     (json_int_t)atomic_load_explicit(&l->rx_packets, memory_order_relaxed),
                     "bytes_in", (json_int_t)atomic_load_explicit(&l->rx_bytes, memory_order_relaxed),
                     "packets_forwarded",
                     (json_int_t)atomic_load_explicit(&l->fwd_packets, memory_order_relaxed),
                     "bytes_forwarded",
                     (json_int_t)atomic_load_explicit(&l->fwd_bytes, memory_order_relaxed),
                     "last_seen_ms",
                     atomic_load_explicit(&l->rx_packets, memory_order_relaxed) > 0
                         ? stats__wall(k, seen, now_mono, now_wall)
                         : 0,
                     "moves", (int)l->moves, "rtp", streams);
}

struct stats__session_ctx {
    struct keyring *keys;
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
    struct stats__session_ctx ctx = {.keys = &r->keys, .links = json_array()};
    struct hmac *h = hmac_new(HMAC_SHA256);

    if (h == NULL || ctx.links == NULL)
        goto fail;
    for (unsigned i = 0; i < r->keys.n; i++) {
        if (creds_session_key(&r->keys.keys[i], sid, strlen(sid), h, ctx.session[i]) != 0)
            goto fail;
    }
    table_foreach(r->table, stats__match, &ctx);
    hmac_free(h);
    return ctx.links;
fail:
    hmac_free(h);
    json_decref(ctx.links);
    return NULL;
}
