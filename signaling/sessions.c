/* The registry of live visits here, by visit key, and the visit clock.
 * Event-loop thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "quietroom/base/clock.h"
#include "quietroom/base/hindex.h"
#include "session_internal.h"

struct sessions {
    uint32_t max, count;
    struct session **slots;
    uint32_t *free;
    uint32_t n_free;
    struct hindex index;
    uint64_t seed;
    int64_t clock_base;                 /* visit clock = monotonic + base */
    uint32_t next_purge_s;              /* spent claims past their token's life go then */
};

struct sessions__key {
    const struct sessions *ss;
    const char *vkey;
};

/* Visits are indexed by their key (visit_key), which is uniform already;
 * the seed keeps the bucket of a key unknown to anyone outside. */
static uint64_t sessions__hash(const struct sessions *ss, const char *vkey)
{
    uint64_t h = ss->seed;

    for (const unsigned char *p = (const unsigned char *)vkey; *p; p++)
        h = hindex_mix(h ^ *p);
    return h;
}

static bool sessions__eq(const void *ctx, uint32_t id)
{
    const struct sessions__key *k = ctx;

    return strcmp(k->ss->slots[id]->v.key, k->vkey) == 0;
}

struct sessions *sessions_new(uint32_t max)
{
    struct sessions *ss = calloc(1, sizeof(*ss));

    if (ss == NULL)
        return NULL;
    ss->max = max;
    ss->slots = calloc(max, sizeof(*ss->slots));
    ss->free = calloc(max, sizeof(*ss->free));
    if (ss->slots == NULL || ss->free == NULL || hindex_init(&ss->index, max) != 0 ||
        RAND_bytes((unsigned char *)&ss->seed, sizeof(ss->seed)) != 1) {
        free(ss->slots);
        free(ss->free);
        hindex_free(&ss->index);
        free(ss);
        return NULL;
    }
    for (uint32_t i = 0; i < max; i++)
        ss->free[i] = max - 1 - i;
    ss->n_free = max;
    ss->clock_base = (int64_t)clock_wall_ms() - (int64_t)clock_mono_ms();
    return ss;
}

uint64_t sessions_now_ms(const struct sessions *ss)
{
    return (uint64_t)((int64_t)clock_mono_ms() + ss->clock_base);
}

void sessions_clock_floor(struct sessions *ss, uint64_t ms)
{
    uint64_t now = sessions_now_ms(ss);

    if (now <= ms)
        ss->clock_base += (int64_t)(ms - now) + 1;
}

unsigned sessions_count(const struct sessions *ss)
{
    return ss->count;
}

void sessions_census(const struct sessions *ss, struct sessions_census *out)
{
    memset(out, 0, sizeof(*out));
    out->sessions = ss->count;
    for (uint32_t i = 0; i < ss->max && out->sessions > 0; i++) {
        const struct session *s = ss->slots[i];

        for (unsigned j = 0; s != NULL && j < s->v.n_people; j++) {
            const struct visit_person *p = &s->v.people[j];

            out->waiting += p->state == P_WAITING;
            if (p->connected && (unsigned)p->role < ROLE_COUNT)
                out->connected[p->role]++;
        }
        for (unsigned j = 0; s != NULL && j < s->v.n_pairs; j++)
            out->pairs_waiting += s->v.pairs[j].relay < 0;
    }
}

struct session *sessions_find_key(struct sessions *ss, const char *vkey)
{
    struct sessions__key k = {ss, vkey};
    uint32_t id = hindex_find(&ss->index, sessions__hash(ss, vkey), sessions__eq, &k);

    return id == HINDEX_NONE ? NULL : ss->slots[id];
}

struct session *sessions_find(struct sessions *ss, const char *sid)
{
    char vkey[VISIT_KEY_LEN];

    visit_key(sid, vkey);
    return sessions_find_key(ss, vkey);
}

/* Puts s (sid set) in a free slot; -1 when full. */
static int sessions__insert(struct sessions *ss, struct session *s)
{
    if (ss->n_free == 0)
        return -1;
    s->slot = ss->free[ss->n_free - 1];
    if (hindex_insert(&ss->index, sessions__hash(ss, s->v.key), s->slot) != 0)
        return -1;
    ss->n_free--;
    ss->slots[s->slot] = s;
    ss->count++;
    return 0;
}

/* Returns the session for sid, creating it; NULL when at capacity. */
struct session *sessions_open(struct sessions *ss, const char *sid, const struct visit_env *env,
                              bool *created)
{
    struct session *s = sessions_find(ss, sid);
    uint8_t rnd[8];
    char instance[17];

    *created = false;
    if (s != NULL)
        return s;
    if (ss->n_free == 0 || (s = calloc(1, sizeof(*s))) == NULL || RAND_bytes(rnd, 8) != 1) {
        free(s);
        return NULL;
    }
    for (int i = 0; i < 8; i++)
        snprintf(instance + 2 * i, 3, "%02x", rnd[i]);
    visit_init(&s->v, sid, instance, env);
    if (sessions__insert(ss, s) != 0) {
        free(s);
        return NULL;
    }
    *created = true;
    return s;
}

struct session *sessions_adopt(struct sessions *ss, const struct visit *v)
{
    struct session *s;

    if (sessions_find_key(ss, v->key) != NULL || (s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    s->v = *v;
    if (sessions__insert(ss, s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

void sessions_close(struct sessions *ss, struct session *s)
{
    hindex_remove(&ss->index, sessions__hash(ss, s->v.key), s->slot);
    ss->slots[s->slot] = NULL;
    ss->free[ss->n_free++] = s->slot;
    ss->count--;
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

void sessions_each(struct sessions *ss, void (*fn)(struct signal_server *srv, struct session *s),
                   struct signal_server *srv)
{
    for (uint32_t i = 0; i < ss->max; i++) {
        if (ss->slots[i] != NULL)
            fn(srv, ss->slots[i]);
    }
}

void sessions_free(struct sessions *ss)
{
    if (ss == NULL)
        return;
    hindex_free(&ss->index);
    free(ss->slots);
    free(ss->free);
    free(ss);
}

uint32_t sessions_purge_due(struct sessions *ss, uint32_t now_s)
{
    if (now_s < ss->next_purge_s)
        return 0;
    ss->next_purge_s = now_s + QR_STORE_PURGE_S;
    return 1;
}
