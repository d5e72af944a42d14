/* Visits to and from the store: the record of a visit is written after
 * every core call that changed it, before that call's actions go out (so
 * nobody is told of a state a crash could lose), and read back at start.
 * What counts as a change is the record itself: its SHA-256 is compared
 * with the last one written, so the core needs no change tracking. */
#include "session_internal.h"

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

/* A save refused because the stored revision is not the one we hold.
 * Either our own last write landed although we were told it had not (a
 * write acknowledged late, during a NATS leader election): the stored
 * record is ours, and so is its revision. Or, on one machine, a record was
 * left in the store for this visit (one that could not be loaded): we are
 * the only writer, and it goes. Otherwise another replica wrote it: not
 * ours to overwrite (the lease decides who runs the visit). */
static enum store_result session_store__conflict(struct signal_server *srv, struct session *s,
                                                 const char *text, const uint8_t md[32])
{
    char *rec = NULL;
    size_t len = 0;
    uint64_t rev = 0;
    uint8_t theirs[32];
    enum store_result r = srv->store->ops->fetch(srv->store->impl, s->v.key, &rec, &len, &rev);

    if (r == STORE_ABSENT)
        rev = 0; /* forgotten meanwhile: create it again */
    else if (r != STORE_OK)
        return r;
    if (rec != NULL && session_store__digest(rec, len, theirs) == 0 &&
        memcmp(theirs, md, sizeof(theirs)) == 0) {
        s->rev = rev;
        r = STORE_OK;
    } else if (srv->cluster == NULL || r == STORE_ABSENT) {
        s->rev = rev;
        r = store_save(srv->store, s->v.key, text, strlen(text), &s->rev);
    } else {
        r = STORE_CONFLICT;
    }
    if (rec != NULL)
        OPENSSL_cleanse(rec, len);
    free(rec);
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
    if (r == STORE_CONFLICT)
        r = session_store__conflict(srv, s, text, md);
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
    /* Not while a cluster store is not answering: each retry would wait
     * out a timeout, visit after visit (session_cluster_quiet). */
    if (s->unsaved && !session_cluster_quiet(srv))
        session_store_save(srv, s, false);
}

/* --- reading back at start ----------------------------------------------------- */

struct session_store__load {
    struct signal_server *srv;
    struct visit *v;                    /* scratch: a struct visit is large */
    int loaded;
};

static int session_store__each(void *ctx, const char *vkey, const char *rec, size_t len,
                               uint64_t rev)
{
    struct session_store__load *l = ctx;
    struct session *s;
    /* A pair waiting for a relay (-1), or on one this configuration does
     * not have, is read back as it is: the visit tick places or moves it
     * (relay_unknown). */
    int ok = visit_decode_text(rec, len, l->v) == 0 && strcmp(l->v->key, vkey) == 0;

    if (ok && l->v->ended) {
        /* Ended, but its forget failed or was cut short: done now. */
        store_forget(l->srv->store, vkey);
        return 0;
    }
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
