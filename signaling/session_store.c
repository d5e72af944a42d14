/* Visits to and from the store: the record of a visit is written after
 * every core call that changed it, before that call's actions go out (so
 * nobody is told of a state a crash could lose), and read back at start.
 * What counts as a change is the record itself: its SHA-256 is compared
 * with the last one written, so the core needs no change tracking. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "quietroom/base/log.h"
#include "server.h"
#include "store.h"
#include "visit_codec.h"

static int session_store__digest(const char *text, size_t len, uint8_t md[32])
{
    unsigned n = 0;

    return EVP_Digest(text, len, md, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
}

static enum store_result session_store__failed(struct signal_server *srv, struct session *s,
                                               const char *op, enum store_result r)
{
    s->unsaved = true;
    stats_count(&srv->stats.store_failures, op);
    log_warn("state store: %s a visit: %s (retried)", op, store_result_name(r));
    return r;
}

enum store_result session_store_save(struct signal_server *srv, struct session *s, bool over)
{
    json_t *j;
    char *text = NULL;
    uint8_t md[32];
    enum store_result r;

    if (over) {
        if ((r = store_forget(srv->store, s->v.key)) != STORE_OK)
            stats_count(&srv->stats.store_failures, "forget");
        return r;
    }
    if ((j = visit_encode(&s->v)) == NULL || (text = json_dumps(j, JSON_COMPACT)) == NULL ||
        session_store__digest(text, strlen(text), md) != 0) {
        json_decref(j);
        free(text);
        return session_store__failed(srv, s, "encode", STORE_UNAVAILABLE);
    }
    json_decref(j);
    if (!s->unsaved && s->rev != 0 && memcmp(md, s->saved, sizeof(md)) == 0) {
        free(text);
        return STORE_OK;
    }
    r = store_save(srv->store, s->v.key, text, strlen(text), &s->rev);
    /* The record holds names: wiped, not just freed. */
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    if (r != STORE_OK)
        return session_store__failed(srv, s, "save", r);
    memcpy(s->saved, md, sizeof(md));
    s->unsaved = false;
    srv->stats.store_writes++;
    return STORE_OK;
}

void session_store_retry(struct signal_server *srv, struct session *s)
{
    if (s->unsaved)
        session_store_save(srv, s, false);
}

/* --- reading back at start ----------------------------------------------------- */

struct session_store__load {
    struct signal_server *srv;
    struct visit *v;                    /* scratch: a struct visit is large */
    int loaded;
};

/* A pair on a relay this configuration does not have cannot be revoked or
 * renewed: such a record is left for an operator (and counted). */
static bool session_store__relays_known(const struct signal_server *srv, const struct visit *v)
{
    for (unsigned i = 0; i < v->n_pairs; i++) {
        if (v->pairs[i].relay < 0 || (unsigned)v->pairs[i].relay >= srv->cfg.n_relays)
            return false;
    }
    return true;
}

static int session_store__each(void *ctx, const char *vkey, const char *rec, size_t len,
                               uint64_t rev)
{
    struct session_store__load *l = ctx;
    json_t *j = json_loadb(rec, len, JSON_REJECT_DUPLICATES, NULL);
    struct session *s;
    int ok = j != NULL && visit_decode(j, l->v) == 0 && strcmp(l->v->key, vkey) == 0 &&
             !l->v->ended && session_store__relays_known(l->srv, l->v);

    json_decref(j);
    if (!ok) {
        stats_count(&l->srv->stats.store_failures, "unreadable");
        log_error("state store: a visit record cannot be used and was left in the store");
        return 0;
    }
    sessions_clock_floor(l->srv->sessions, visit_latest_ms(l->v));
    if ((s = sessions_adopt(l->srv->sessions, l->v)) == NULL) {
        stats_count(&l->srv->stats.store_failures, "no_room");
        log_error("state store: no room for a stored visit (max-sessions)");
        return 0;
    }
    s->rev = rev;
    s->unsaved = true;                  /* visit_restored changed it: written on the tick */
    l->loaded++;
    return 0;
}

int session_store_load(struct signal_server *srv)
{
    struct session_store__load l = {srv, calloc(1, sizeof(struct visit)), 0};
    enum store_result r;

    if (l.v == NULL)
        return -1;
    r = srv->store->ops->load(srv->store->impl, session_store__each, &l);
    OPENSSL_cleanse(l.v, sizeof(*l.v));
    free(l.v);
    /* Only now is the clock past every record read. */
    sessions_restored(srv);
    return r == STORE_OK ? l.loaded : -1;
}
