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

static json_t *stats__leg(const struct leg *l)
{
    struct rtpstats_summary s[QR_SSRC_SLOTS];
    int n = rtpstats_read(&l->rtp, s, QR_SSRC_SLOTS);
    json_t *streams = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(
            streams, json_pack("{s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "ssrc", (json_int_t)s[i].ssrc,
                               "clock_rate", (json_int_t)s[i].clock_rate, "expected",
                               (json_int_t)s[i].expected, "lost", (json_int_t)s[i].lost,
                               "reordered", (json_int_t)s[i].reordered, "loss_ratio",
                               s[i].loss_ratio, "jitter_ms", s[i].jitter_ms));
    return json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:o}", "bound",
                     (int)atomic_load_explicit(&l->bound, memory_order_relaxed), "first_seen_ms",
                     (json_int_t)l->up_ms, "packets_in",
                     (json_int_t)link_read(&l->rx_packets), "bytes_in",
                     (json_int_t)link_read(&l->rx_bytes), "packets_forwarded",
                     (json_int_t)link_read(&l->fwd_packets), "bytes_forwarded",
                     (json_int_t)link_read(&l->fwd_bytes), "last_seen_ms",
                     (json_int_t)link_read(&l->last_seen_ms), "moves", (int)l->moves, "rtp",
                     streams);
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
                                  (json_int_t)k->id.expires, "legs", "a", stats__leg(&k->leg[0]),
                                  "b", stats__leg(&k->leg[1])));
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
