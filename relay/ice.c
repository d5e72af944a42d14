/* ICE-lite check handling. The order of checks follows RFC 8489 §6.3 and
 * §9.1.3: message shape, then credentials, then integrity, then attributes.
 * Three deliberate departures, all against reflection and probing by
 * strangers: an unknown, forged, expired or revoked ufrag earns silence
 * rather than 401; an error that MESSAGE-INTEGRITY did not authenticate
 * goes to a source address at most QR_STUN_ERRORS_PER_S times a second;
 * and no response is ever longer than the request that caused it. */
#include "ice.h"

#include <string.h>

#include "events.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/hindex.h"
#include "quietroom/wire/creds.h"
#include "quietroom/wire/stun.h"
#include "worker.h"

/* The relay's ufrag is the part of USERNAME before the colon. */
static size_t ice__ufrag_len(const struct stun_msg *msg)
{
    const uint8_t *colon = memchr(msg->username, ':', msg->username_len);

    return colon ? (size_t)(colon - msg->username) : msg->username_len;
}

/* Queues a response built over the request buffer; building with the
 * request's length as capacity is what enforces "never larger". */
static void ice__send(struct worker *w, uint32_t listen, const union netaddr *src, uint8_t *buf,
                      size_t n, enum stat_id result)
{
    if (n == 0) {
        stat_add(&w->stats, STAT_DROP_AMPLIFICATION, 1);
        return;
    }
    stat_add(&w->stats, result, 1);
    worker_tx_add(w, listen, src, buf, n, NULL);
}

static void ice__error(struct worker *w, uint32_t listen, const union netaddr *src, uint8_t *buf,
                       size_t len, const struct stun_msg *msg, enum stun_error_code code,
                       const char *pwd)
{
    static const struct {
        enum stun_error_code code;
        enum stat_id stat;
    } stats[] = {
        {STUN_ERROR_BAD_REQUEST, STAT_STUN_BAD_REQUEST},
        {STUN_ERROR_UNAUTHENTICATED, STAT_STUN_UNAUTHENTICATED},
        {STUN_ERROR_UNKNOWN_ATTRIBUTE, STAT_STUN_UNKNOWN_ATTRIBUTE},
        {STUN_ERROR_ROLE_CONFLICT, STAT_STUN_ROLE_CONFLICT},
    };
    enum stat_id stat = STAT_STUN_BAD_REQUEST;
    size_t n;

    for (size_t i = 0; i < sizeof(stats) / sizeof(stats[0]); i++) {
        if (stats[i].code == code)
            stat = stats[i].stat;
    }
    n = stun_build_error(buf, len, msg, code, (const uint8_t *)pwd, pwd ? CREDS_PWD_LEN : 0,
                         w->sha1);
    ice__send(w, listen, src, buf, n, stat);
}

bool ice_limiter_take(struct ice_limiter *l, const union netaddr *src, uint64_t now_ms)
{
    uint32_t second = (uint32_t)(now_ms / 1000);
    uint64_t a = 0, b = 0, h;
    struct ice_limiter_slot *s;

    /* The address only: a spoofer picks ports freely. */
    if (src->sa.sa_family == AF_INET6) {
        memcpy(&a, src->in6.sin6_addr.s6_addr, 8);
        memcpy(&b, src->in6.sin6_addr.s6_addr + 8, 8);
    } else {
        a = src->in.sin_addr.s_addr;
    }
    h = hindex_mix(hindex_mix(l->seed ^ a) ^ b);
    s = &l->slot[h % QR_STUN_ERROR_SLOTS];
    if (s->second != second) {
        s->second = second;
        s->sent = 0;
    }
    if (s->sent >= QR_STUN_ERRORS_PER_S)
        return false;
    s->sent++;
    return true;
}

/* An error response MESSAGE-INTEGRITY did not authenticate: the source
 * address may be anyone's, so it is rate-limited per address. */
static void ice__error_unauthenticated(struct worker *w, uint32_t listen,
                                       const union netaddr *src, uint8_t *buf, size_t len,
                                       const struct stun_msg *msg, enum stun_error_code code,
                                       uint64_t now_ms)
{
    if (!ice_limiter_take(&w->errors, src, now_ms)) {
        stat_add(&w->stats, STAT_STUN_ERRORS_LIMITED, 1);
        return;
    }
    ice__error(w, listen, src, buf, len, msg, code, NULL);
}

/* Hands over DTLS that arrived for this leg before it was bound; sent right
 * after the check's response, in the same batch. */
static void ice__flush_early(struct worker *w, uint32_t listen, const union netaddr *src,
                             const struct table_binding *b)
{
    int n = table_early_take(w->relay->table, b->link, b->side, w->early_buf, w->early_len,
                             QR_EARLY_PER_LINK);

    for (int i = 0; i < n; i++)
        worker_tx_add(w, listen, src, w->early_buf[i], w->early_len[i], NULL);
    if (n > 0) {
        stat_add(&w->stats, STAT_EARLY_FLUSHED, (uint64_t)n);
        worker_tx_flush(w, listen);
    }
}

/* A nominated check: bind or move the leg. Returns false if the check must
 * go unanswered. */
static bool ice__nominate(struct worker *w, uint32_t listen, const union netaddr *src,
                          const struct creds_leg *cl, uint64_t now_ms, struct table_binding *b)
{
    struct relay *r = w->relay;
    enum table_bind_result res = table_bind(r->table, cl, src, listen, now_ms, b);

    if (res == TABLE_FULL) {
        stat_add(&w->stats, STAT_DROP_TABLE_FULL, 1);
        return false;
    }
    if (res == TABLE_INACTIVE || res == TABLE_DRAINING) {
        stat_add(&w->stats,
                 res == TABLE_DRAINING ? STAT_STUN_IGNORED_DRAINING : STAT_STUN_IGNORED_REVOKED, 1);
        return false;
    }
    if (b->superseded)
        stat_add(&w->stats, STAT_LEGS_SUPERSEDED, 1);
    if (res == TABLE_BOUND) {
        stat_add(&w->stats, STAT_LEGS_BOUND, 1);
        events_leg_up(r, cl, src, listen);
    } else if (res == TABLE_MOVED) {
        stat_add(&w->stats, STAT_LEGS_MOVED, 1);
        events_leg_moved(r, cl, &b->previous, src, listen);
    }
    return true;
}

/* A check that is not nominated never moves anything; from the bound
 * address it still counts as consent (RFC 7675). */
static void ice__consent(struct worker *w, uint32_t listen, const union netaddr *src,
                         const struct creds_leg *cl, uint64_t now_ms)
{
    const struct addrmap *m = w->map;
    struct leg_addr a;
    struct link *k;
    uint32_t id;

    leg_addr_pack(src, listen, &a);
    id = addrmap_lookup(m, &a);
    if (id == ADDRMAP_NONE || (id & 1) != cl->side)
        return;
    k = &m->links[id >> 1];
    if (!creds_same_link(&k->id, cl))
        return;
    atomic_store_explicit(&k->leg[id & 1].last_check, link_time(k, now_ms),
                          memory_order_relaxed);
}

/* Maps a credential failure to its counter; all of them mean silence. */
static enum stat_id ice__ignored(enum creds_status s)
{
    switch (s) {
    case CREDS_EXPIRED:
    case CREDS_TOO_LONG:
        return STAT_STUN_IGNORED_EXPIRED;
    case CREDS_BAD_MAC:
        return STAT_STUN_IGNORED_FORGED;
    case CREDS_V1_REFUSED:
        return STAT_STUN_IGNORED_V1;
    default:
        return STAT_STUN_IGNORED_CREDENTIALS;
    }
}

/* A connection carries one leg: true if cl may use it (and, on its first
 * valid check, makes cl its leg). */
static bool ice__peer_takes(struct worker *w, struct ice_peer *peer, const struct creds_leg *cl)
{
    if (peer == NULL)
        return true;
    if (!peer->known) {
        peer->known = true;
        peer->leg = *cl;
        return true;
    }
    if (creds_same_link(&peer->leg, cl) && peer->leg.side == cl->side)
        return true;
    stat_add(&w->stats, STAT_TCP_OTHER_LEG, 1);
    return false;
}

bool ice_handle(struct worker *w, uint32_t listen, const union netaddr *src, uint8_t *buf,
                size_t len, const struct worker_now *now, struct ice_peer *peer)
{
    struct relay *r = w->relay;
    char pwd[CREDS_PWD_LEN + 1];
    struct stun_msg msg;
    struct table_binding b;
    struct creds_leg cl;
    enum creds_status cs;

    if (stun_parse(buf, len, &msg) != STUN_PARSE_OK) {
        stat_add(&w->stats, STAT_DROP_MALFORMED, 1);
        return false;
    }
    /* Without FINGERPRINT it is not an ICE check (RFC 8445 §7.2.2). */
    if (msg.cls != STUN_CLASS_REQUEST || msg.method != STUN_METHOD_BINDING ||
        !msg.has_fingerprint) {
        stat_add(&w->stats, STAT_STUN_IGNORED_OTHER, 1);
        return false;
    }
    stat_add(&w->stats, STAT_STUN_REQUESTS, 1);
    if (msg.username == NULL || msg.integrity_at == 0) {
        ice__error_unauthenticated(w, listen, src, buf, len, &msg, STUN_ERROR_BAD_REQUEST,
                                   now->mono_ms);
        return false;
    }
    /* A v2 ufrag's own MAC is checked first: a forged one costs one hash
     * and earns silence, whatever version, key id or expiry it claims. */
    cs = creds_verify(relay_keys(r), (const char *)msg.username, ice__ufrag_len(&msg),
                      (uint32_t)(now->wall_ms / 1000),
                      atomic_load_explicit(&r->live.max_ttl_s, memory_order_relaxed),
                      !atomic_load_explicit(&r->live.creds_v1_refused, memory_order_relaxed),
                      w->sha256, &cl, pwd);
    if (cs != CREDS_OK) {
        stat_add(&w->stats, ice__ignored(cs), 1);
        return false;
    }
    if (table_is_revoked(r->table, &cl)) {
        stat_add(&w->stats, STAT_STUN_IGNORED_REVOKED, 1);
        return false;
    }
    if (!stun_check_integrity(buf, &msg, (const uint8_t *)pwd, CREDS_PWD_LEN, w->sha1)) {
        ice__error_unauthenticated(w, listen, src, buf, len, &msg, STUN_ERROR_UNAUTHENTICATED,
                                   now->mono_ms);
        return false;
    }
    if (!ice__peer_takes(w, peer, &cl))
        return false;
    if (msg.n_unknown > 0) {
        ice__error(w, listen, src, buf, len, &msg, STUN_ERROR_UNKNOWN_ATTRIBUTE, pwd);
        return true;
    }
    /* An ICE-lite agent is always controlled (RFC 8445 §6.1.1): a peer that
     * also claims the controlled role must switch. */
    if (msg.ice_controlled) {
        ice__error(w, listen, src, buf, len, &msg, STUN_ERROR_ROLE_CONFLICT, pwd);
        return true;
    }
    if (!msg.ice_controlling || !msg.has_priority) {
        ice__error(w, listen, src, buf, len, &msg, STUN_ERROR_BAD_REQUEST, pwd);
        return true;
    }
    if (msg.use_candidate && !ice__nominate(w, listen, src, &cl, now->mono_ms, &b))
        return true;
    if (!msg.use_candidate)
        ice__consent(w, listen, src, &cl, now->mono_ms);
    ice__send(w, listen, src, buf,
              stun_build_success(buf, len, &msg, &src->sa, (const uint8_t *)pwd, CREDS_PWD_LEN,
                                 w->sha1),
              STAT_STUN_SUCCESS);
    if (msg.use_candidate)
        ice__flush_early(w, listen, src, &b);
    return true;
}
