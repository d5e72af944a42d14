/* The cluster store: JetStream KV buckets shared by every signaling
 * replica, through the NATS C client (libnats 3.4).
 *   qr_claims  token claims, one key per claim key, created once; the
 *              bucket TTL (the settings' claim_ttl_s) outlives any token;
 *   qr_visits  visit records, key = the visit key, History 1, no TTL;
 *              revisions are the stream sequences, so save is a
 *              compare-and-set on the record's last sequence;
 *   qr_owners  which replica runs a visit: value = node id, the bucket TTL
 *              is the lease, and every renewal is a new message, so the
 *              age that counts is that of the last renewal.
 * Every write that decides something (claim, first save, takeover) is a
 * create or a sequence-checked update acknowledged by the stream leader,
 * so a lost quorum gives STORE_UNAVAILABLE, never a false STORE_OK. */
#include "store.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <nats/nats.h>

#define STORE_NATS_CONNECT_MS 2000        /* one connect attempt */
#define STORE_NATS_OP_MS 2000             /* every JetStream request, KV ops included */
#define STORE_NATS_RECONNECT_WAIT_MS 250  /* between reconnect attempts, forever */
#define STORE_NATS_START_TRIES 10         /* bucket requests at start, ~30 s in all */
#define STORE_NATS_KEY_MAX 33
#define STORE_NATS_BUCKET_CLAIMS "qr_claims"
#define STORE_NATS_BUCKET_VISITS "qr_visits"
#define STORE_NATS_BUCKET_OWNERS "qr_owners"
/* What the server says when a create finds the key, or an update finds a
 * newer revision (JSStreamWrongLastSequenceErr, 10071). kvStore_Create and
 * kvStore_Update report it as NATS_ERR with this text: the error code is
 * not passed through, so the text is the only way to tell it apart. */
#define STORE_NATS_WRONG_LAST "wrong last sequence"

struct store_nats {
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    kvStore *claims, *visits, *owners;   /* owners: on first own() */
    uint32_t replicas;
    /* A claim is kept while its token could be presented: the settings'
     * claim_ttl_s (token-max-lifetime plus skew). JetStream 2.9 has only a
     * bucket-wide max age, so claim()'s until_s is advisory here (kept in
     * the value for operators); every claim lives this long. */
    uint32_t claim_ttl_s;
};

/* --- keys ------------------------------------------------------------------------ */

/* Visits are named by their key (visit_key): 32 hex digits, a valid NATS
 * key as it is. Anything else was not written by us: -1. */
static int store_nats__key(const char *vkey, char key[STORE_NATS_KEY_MAX])
{
    size_t n = strlen(vkey);

    if (n == 0 || n >= STORE_NATS_KEY_MAX || strspn(vkey, "0123456789abcdef") != n)
        return -1;
    memcpy(key, vkey, n + 1);
    return 0;
}

/* --- results --------------------------------------------------------------------- */

/* A refused create or update (the key exists, or moved on): 1; anything
 * else, a timeout, no responders, no quorum, a closed connection: 0. The
 * thread's last-error text outlives later successes, so it is read only
 * when this call itself returned NATS_ERR (which always sets it). */
static int store_nats__wrong_last(natsStatus s)
{
    const char *text;

    if (s != NATS_ERR)
        return 0;
    text = nats_GetLastError(NULL);
    return text != NULL && strstr(text, STORE_NATS_WRONG_LAST) != NULL;
}

static enum store_result store_nats__write_result(natsStatus s, enum store_result refused)
{
    if (s == NATS_OK)
        return STORE_OK;
    return store_nats__wrong_last(s) ? refused : STORE_UNAVAILABLE;
}

/* --- ops ------------------------------------------------------------------------- */

static enum store_result store_nats__claim(void *impl, const char *key, int64_t until_s,
                                           const char *sid, const char *who)
{
    struct store_nats *n = impl;
    json_t *v = json_pack("{s:s,s:s,s:I}", "sid", sid, "who", who, "until", (json_int_t)until_s);
    char *text = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
    uint64_t rev = 0;
    natsStatus s = NATS_NO_MEMORY;

    if (text != NULL)
        s = kvStore_Create(&rev, n->claims, key, text, (int)strlen(text));
    free(text);
    json_decref(v);
    /* Only an acknowledged create is a claim. */
    return store_nats__write_result(s, STORE_TAKEN);
}

static enum store_result store_nats__claimed(void *impl, const char *key)
{
    struct store_nats *n = impl;
    kvEntry *e = NULL;
    natsStatus s = kvStore_Get(&e, n->claims, key);

    kvEntry_Destroy(e);
    if (s == NATS_NOT_FOUND)
        return STORE_ABSENT;
    return s == NATS_OK ? STORE_TAKEN : STORE_UNAVAILABLE;
}

static enum store_result store_nats__save(void *impl, const char *vkey, const char *rec,
                                          size_t len, uint64_t *rev)
{
    struct store_nats *n = impl;
    char key[STORE_NATS_KEY_MAX];
    uint64_t next = 0;
    natsStatus s;

    if (store_nats__key(vkey, key) != 0 || len > INT32_MAX)
        return STORE_UNAVAILABLE;
    if (*rev == 0)
        s = kvStore_Create(&next, n->visits, key, rec, (int)len);
    else
        s = kvStore_Update(&next, n->visits, key, rec, (int)len, *rev);
    if (s == NATS_OK)
        *rev = next;
    return store_nats__write_result(s, STORE_CONFLICT);
}

static enum store_result store_nats__forget(void *impl, const char *vkey)
{
    struct store_nats *n = impl;
    char key[STORE_NATS_KEY_MAX];
    kvPurgeOptions po;

    if (store_nats__key(vkey, key) != 0)
        return STORE_UNAVAILABLE;
    /* Purge, not delete: the record (health information) leaves the
     * stream, only a marker stays. */
    kvPurgeOptions_Init(&po);
    po.Timeout = STORE_NATS_OP_MS;
    if (kvStore_Purge(n->visits, key, &po) != NATS_OK)
        return STORE_UNAVAILABLE;
    /* The owner key too, when this replica has the owners bucket open;
     * otherwise it ages out within one lease. */
    if (n->owners != NULL && kvStore_Delete(n->owners, key) != NATS_OK)
        return STORE_UNAVAILABLE;
    return STORE_OK;
}

/* One record of load(): 1 to stop, 0 to go on, -1 on failure. A key gone
 * between the listing and the get (forgotten meanwhile) is skipped. */
static int store_nats__load_one(struct store_nats *n, const char *key,
                                int (*each)(void *, const char *, const char *, size_t, uint64_t),
                                void *ctx)
{
    kvEntry *e = NULL;
    natsStatus s;
    int rc;

    s = kvStore_Get(&e, n->visits, key);
    if (s == NATS_NOT_FOUND)
        return 0;
    if (s != NATS_OK)
        return -1;
    rc = each(ctx, key, (const char *)kvEntry_Value(e), (size_t)kvEntry_ValueLen(e),
              kvEntry_Revision(e));
    kvEntry_Destroy(e);
    return rc != 0 ? 1 : 0;
}

static enum store_result store_nats__load(void *impl,
                                          int (*each)(void *ctx, const char *vkey,
                                                      const char *rec, size_t len, uint64_t rev),
                                          void *ctx)
{
    struct store_nats *n = impl;
    kvKeysList list = {0};
    kvWatchOptions wo;
    natsStatus s;
    int rc = 0;

    kvWatchOptions_Init(&wo);
    wo.Timeout = STORE_NATS_OP_MS;
    s = kvStore_Keys(&list, n->visits, &wo);
    /* An empty bucket is zero records, not a failure (libnats 3.4.1 gives
     * NATS_OK and no keys; NATS_NOT_FOUND is taken the same way). */
    if (s == NATS_NOT_FOUND)
        return STORE_OK;
    if (s != NATS_OK)
        return STORE_UNAVAILABLE;
    for (int i = 0; i < list.Count && rc == 0; i++)
        rc = store_nats__load_one(n, list.Keys[i], each, ctx);
    kvKeysList_Destroy(&list);
    return rc < 0 ? STORE_UNAVAILABLE : STORE_OK;
}

static enum store_result store_nats__fetch(void *impl, const char *vkey, char **rec,
                                           size_t *len, uint64_t *rev)
{
    struct store_nats *n = impl;
    char key[STORE_NATS_KEY_MAX];
    kvEntry *e = NULL;
    natsStatus s;
    int vlen;

    if (store_nats__key(vkey, key) != 0)
        return STORE_ABSENT;
    s = kvStore_Get(&e, n->visits, key);
    if (s == NATS_NOT_FOUND)
        return STORE_ABSENT;
    if (s != NATS_OK)
        return STORE_UNAVAILABLE;
    vlen = kvEntry_ValueLen(e);
    if (vlen < 0 || (*rec = malloc((size_t)vlen + 1)) == NULL) {
        kvEntry_Destroy(e);
        return STORE_UNAVAILABLE;
    }
    memcpy(*rec, kvEntry_Value(e), (size_t)vlen);
    (*rec)[vlen] = '\0';
    *len = (size_t)vlen;
    *rev = kvEntry_Revision(e);
    kvEntry_Destroy(e);
    return STORE_OK;
}

static kvStore *store_nats__bucket(struct store_nats *n, const char *name, int64_t ttl_ms,
                                   natsStatus *st);

/* The owners bucket's TTL is the lease, fixed when the bucket is made:
 * the first own() anywhere in the cluster sets it from its lease_ms, and a
 * later different lease_ms binds to the bucket as it is. */
static kvStore *store_nats__owners(struct store_nats *n, uint32_t lease_ms)
{
    natsStatus s;

    if (n->owners == NULL)
        n->owners = store_nats__bucket(n, STORE_NATS_BUCKET_OWNERS, lease_ms, &s);
    return n->owners;
}

/* The holder named in an owners entry, as a C string. */
static void store_nats__holder(kvEntry *e, char *holder, size_t len)
{
    int n = kvEntry_ValueLen(e);

    if (n < 0 || (size_t)n >= len)
        n = 0;
    memcpy(holder, kvEntry_Value(e), (size_t)n);
    holder[n] = '\0';
}

static enum store_result store_nats__own(void *impl, const char *vkey, const char *node,
                                         uint32_t lease_ms, char *holder, size_t holder_len)
{
    struct store_nats *n = impl;
    kvStore *kv = store_nats__owners(n, lease_ms);
    char key[STORE_NATS_KEY_MAX];
    kvEntry *e = NULL;
    uint64_t rev = 0;
    enum store_result r;
    natsStatus s;

    holder[0] = '\0';
    if (kv == NULL || store_nats__key(vkey, key) != 0)
        return STORE_UNAVAILABLE;
    s = kvStore_Get(&e, kv, key);
    if (s == NATS_NOT_FOUND) {
        /* Nobody holds it, or the holder's lease aged out of the stream. */
        s = kvStore_Create(&rev, kv, key, node, (int)strlen(node));
        r = store_nats__write_result(s, STORE_TAKEN);
        if (r == STORE_OK)
            snprintf(holder, holder_len, "%s", node);
        if (r != STORE_TAKEN)
            return r;
        /* Someone created it between the read and the create, or the read
         * came from a server behind the others: read again, to name the
         * holder (which may be this node). */
        if ((s = kvStore_Get(&e, kv, key)) != NATS_OK)
            return s == NATS_NOT_FOUND ? STORE_TAKEN : STORE_UNAVAILABLE;
    } else if (s != NATS_OK)
        return STORE_UNAVAILABLE;
    store_nats__holder(e, holder, holder_len);
    if (strcmp(holder, node) != 0) {
        kvEntry_Destroy(e);
        return STORE_TAKEN;
    }
    /* Ours: renew by writing over exactly what we read, so a takeover in
     * between (our lease lapsed) makes this fail instead of stealing back. */
    s = kvStore_Update(&rev, kv, key, node, (int)strlen(node), kvEntry_Revision(e));
    r = store_nats__write_result(s, STORE_TAKEN);
    kvEntry_Destroy(e);
    return r;
}

static enum store_result store_nats__owner(void *impl, const char *vkey, char *holder,
                                           size_t holder_len)
{
    struct store_nats *n = impl;
    kvStore *kv = store_nats__owners(n, QR_CLUSTER_LEASE_MS);
    char key[STORE_NATS_KEY_MAX];
    kvEntry *e = NULL;
    natsStatus s;

    holder[0] = '\0';
    if (kv == NULL || store_nats__key(vkey, key) != 0)
        return STORE_UNAVAILABLE;
    s = kvStore_Get(&e, kv, key);
    if (s == NATS_NOT_FOUND)
        return STORE_OK;
    if (s != NATS_OK)
        return STORE_UNAVAILABLE;
    store_nats__holder(e, holder, holder_len);
    kvEntry_Destroy(e);
    return STORE_OK;
}

/* Deletes the owner key only at the revision we read: the KV delete marker
 * (header KV-Operation: DEL, what kvStore_Delete writes) published with an
 * expected last sequence. kvStore_Delete in libnats 3.4 has no such check;
 * without it, a lease that lapsed between our get and our delete would take
 * the new holder's ownership with it. */
static natsStatus store_nats__delete_at(struct store_nats *n, const char *key, uint64_t rev,
                                        jsErrCode *jerr)
{
    char subj[sizeof("$KV." STORE_NATS_BUCKET_OWNERS ".") + STORE_NATS_KEY_MAX];
    natsMsg *m = NULL;
    jsPubOptions po;
    natsStatus s;

    snprintf(subj, sizeof(subj), "$KV.%s.%s", STORE_NATS_BUCKET_OWNERS, key);
    s = natsMsg_Create(&m, subj, NULL, NULL, 0);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "KV-Operation", "DEL");
    if (s == NATS_OK) {
        jsPubOptions_Init(&po);
        po.ExpectLastSubjectSeq = rev;
        s = js_PublishMsg(NULL, n->js, m, &po, jerr);
    }
    natsMsg_Destroy(m);
    return s;
}

static enum store_result store_nats__disown(void *impl, const char *vkey, const char *node)
{
    struct store_nats *n = impl;
    char key[STORE_NATS_KEY_MAX];
    kvEntry *e = NULL;
    jsErrCode jerr = 0;
    uint64_t rev;
    natsStatus s;
    bool ours;

    if (n->owners == NULL)
        return STORE_OK;   /* never owned anything from here */
    if (store_nats__key(vkey, key) != 0)
        return STORE_UNAVAILABLE;
    s = kvStore_Get(&e, n->owners, key);
    if (s == NATS_NOT_FOUND)
        return STORE_OK;
    if (s != NATS_OK)
        return STORE_UNAVAILABLE;
    ours = (size_t)kvEntry_ValueLen(e) == strlen(node) &&
           memcmp(kvEntry_Value(e), node, strlen(node)) == 0;
    rev = kvEntry_Revision(e);
    kvEntry_Destroy(e);
    if (!ours)
        return STORE_OK;
    s = store_nats__delete_at(n, key, rev, &jerr);
    /* A newer revision: someone took over since, nothing of ours to drop. */
    if (s == NATS_OK || jerr == JSStreamWrongLastSequenceErr)
        return STORE_OK;
    return STORE_UNAVAILABLE;
}

/* Claims and owners expire by bucket TTL. */
static void store_nats__purge(void *impl, int64_t now_s)
{
    (void)impl, (void)now_s;
}

static void store_nats__free(void *impl)
{
    struct store_nats *n = impl;

    if (n == NULL)
        return;
    kvStore_Destroy(n->claims);
    kvStore_Destroy(n->visits);
    kvStore_Destroy(n->owners);
    jsCtx_Destroy(n->js);
    natsConnection_Destroy(n->nc);
    natsOptions_Destroy(n->opts);
    free(n);
}

static const struct store_ops store_nats_ops = {
    .name = "nats",
    .claim = store_nats__claim,
    .claimed = store_nats__claimed,
    .save = store_nats__save,
    .forget = store_nats__forget,
    .load = store_nats__load,
    .fetch = store_nats__fetch,
    .own = store_nats__own,
    .owner = store_nats__owner,
    .disown = store_nats__disown,
    .purge = store_nats__purge,
    .free = store_nats__free,
};

/* --- opening --------------------------------------------------------------------- */

/* Creates the bucket, or binds to it when it exists: creating it again
 * with the same settings succeeds, and with others (replicas or TTL changed
 * since, which needs an operator to edit the stream) the server refuses
 * and the bucket as it is wins. ttl_ms 0: no TTL. */
static kvStore *store_nats__bucket(struct store_nats *n, const char *name, int64_t ttl_ms,
                                   natsStatus *st)
{
    kvStore *kv = NULL;
    kvConfig cfg;

    kvConfig_Init(&cfg);
    cfg.Bucket = name;
    cfg.History = 1;
    cfg.TTL = ttl_ms * 1000000;   /* nanoseconds */
    cfg.StorageType = js_FileStorage;
    cfg.Replicas = (int)n->replicas;
    *st = js_CreateKeyValue(&kv, n->js, &cfg);
    if (*st == NATS_ERR)
        *st = js_KeyValue(&kv, n->js, name);
    return *st == NATS_OK ? kv : NULL;
}

/* The host part of a URL ("nats://user@host:port", "tls://[::1]:4222"):
 * copied into host; -1 if there is none. */
static int store_nats__url_host(const char *url, char *host, size_t n)
{
    const char *p = strstr(url, "://"), *at, *end;

    if (p == NULL || p == url)
        return -1;
    p += 3;
    at = strrchr(p, '@');   /* a password may hold '@' too */
    if (at != NULL)
        p = at + 1;
    if (*p == '[') {
        end = strchr(++p, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':'))
            return -1;
    } else {
        end = p + strcspn(p, ":/");
    }
    if (end == p || (size_t)(end - p) >= n)
        return -1;
    memcpy(host, p, (size_t)(end - p));
    host[end - p] = '\0';
    return 0;
}

static bool store_nats__loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Health information must not cross a network in the clear: a server off
 * this machine needs TLS with our CA (cluster-tls-ca). */
static int store_nats__check_urls(const struct store_settings *s, char *err, size_t errlen)
{
    char host[STORE_URL_MAX];

    if (s->n_cluster == 0 || s->n_cluster > STORE_CLUSTER_SEEDS_MAX) {
        snprintf(err, errlen, "nats: no cluster URL");
        return -1;
    }
    for (unsigned i = 0; i < s->n_cluster; i++) {
        if (strncmp(s->cluster[i], "nats://", 7) != 0 && strncmp(s->cluster[i], "tls://", 6) != 0) {
            snprintf(err, errlen, "nats: cluster URL %u is not nats:// or tls://", i + 1);
            return -1;
        }
        if (store_nats__url_host(s->cluster[i], host, sizeof(host)) != 0) {
            snprintf(err, errlen, "nats: cluster URL %u has no host", i + 1);
            return -1;
        }
        if (!store_nats__loopback(host) && s->tls_ca[0] == '\0') {
            snprintf(err, errlen,
                     "nats: cluster URL %u is not loopback and cluster-tls-ca is not set: "
                     "visit state must not cross a network without TLS",
                     i + 1);
            return -1;
        }
    }
    return 0;
}

static natsStatus store_nats__tls(natsOptions *o, const struct store_settings *s)
{
    natsStatus st = NATS_OK;

    if (s->tls_ca[0] == '\0')
        return NATS_OK;
    st = natsOptions_SetSecure(o, true);
    if (st == NATS_OK)
        st = natsOptions_LoadCATrustedCertificates(o, s->tls_ca);
    if (st == NATS_OK && s->tls_cert[0] != '\0')
        st = natsOptions_LoadCertificatesChain(o, s->tls_cert,
                                               s->tls_key[0] != '\0' ? s->tls_key : s->tls_cert);
    return st;
}

static natsStatus store_nats__options(natsOptions **out, const struct store_settings *s)
{
    const char *servers[STORE_CLUSTER_SEEDS_MAX];
    natsStatus st = natsOptions_Create(out);

    for (unsigned i = 0; i < s->n_cluster; i++)
        servers[i] = s->cluster[i];
    if (st == NATS_OK)
        st = natsOptions_SetServers(*out, servers, (int)s->n_cluster);
    if (st == NATS_OK)
        st = natsOptions_SetTimeout(*out, STORE_NATS_CONNECT_MS);
    /* A lost server must not end the process: reconnect for ever, and let
     * each call fail within its timeout meanwhile. */
    if (st == NATS_OK)
        st = natsOptions_SetMaxReconnect(*out, -1);
    if (st == NATS_OK)
        st = natsOptions_SetReconnectWait(*out, STORE_NATS_RECONNECT_WAIT_MS);
    /* Replica-to-replica messages are few and each waits on the wire for
     * the flusher thread otherwise (~1 ms each way, measured by
     * loadtest/visits.py): sent at once. */
    if (st == NATS_OK)
        st = natsOptions_SetSendAsap(*out, true);
    if (st == NATS_OK)
        st = store_nats__tls(*out, s);
    if (st == NATS_OK && s->creds[0] != '\0')
        st = natsOptions_SetUserCredentialsFromFiles(*out, s->creds, NULL);
    return st;
}

static natsStatus store_nats__connect(struct store_nats *n, const struct store_settings *s,
                                      const char **what)
{
    jsOptions jo;
    natsStatus st;

    *what = "options";
    st = store_nats__options(&n->opts, s);
    if (st != NATS_OK)
        return st;
    *what = "connect";
    st = natsConnection_Connect(&n->nc, n->opts);
    if (st != NATS_OK)
        return st;
    *what = "jetstream";
    jsOptions_Init(&jo);
    jo.Wait = STORE_NATS_OP_MS;
    st = natsConnection_JetStream(&n->js, n->nc, &jo);
    if (st != NATS_OK)
        return st;
    /* A cluster that has just started (or lost a server) answers bucket
     * requests only once its JetStream meta leader is elected: retried,
     * so replicas and NATS may start in any order. */
    for (int i = 0; i < STORE_NATS_START_TRIES; i++) {
        if (n->claims == NULL) {
            *what = "bucket " STORE_NATS_BUCKET_CLAIMS;
            n->claims = store_nats__bucket(n, STORE_NATS_BUCKET_CLAIMS,
                                           (int64_t)n->claim_ttl_s * 1000, &st);
        }
        if (n->claims != NULL && n->visits == NULL) {
            *what = "bucket " STORE_NATS_BUCKET_VISITS;
            n->visits = store_nats__bucket(n, STORE_NATS_BUCKET_VISITS, 0, &st);
        }
        if (n->visits != NULL && store_nats__owners(n, QR_CLUSTER_LEASE_MS) == NULL)
            *what = "bucket " STORE_NATS_BUCKET_OWNERS, st = NATS_TIMEOUT;
        if (n->owners != NULL)
            return NATS_OK;
        if (st != NATS_TIMEOUT && st != NATS_NO_RESPONDERS)
            return st;
        nats_Sleep(STORE_NATS_RECONNECT_WAIT_MS * 4);
    }
    return st;
}

/* An existing claims bucket keeps the TTL it was made with: one shorter
 * than a token's life would forget a claim while its token still works (a
 * replay). Refused, with what to do. */
static int store_nats__claims_long_enough(struct store_nats *n, char *err, size_t errlen)
{
    kvStatus *sts = NULL;
    int64_t ttl_ns;

    if (kvStore_Status(&sts, n->claims) != NATS_OK) {
        snprintf(err, errlen, "nats: bucket " STORE_NATS_BUCKET_CLAIMS ": no status");
        return -1;
    }
    ttl_ns = kvStatus_TTL(sts);
    kvStatus_Destroy(sts);
    if (ttl_ns != 0 && ttl_ns < (int64_t)n->claim_ttl_s * 1000000000) {
        snprintf(err, errlen,
                 "nats: bucket " STORE_NATS_BUCKET_CLAIMS " keeps claims %lld s, less than a "
                 "token's life (%u s): raise its max age (nats kv / stream edit KV_"
                 STORE_NATS_BUCKET_CLAIMS " --max-age) or lower token-max-lifetime",
                 (long long)(ttl_ns / 1000000000), n->claim_ttl_s);
        return -1;
    }
    return 0;
}

struct store *store_nats_open(const struct store_settings *s, char *err, size_t errlen)
{
    struct store_nats *n = NULL;
    struct store *st = NULL;
    const char *what = "";
    natsStatus ns;

    if (store_nats__check_urls(s, err, errlen) != 0)
        return NULL;
    n = calloc(1, sizeof(*n));
    st = calloc(1, sizeof(*st));
    if (n == NULL || st == NULL) {
        snprintf(err, errlen, "nats: out of memory");
        goto fail;
    }
    n->replicas = s->replicas > 0 ? s->replicas : 1;
    n->claim_ttl_s = s->claim_ttl_s > 0 ? s->claim_ttl_s : QR_TOKEN_LIFETIME_DEFAULT_S + 300;
    ns = store_nats__connect(n, s, &what);
    if (ns != NATS_OK) {
        snprintf(err, errlen, "nats: %s: %s", what, natsStatus_GetText(ns));
        goto fail;
    }
    if (store_nats__claims_long_enough(n, err, errlen) != 0)
        goto fail;
    st->ops = &store_nats_ops;
    st->impl = n;
    return st;
fail:
    store_nats__free(n);
    free(st);
    return NULL;
}

struct __natsConnection *store_nats_connection(struct store *st)
{
    if (st == NULL || st->ops != &store_nats_ops)
        return NULL;
    return ((struct store_nats *)st->impl)->nc;
}
