/* Link table. One mutex guards creation, binding, revocation, early packets
 * and housekeeping: all of them are rare next to forwarding, which takes no
 * lock: it finds legs through the address map's read sections and checks a
 * link's state. A closed slot is reused only after every worker has passed
 * a quiescent point, so a worker that saw it active has finished with it. */
#include "table.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "early.h"
#include "kfwd.h"
#include "quietroom/base/hindex.h"
#include "revoke.h"

_Static_assert(QR_EARLY_PER_LINK <= UINT8_MAX, "held packets are counted in a byte");
_Static_assert(QR_EARLY_POOL < EARLY_NONE, "early slots are 16 bits");

struct table {
    pthread_mutex_t lock;
    struct link *links;
    uint32_t cap;
    uint64_t seed;
    struct hindex ids;          /* credential identity -> link */
    struct addrmap map;         /* remote address -> bound leg */
    table_leg_down_fn down;
    void *down_ctx;
    uint32_t *free;             /* stack of free slots */
    uint32_t n_free;
    uint32_t *active;           /* slots in use, dense */
    uint32_t n_active;
    uint32_t *limbo;            /* closed slots waiting for a grace period, FIFO */
    uint32_t limbo_head, limbo_n;
    uint32_t tick;              /* housekeeping rounds (34 years at 4 a second) */
    uint32_t grace_tick;        /* slots closed at or before this tick are free */
    uint32_t snap_tick;
    bool snap_pending;
    uint64_t snap[QR_WORKERS_MAX];
    struct revoke_set revoked;
    struct early_pool early;
    bool draining;
    struct kfwd *kfwd;          /* the kernel path, or NULL */
};

static uint64_t table__hash(const struct table *t, const struct creds_leg *cl)
{
    uint64_t s, n = 0;

    memcpy(&s, cl->session, sizeof(s));
    memcpy(&n, cl->nonce, CREDS_NONCE_LEN);
    return hindex_mix(hindex_mix(t->seed ^ s) ^ ((uint64_t)cl->kid << 56 |
                                                 (uint64_t)cl->link << 40 | n) ^
                      ((uint64_t)cl->expires << 8));
}

struct table__key {
    const struct table *t;
    const struct creds_leg *cl;
};

static bool table__eq(const void *ctx, uint32_t id)
{
    const struct table__key *k = ctx;

    return creds_same_link(&k->t->links[id].id, k->cl);
}

struct table *table_new(uint32_t max_links, uint64_t seed, table_leg_down_fn down, void *ctx)
{
    struct table *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->cap = max_links;
    t->seed = seed;
    t->down = down;
    t->down_ctx = ctx;
    pthread_mutex_init(&t->lock, NULL);
    t->links = calloc(max_links, sizeof(*t->links));
    t->free = calloc(max_links, sizeof(*t->free));
    t->active = calloc(max_links, sizeof(*t->active));
    t->limbo = calloc(max_links, sizeof(*t->limbo));
    if (t->links == NULL || t->free == NULL || t->active == NULL || t->limbo == NULL)
        goto fail;
    if (hindex_init(&t->ids, max_links) != 0)
        goto fail;
    if (addrmap_init(&t->map, t->links, 2 * max_links, hindex_mix(seed ^ 0x4164647200000000ull)))
        goto fail;
    if (revoke_init(&t->revoked, QR_REVOKE_MAX, seed ^ 0x5265766f6b650000ull) != 0)
        goto fail;
    if (early_init(&t->early, QR_EARLY_POOL) != 0)
        goto fail;
    for (uint32_t i = 0; i < max_links; i++)
        t->free[i] = max_links - 1 - i;
    t->n_free = max_links;
    return t;
fail:
    table_free(t);
    return NULL;
}

void table_free(struct table *t)
{
    if (t == NULL)
        return;
    early_free(&t->early);
    revoke_free(&t->revoked);
    addrmap_free(&t->map);
    hindex_free(&t->ids);
    free(t->limbo);
    free(t->active);
    free(t->free);
    free(t->links);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

struct link *table_link(struct table *t, uint32_t index)
{
    return &t->links[index];
}

uint32_t table_capacity(const struct table *t)
{
    return t->cap;
}

const struct addrmap *table_addrmap(const struct table *t)
{
    return &t->map;
}

/* Only for a slot no worker can reach: out of the map and past the grace
 * period. */
static void table__reset_leg(struct leg *l)
{
    static const struct leg_addr none;

    leg_addr_store(l, &none);
    atomic_store_explicit(&l->last_check, 0, memory_order_relaxed);
    atomic_store_explicit(&l->last_seen, 0, memory_order_relaxed);
    atomic_store_explicit(&l->rx_packets, 0, memory_order_relaxed);
    atomic_store_explicit(&l->fwd_packets, 0, memory_order_relaxed);
    atomic_store_explicit(&l->rx_bytes, 0, memory_order_relaxed);
    atomic_store_explicit(&l->fwd_bytes, 0, memory_order_relaxed);
    atomic_store_explicit(&l->k_packets, 0, memory_order_relaxed);
    atomic_store_explicit(&l->k_bytes, 0, memory_order_relaxed);
    atomic_store_explicit(&l->k_last_seen, 0, memory_order_relaxed);
    atomic_store_explicit(&l->k_owned, false, memory_order_relaxed);
    atomic_store_explicit(&l->k_punted, 0, memory_order_relaxed);
    l->k_done_packets = 0;
    l->k_done_bytes = 0;
    l->k_punted_base = 0;
    l->k_punted_seen = 0;
    l->k_refused = false;
    rtpstats_reset(&l->rtp);
    l->pref = 0;
    l->up = LEG_NEVER;
    l->moves = 0;
}

/* Takes a free slot for a new link. The generation changes before anything
 * else and the state turns active last, so a worker holding a stale index
 * sees either the old generation or a non-active state. */
static uint32_t table__create(struct table *t, const struct creds_leg *cl, uint64_t now_ms)
{
    uint32_t idx;
    struct link *k;

    if (t->n_free == 0)
        return HINDEX_NONE;
    idx = t->free[t->n_free - 1];
    if (hindex_insert(&t->ids, table__hash(t, cl), idx) != 0)
        return HINDEX_NONE;
    t->n_free--;
    k = &t->links[idx];
    atomic_fetch_add_explicit(&k->gen, 1, memory_order_release);
    table__reset_leg(&k->leg[0]);
    table__reset_leg(&k->leg[1]);
    k->id = *cl;
    k->id.side = 0;
    k->born_ms = now_ms;
    k->early_head = EARLY_NONE;
    k->early_n = 0;
    k->pos = t->n_active;
    t->active[t->n_active++] = idx;
    atomic_store_explicit(&k->state, LINK_ACTIVE, memory_order_release);
    return idx;
}

/* Takes a leg off the map and marks it unbound; reports it if it was bound. */
static void table__unbind(struct table *t, struct link *k, int side, enum leg_down_reason reason)
{
    struct leg *l = &k->leg[side];
    static const struct leg_addr none;
    struct leg_addr cur;

    leg_addr_load(l, &cur);
    if (cur.family == 0)
        return;
    /* The link's flows leave the kernel first, so that the record counts
     * every packet the program forwarded. */
    if (t->kfwd != NULL)
        kfwd_withdraw(t->kfwd, k, (uint32_t)(k - t->links));
    /* Reported first, while the record can still name the address. */
    if (t->down != NULL)
        t->down(t->down_ctx, k, side, reason);
    addrmap_write_begin(&t->map);
    addrmap_remove(&t->map, &cur, ADDRMAP_ID(k - t->links, side));
    leg_addr_store(l, &none);
    addrmap_write_end(&t->map);
}

/* Points the map at leg id for address a (the leg's new address), taking a
 * different leg bound there until now out of the way first. */
static int table__map(struct table *t, struct leg *l, const struct leg_addr *a, uint32_t id,
                      const struct leg_addr *previous, bool *superseded)
{
    uint32_t other = addrmap_find(&t->map, a);
    int rc;

    *superseded = other != ADDRMAP_NONE && other != id;
    if (*superseded)
        table__unbind(t, &t->links[other >> 1], (int)(other & 1), LEG_DOWN_SUPERSEDED);
    addrmap_write_begin(&t->map);
    if (previous != NULL)
        addrmap_remove(&t->map, previous, id);
    leg_addr_store(l, a);
    rc = addrmap_insert(&t->map, a, id);
    addrmap_write_end(&t->map);
    return rc;
}

/* The kernel path's counters of link idx into its legs, for a decision
 * that needs them fresh; always true (for use inside a condition). */
static bool table__pull(struct table *t, struct link *k, uint32_t idx)
{
    if (t->kfwd != NULL)
        kfwd_pull(t->kfwd, k, idx);
    return true;
}

/* Whether a bound leg's own path still carries something: media or a
 * valid check within QR_LEG_MOVE_QUIET_MS. */
static bool table__path_alive(const struct link *k, const struct leg *l, uint64_t now_ms)
{
    uint32_t seen = leg_last_seen(l);
    uint32_t check = atomic_load_explicit(&l->last_check, memory_order_relaxed);
    uint32_t last = seen > check ? seen : check, now = link_time(k, now_ms);

    return last >= now || now - last < QR_LEG_MOVE_QUIET_MS;
}

/* Binds, moves or refreshes leg `side` of link idx at a (a path of rank
 * pref), or keeps it where it is. */
static enum table_bind_result table__bind_leg(struct table *t, uint32_t idx, int side,
                                              const struct leg_addr *a, uint64_t pref,
                                              uint64_t now_ms, struct table_binding *out)
{
    struct link *k = &t->links[idx];
    struct leg *l = &k->leg[side];
    enum table_bind_result r = TABLE_BOUND;
    struct leg_addr cur;

    out->superseded = false;
    leg_addr_load(l, &cur);
    if (cur.family != 0 && memcmp(&cur, a, sizeof(cur)) == 0) {
        r = TABLE_REFRESHED;
    } else if (cur.family != 0 && pref < l->pref && table__pull(t, k, idx) &&
               table__path_alive(k, l, now_ms)) {
        return TABLE_KEPT;
    } else if (cur.family != 0) {
        r = TABLE_MOVED;
        leg_addr_unpack(&cur, &out->previous);
        if (l->moves < UINT16_MAX)
            l->moves++;
    } else if (l->up == LEG_NEVER) {
        l->up = link_time(k, now_ms);
    }
    /* The map has room for every leg, so inserting cannot fail. */
    if (r != TABLE_REFRESHED &&
        table__map(t, l, a, ADDRMAP_ID(idx, side), r == TABLE_MOVED ? &cur : NULL,
                   &out->superseded) != 0)
        return TABLE_FULL;
    l->pref = pref;
    atomic_store_explicit(&l->last_check, link_time(k, now_ms), memory_order_relaxed);
    if (r != TABLE_REFRESHED && t->kfwd != NULL) {
        l->k_refused = false; /* a new path may pass the program */
        kfwd_update(t->kfwd, k, idx);
    }
    return r;
}

void table_unbind_at(struct table *t, const struct leg_addr *a, enum leg_down_reason reason)
{
    uint32_t id;

    pthread_mutex_lock(&t->lock);
    id = addrmap_find(&t->map, a);
    if (id != ADDRMAP_NONE)
        table__unbind(t, &t->links[id >> 1], (int)(id & 1), reason);
    pthread_mutex_unlock(&t->lock);
}

void table_set_draining(struct table *t, bool draining)
{
    pthread_mutex_lock(&t->lock);
    t->draining = draining;
    pthread_mutex_unlock(&t->lock);
}

/* A scan, but only while draining, when new links are rare. */
static bool table__carries(const struct table *t, const struct creds_leg *cl)
{
    for (uint32_t i = 0; i < t->n_active; i++) {
        const struct link *k = &t->links[t->active[i]];

        if (k->id.kid == cl->kid &&
            memcmp(k->id.session, cl->session, CREDS_SESSION_KEY_LEN) == 0 &&
            link_state(k) == LINK_ACTIVE)
            return true;
    }
    return false;
}

enum table_bind_result table_bind(struct table *t, const struct creds_leg *cl,
                                  const union netaddr *src, uint32_t listen, uint64_t pref,
                                  uint64_t now_ms, struct table_binding *out)
{
    struct table__key key = {t, cl};
    enum table_bind_result r;
    struct leg_addr a;
    uint32_t idx;

    leg_addr_pack(src, listen, &a);
    pthread_mutex_lock(&t->lock);
    idx = hindex_find(&t->ids, table__hash(t, cl), table__eq, &key);
    if (idx == HINDEX_NONE) {
        if (revoke_contains(&t->revoked, cl->kid, cl->session)) {
            r = TABLE_INACTIVE;
            goto out;
        }
        if (t->draining && !table__carries(t, cl)) {
            r = TABLE_DRAINING;
            goto out;
        }
        if ((idx = table__create(t, cl, now_ms)) == HINDEX_NONE) {
            r = TABLE_FULL;
            goto out;
        }
    }
    if (link_state(&t->links[idx]) != LINK_ACTIVE) {
        r = TABLE_INACTIVE;
        goto out;
    }
    r = table__bind_leg(t, idx, cl->side, &a, pref, now_ms, out);
    out->link = idx;
    out->side = cl->side;
out:
    pthread_mutex_unlock(&t->lock);
    return r;
}

bool table_is_revoked(struct table *t, const struct creds_leg *cl)
{
    bool r;

    pthread_mutex_lock(&t->lock);
    r = revoke_contains(&t->revoked, cl->kid, cl->session);
    pthread_mutex_unlock(&t->lock);
    return r;
}

int table_revoke(struct table *t, uint8_t kid, const uint8_t *session, uint32_t until_s)
{
    int n = 0;

    pthread_mutex_lock(&t->lock);
    if (revoke_add(&t->revoked, kid, session, until_s) != 0) {
        n = -1;
        goto out;
    }
    for (uint32_t i = 0; i < t->n_active; i++) {
        struct link *k = &t->links[t->active[i]];

        if (k->id.kid == kid && memcmp(k->id.session, session, CREDS_SESSION_KEY_LEN) == 0 &&
            link_state(k) == LINK_ACTIVE) {
            atomic_store_explicit(&k->state, LINK_REVOKED, memory_order_release);
            if (t->kfwd != NULL)
                kfwd_withdraw(t->kfwd, k, t->active[i]);
            n++;
        }
    }
out:
    pthread_mutex_unlock(&t->lock);
    return n;
}

/* --- early DTLS ------------------------------------------------------------ */

/* Releases the first n packets held for k (all of them if n >= early_n). */
static void table__early_drop(struct table *t, struct link *k, uint32_t n)
{
    while (k->early_n > 0 && n-- > 0) {
        uint16_t slot = k->early_head;

        k->early_head = t->early.next[slot];
        k->early_n--;
        early_release(&t->early, slot);
    }
}

int table_early_push(struct table *t, uint32_t link, uint32_t link_gen, int to,
                     const uint8_t *buf, size_t len, uint64_t now_ms)
{
    struct link *k = &t->links[link];
    uint16_t slot, *tail;
    int rc = -1;

    pthread_mutex_lock(&t->lock);
    if (atomic_load_explicit(&k->gen, memory_order_relaxed) != link_gen ||
        link_state(k) != LINK_ACTIVE)
        goto out;
    if (leg_bound(&k->leg[to])) {
        rc = 0;
        goto out;
    }
    if (k->early_n > 0 && k->early_to != to)
        table__early_drop(t, k, k->early_n);
    if (k->early_n == QR_EARLY_PER_LINK)
        goto out;
    if ((slot = early_put(&t->early, buf, len, now_ms)) == EARLY_NONE)
        goto out;
    for (tail = &k->early_head; *tail != EARLY_NONE; tail = &t->early.next[*tail])
        ;
    *tail = slot;
    k->early_n++;
    k->early_to = (uint8_t)to;
    rc = 1;
out:
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int table_early_take(struct table *t, uint32_t link, int side, uint8_t (*bufs)[QR_PACKET_MAX],
                     size_t *lens, int max)
{
    struct link *k = &t->links[link];
    int n = 0;

    pthread_mutex_lock(&t->lock);
    if (k->early_to == side) {
        for (uint16_t s = k->early_head; s != EARLY_NONE && n < max;
             s = t->early.next[s], n++) {
            lens[n] = t->early.len[s];
            memcpy(bufs[n], t->early.buf[s], lens[n]);
        }
        table__early_drop(t, k, k->early_n);
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

/* --- closing and housekeeping --------------------------------------------- */

/* Ends a link: reports its bound legs, unlists it and parks the slot until a
 * grace period has passed. */
static void table__close(struct table *t, uint32_t idx, enum leg_down_reason reason)
{
    struct link *k = &t->links[idx];
    uint32_t last = t->active[t->n_active - 1];

    table__unbind(t, k, 0, reason);
    table__unbind(t, k, 1, reason);
    atomic_store_explicit(&k->state, LINK_CLOSED, memory_order_release);
    hindex_remove(&t->ids, table__hash(t, &k->id), idx);
    table__early_drop(t, k, k->early_n);
    t->active[k->pos] = last;
    t->links[last].pos = k->pos;
    t->n_active--;
    k->pos = t->tick;
    t->limbo[(t->limbo_head + t->limbo_n++) % t->cap] = idx;
}

static void table__age_early(struct table *t, struct link *k, uint64_t now_ms)
{
    uint32_t aged = 0;

    for (uint16_t s = k->early_head; aged < k->early_n && s != EARLY_NONE;
         s = t->early.next[s], aged++) {
        if (now_ms - t->early.at_ms[s] <= QR_EARLY_MAX_AGE_MS)
            break;
    }
    table__early_drop(t, k, aged);
}

/* Checks one link; returns true if it was closed. */
static bool table__check(struct table *t, uint32_t idx, uint64_t now_ms, uint32_t wall_s,
                         uint64_t consent_ms)
{
    struct link *k = &t->links[idx];
    enum link_state st = link_state(k);
    uint32_t now = link_time(k, now_ms);

    if (st == LINK_ACTIVE && wall_s >= k->id.expires) {
        atomic_store_explicit(&k->state, LINK_EXPIRED, memory_order_release);
        st = LINK_EXPIRED;
    }
    if (st != LINK_ACTIVE) {
        table__close(t, idx, st == LINK_REVOKED ? LEG_DOWN_REVOKED : LEG_DOWN_EXPIRED);
        return true;
    }
    for (int side = 0; side < 2; side++) {
        uint32_t last = atomic_load_explicit(&k->leg[side].last_check, memory_order_relaxed);

        if (now - last > consent_ms)
            table__unbind(t, k, side, LEG_DOWN_CONSENT);
    }
    if (!leg_bound(&k->leg[0]) && !leg_bound(&k->leg[1])) {
        table__close(t, idx, LEG_DOWN_CONSENT);
        return true;
    }
    table__age_early(t, k, now_ms);
    if (t->kfwd != NULL)
        kfwd_check(t->kfwd, k, idx);
    return false;
}

/* Quiescent-state reclamation: a snapshot of the workers' counters is taken
 * after the tick's closes; once every counter has moved on, slots closed up
 * to that tick can no longer be in any worker's hands. */
static void table__reclaim(struct table *t, const uint64_t *qs, unsigned n_qs)
{
    bool passed = t->snap_pending;

    for (unsigned w = 0; passed && w < n_qs; w++) {
        if (qs[w] == t->snap[w])
            passed = false;
    }
    if (passed) {
        t->grace_tick = t->snap_tick;
        t->snap_pending = false;
    }
    if (!t->snap_pending) {
        memcpy(t->snap, qs, n_qs * sizeof(*qs));
        t->snap_tick = t->tick;
        t->snap_pending = true;
    }
    while (t->limbo_n > 0 && t->links[t->limbo[t->limbo_head]].pos <= t->grace_tick) {
        uint32_t idx = t->limbo[t->limbo_head];

        t->limbo_head = (t->limbo_head + 1) % t->cap;
        t->limbo_n--;
        atomic_store_explicit(&t->links[idx].state, LINK_FREE, memory_order_release);
        t->free[t->n_free++] = idx;
    }
}

void table_housekeep(struct table *t, uint64_t now_ms, uint32_t wall_s, uint64_t consent_ms,
                     const uint64_t *qs, unsigned n_qs)
{
    pthread_mutex_lock(&t->lock);
    t->tick++;
    for (uint32_t i = t->n_active; i > 0; i--)
        table__check(t, t->active[i - 1], now_ms, wall_s, consent_ms);
    table__reclaim(t, qs, n_qs);
    revoke_purge(&t->revoked, wall_s);
    if (t->kfwd != NULL)
        kfwd_follow_routes(t->kfwd, t->links, t->active, t->n_active);
    pthread_mutex_unlock(&t->lock);
}

void table_close_all(struct table *t)
{
    pthread_mutex_lock(&t->lock);
    while (t->n_active > 0)
        table__close(t, t->active[t->n_active - 1], LEG_DOWN_SHUTDOWN);
    pthread_mutex_unlock(&t->lock);
}

void table_set_kfwd(struct table *t, struct kfwd *kf)
{
    pthread_mutex_lock(&t->lock);
    t->kfwd = kf;
    for (uint32_t i = 0; kf != NULL && i < t->n_active; i++)
        kfwd_update(kf, &t->links[t->active[i]], t->active[i]);
    pthread_mutex_unlock(&t->lock);
}

void table_kfwd_pull(struct table *t)
{
    struct kfwd *kf;

    pthread_mutex_lock(&t->lock);
    kf = t->kfwd;
    pthread_mutex_unlock(&t->lock);
    /* Takes the lock itself, only to fold (kfwd.h). table_set_kfwd(NULL)
     * comes after the readers have stopped (main.c). */
    if (kf != NULL)
        kfwd_pull_all(kf, t->links, &t->lock);
}

void table_foreach(struct table *t, void (*fn)(void *ctx, const struct link *k), void *ctx)
{
    pthread_mutex_lock(&t->lock);
    for (uint32_t i = 0; i < t->n_active; i++)
        fn(ctx, &t->links[t->active[i]]);
    pthread_mutex_unlock(&t->lock);
}

void table_usage(struct table *t, struct table_usage *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&t->lock);
    out->links = t->n_active;
    for (uint32_t i = 0; i < t->n_active; i++) {
        const struct link *k = &t->links[t->active[i]];

        out->legs_bound += (uint32_t)leg_bound(&k->leg[0]) + (uint32_t)leg_bound(&k->leg[1]);
    }
    out->revocations = t->revoked.count;
    out->early_held = t->early.cap - t->early.n_free;
    pthread_mutex_unlock(&t->lock);
}
