/* Entries are kept dense (removal moves the last one into the hole), so the
 * purge scan touches only live revocations. */
#include "revoke.h"

#include <stdlib.h>
#include <string.h>

struct revoke_key {
    const struct revoke_set *set;
    uint8_t kid;
    const uint8_t *session;
};

static uint64_t revoke__hash(const struct revoke_set *s, uint8_t kid, const uint8_t *session)
{
    uint64_t w;

    memcpy(&w, session, sizeof(w));
    return hindex_mix(hindex_mix(s->seed ^ w) ^ kid);
}

static bool revoke__eq(const void *ctx, uint32_t id)
{
    const struct revoke_key *k = ctx;
    const struct revoke_entry *e = &k->set->entries[id];

    return e->kid == k->kid && memcmp(e->session, k->session, CREDS_SESSION_KEY_LEN) == 0;
}

int revoke_init(struct revoke_set *s, uint32_t max, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->max = max;
    s->seed = seed;
    if ((s->entries = calloc(max, sizeof(*s->entries))) == NULL)
        return -1;
    if (hindex_init(&s->index, max) != 0) {
        free(s->entries);
        s->entries = NULL;
        return -1;
    }
    return 0;
}

void revoke_free(struct revoke_set *s)
{
    hindex_free(&s->index);
    free(s->entries);
    s->entries = NULL;
}

static uint32_t revoke__find(const struct revoke_set *s, uint8_t kid, const uint8_t *session)
{
    struct revoke_key k = {s, kid, session};

    return hindex_find(&s->index, revoke__hash(s, kid, session), revoke__eq, &k);
}

int revoke_add(struct revoke_set *s, uint8_t kid, const uint8_t *session, uint32_t until)
{
    uint32_t id = revoke__find(s, kid, session);
    struct revoke_entry *e;

    if (id != HINDEX_NONE) {
        if (s->entries[id].until < until)
            s->entries[id].until = until;
        return 0;
    }
    if (s->count == s->max)
        return -1;
    e = &s->entries[s->count];
    e->kid = kid;
    memcpy(e->session, session, CREDS_SESSION_KEY_LEN);
    e->until = until;
    if (hindex_insert(&s->index, revoke__hash(s, kid, session), s->count) != 0)
        return -1;
    s->count++;
    return 0;
}

bool revoke_contains(const struct revoke_set *s, uint8_t kid, const uint8_t *session)
{
    return revoke__find(s, kid, session) != HINDEX_NONE;
}

void revoke_purge(struct revoke_set *s, uint32_t now)
{
    uint32_t i = 0;

    while (i < s->count) {
        struct revoke_entry *e = &s->entries[i];
        struct revoke_entry *last = &s->entries[s->count - 1];

        if (e->until > now) {
            i++;
            continue;
        }
        hindex_remove(&s->index, revoke__hash(s, e->kid, e->session), i);
        if (e != last) {
            hindex_remove(&s->index, revoke__hash(s, last->kid, last->session), s->count - 1);
            *e = *last;
            hindex_insert(&s->index, revoke__hash(s, e->kid, e->session), i);
        }
        s->count--;
    }
}
