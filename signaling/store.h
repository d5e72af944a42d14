/* Where visits outlive the process: one small interface, two backends.
 * SQLite (store_sqlite.c) is the embedded default, a file in the state
 * directory of one machine; NATS JetStream (store_nats.c) is the cluster,
 * shared by every replica. The store keeps three things:
 *   - token claims: a jti, spent once, by atomic create, with the seat it
 *     opened, kept until the token could no longer be presented;
 *   - visit records: the visit core's state as visit_codec encodes it,
 *     written on every change before the actions of that change go out;
 *   - ownership: which replica runs a visit (a lease).
 * Calls block for at most the backend's timeout and run on the event-loop
 * thread. Errors never carry a record, a jti or a name. */
#ifndef QUIETROOM_SIGNAL_STORE_H
#define QUIETROOM_SIGNAL_STORE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quietroom/base/limits.h"

#define STORE_CLUSTER_SEEDS_MAX 8
#define STORE_URL_MAX 256

/* The options (signal config: state-dir, cluster, cluster-tls-ca,
 * cluster-tls-cert, cluster-tls-key, cluster-creds, cluster-replicas). */
struct store_settings {
    char state_dir[PATH_MAX];                 /* SQLite: DIR/signal.db */
    char cluster[STORE_CLUSTER_SEEDS_MAX][STORE_URL_MAX]; /* nats://HOST:PORT; none: SQLite */
    unsigned n_cluster;
    char tls_ca[PATH_MAX], tls_cert[PATH_MAX], tls_key[PATH_MAX];
    char creds[PATH_MAX];                     /* NATS credentials file */
    uint32_t replicas;                        /* JetStream replicas of buckets (3) */
    uint32_t claim_ttl_s;                     /* how long a claim is kept: token-max-
                                               * lifetime plus skew (set by the config) */
};

enum store_result {
    STORE_OK,
    STORE_TAKEN,        /* claim: the key was claimed before */
    STORE_CONFLICT,     /* save: someone else wrote the record since we read it */
    STORE_UNAVAILABLE,  /* the backend did not answer or could not write */
    STORE_ABSENT,       /* fetch: no such record */
};

/* A token claim's key: SHA-256 of iss, a NUL and jti, in hex. Neither
 * string is kept, and every key has the same shape (a NATS key too). */
#define STORE_KEY_LEN 65
int store_claim_key(const char *iss, const char *jti, char key[STORE_KEY_LEN]);

/* What a backend provides. Visits are named by their key (visit_key: 32
 * hex digits, never the EHR's id). `rev` is the record's revision as the
 * backend counts it (0: none yet); save with rev writes only over that
 * revision. */
struct store_ops {
    const char *name;                         /* "sqlite", "nats" */
    enum store_result (*claim)(void *impl, const char *key, int64_t until_s, const char *sid,
                               const char *who);
    /* Whether key was claimed (STORE_TAKEN) or not (STORE_ABSENT); reads
     * only, for a link checked before it is used. */
    enum store_result (*claimed)(void *impl, const char *key);
    enum store_result (*save)(void *impl, const char *vkey, const char *rec, size_t len,
                              uint64_t *rev);
    enum store_result (*forget)(void *impl, const char *vkey);
    /* One record (*rec malloc'ed, the caller wipes and frees it). */
    enum store_result (*fetch)(void *impl, const char *vkey, char **rec, size_t *len,
                               uint64_t *rev);
    /* Calls each(ctx, vkey, rec, len, rev) for every record; stops early
     * if each returns non-zero. */
    enum store_result (*load)(void *impl,
                              int (*each)(void *ctx, const char *vkey, const char *rec,
                                          size_t len, uint64_t rev),
                              void *ctx);
    /* Ownership of a visit by one replica (node id) for lease_ms: taken
     * when nobody holds it or the holder's lease lapsed, renewed when we
     * hold it; STORE_TAKEN (holder named) while another node's lease runs.
     * owner only reads ("" when nobody). SQLite, with one process, grants
     * every visit to it. disown lets go at once. */
    enum store_result (*own)(void *impl, const char *vkey, const char *node, uint32_t lease_ms,
                             char *holder, size_t holder_len);
    enum store_result (*owner)(void *impl, const char *vkey, char *holder, size_t holder_len);
    enum store_result (*disown)(void *impl, const char *vkey, const char *node);
    /* Drops claims whose until is past (a backend with TTLs may do nothing). */
    void (*purge)(void *impl, int64_t now_s);
    void (*free)(void *impl);
};

struct store {
    const struct store_ops *ops;
    void *impl;
};

/* Opens the backend the settings name: NATS when cluster URLs are given,
 * else SQLite in state_dir (created 0700 if missing; the database file is
 * 0600, and a lock file keeps a second process off it). NULL with err. */
struct store *store_open(const struct store_settings *s, char *err, size_t errlen);
void store_free(struct store *st);

/* Backends (each NULL with err on failure). */
struct store *store_sqlite_open(const char *dir, char *err, size_t errlen);
struct store *store_nats_open(const struct store_settings *s, char *err, size_t errlen);

static inline enum store_result store_claim(struct store *st, const char *key, int64_t until_s,
                                            const char *sid, const char *who)
{
    return st->ops->claim(st->impl, key, until_s, sid, who);
}

static inline enum store_result store_fetch(struct store *st, const char *vkey, char **rec,
                                            size_t *len, uint64_t *rev)
{
    return st->ops->fetch(st->impl, vkey, rec, len, rev);
}

static inline enum store_result store_claimed(struct store *st, const char *key)
{
    return st->ops->claimed(st->impl, key);
}

static inline enum store_result store_save(struct store *st, const char *vkey, const char *rec,
                                           size_t len, uint64_t *rev)
{
    return st->ops->save(st->impl, vkey, rec, len, rev);
}

static inline enum store_result store_forget(struct store *st, const char *vkey)
{
    return st->ops->forget(st->impl, vkey);
}

static inline enum store_result store_own(struct store *st, const char *vkey, const char *node,
                                          uint32_t lease_ms, char *holder, size_t holder_len)
{
    return st->ops->own(st->impl, vkey, node, lease_ms, holder, holder_len);
}

/* The NATS connection of a cluster store (cluster.c shares it), or NULL. */
struct __natsConnection;
struct __natsConnection *store_nats_connection(struct store *st);

static inline void store_purge(struct store *st, int64_t now_s)
{
    st->ops->purge(st->impl, now_s);
}

const char *store_result_name(enum store_result r);

#endif
