/* Lifecycle, the loop thread and the public entry points. Public functions
 * never touch libnice, OpenSSL or libsrtp2 directly: they hop onto the loop
 * thread with refclient__call(), so those libraries only ever see one thread
 * per client and need no locking of ours. */
#include "refclient_internal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quietroom/base/clock.h"
#include "quietroom/base/netaddr.h"

#define REFCLIENT_GATHER_TIMEOUT_MS 5000

struct refclient__job {
    struct refclient *rc;
    refclient__fn fn;
    void *arg;
    int ret;
    bool done; /* guarded by rc->lock */
};

void refclient__errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void refclient__lock(struct refclient *rc)
{
    pthread_mutex_lock(&rc->lock);
}

void refclient__unlock_notify(struct refclient *rc)
{
    pthread_cond_broadcast(&rc->cond);
    pthread_mutex_unlock(&rc->lock);
}

void refclient__count(struct refclient *rc, uint64_t *counter, uint64_t n)
{
    refclient__lock(rc);
    *counter += n;
    pthread_mutex_unlock(&rc->lock);
}

void refclient__fail(struct refclient *rc, const char *fmt, ...)
{
    va_list ap;

    refclient__lock(rc);
    if (!rc->failed) {
        rc->failed = true;
        va_start(ap, fmt);
        vsnprintf(rc->failure, sizeof(rc->failure), fmt, ap);
        va_end(ap);
    }
    refclient__unlock_notify(rc);
}

static gboolean refclient__job_dispatch(gpointer data)
{
    struct refclient__job *job = data;
    int ret = job->fn(job->rc, job->arg);
    struct refclient *rc = job->rc;

    refclient__lock(rc);
    job->ret = ret;
    job->done = true; /* the caller may free job as soon as we unlock */
    refclient__unlock_notify(rc);
    return G_SOURCE_REMOVE;
}

int refclient__call(struct refclient *rc, refclient__fn fn, void *arg)
{
    struct refclient__job job = {.rc = rc, .fn = fn, .arg = arg};
    GSource *src = g_idle_source_new();

    g_source_set_priority(src, G_PRIORITY_DEFAULT);
    g_source_set_callback(src, refclient__job_dispatch, &job, NULL);
    g_source_attach(src, rc->ctx);
    g_source_unref(src);
    refclient__lock(rc);
    while (!job.done)
        pthread_cond_wait(&rc->cond, &rc->lock);
    pthread_mutex_unlock(&rc->lock);
    return job.ret;
}

static void *refclient__thread_main(void *arg)
{
    struct refclient *rc = arg;

    g_main_context_push_thread_default(rc->ctx);
    g_main_loop_run(rc->loop);
    g_main_context_pop_thread_default(rc->ctx);
    return NULL;
}

static int refclient__sync_init(struct refclient *rc)
{
    pthread_condattr_t attr;
    int ok;

    if (pthread_condattr_init(&attr) != 0)
        return -1;
    /* Deadlines in wait_ready must not jump with the wall clock. */
    ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
         pthread_cond_init(&rc->cond, &attr) == 0;
    pthread_condattr_destroy(&attr);
    if (!ok)
        return -1;
    if (pthread_mutex_init(&rc->lock, NULL) != 0) {
        pthread_cond_destroy(&rc->cond);
        return -1;
    }
    rc->sync_ready = true;
    return 0;
}

/* Called with the lock held; waits until pred(rc) or failure or the deadline. */
static bool refclient__wait_locked(struct refclient *rc, bool (*pred)(const struct refclient *),
                                   int timeout_ms)
{
    struct timespec deadline;

    clock_deadline(CLOCK_MONOTONIC, timeout_ms < 0 ? 0 : (uint64_t)timeout_ms, &deadline);
    while (!pred(rc) && !rc->failed) {
        if (pthread_cond_timedwait(&rc->cond, &rc->lock, &deadline) == ETIMEDOUT)
            break;
    }
    return pred(rc);
}

static bool refclient__is_gathered(const struct refclient *rc)
{
    return rc->gathered;
}

static bool refclient__is_ready(const struct refclient *rc)
{
    return rc->stats.ice_ready && rc->stats.dtls_done && rc->stats.peer_verified &&
           rc->srtp_keyed;
}

struct refclient__init_args {
    const struct refclient_config *cfg;
    char *err;
    size_t errlen;
};

static int refclient__init_on_loop(struct refclient *rc, void *arg)
{
    struct refclient__init_args *a = arg;

    return refclient__ice_init(rc, a->cfg, a->err, a->errlen);
}

static int refclient__snapshot_on_loop(struct refclient *rc, void *arg)
{
    (void)arg;
    return refclient__ice_snapshot_local(rc);
}

static int refclient__check_config(const struct refclient_config *cfg, char *err, size_t errlen)
{
    if (cfg == NULL || cfg->local_address == NULL) {
        refclient__errf(err, errlen, "config needs a local_address");
        return -1;
    }
    if (!(cfg->tone_hz >= 100.0 && cfg->tone_hz <= 4000.0)) {
        refclient__errf(err, errlen, "tone_hz must be within 100..4000 Hz");
        return -1;
    }
    if ((cfg->local_ufrag == NULL) != (cfg->local_pwd == NULL)) {
        refclient__errf(err, errlen, "local_ufrag and local_pwd go together");
        return -1;
    }
    return 0;
}

/* Starts the loop thread, builds the agent on it and waits for host candidates. */
static int refclient__start_loop(struct refclient *rc, const struct refclient_config *cfg,
                                 char *err, size_t errlen)
{
    struct refclient__init_args args = {.cfg = cfg, .err = err, .errlen = errlen};
    bool gathered;

    if (pthread_create(&rc->thread, NULL, refclient__thread_main, rc) != 0) {
        refclient__errf(err, errlen, "cannot start the loop thread");
        return -1;
    }
    rc->thread_started = true;
    if (refclient__call(rc, refclient__init_on_loop, &args) != 0)
        return -1;
    refclient__lock(rc);
    gathered = refclient__wait_locked(rc, refclient__is_gathered, REFCLIENT_GATHER_TIMEOUT_MS);
    pthread_mutex_unlock(&rc->lock);
    if (!gathered) {
        refclient__errf(err, errlen, "candidate gathering did not finish");
        return -1;
    }
    if (refclient__call(rc, refclient__snapshot_on_loop, NULL) != 0) {
        refclient__errf(err, errlen, "no local host candidate on %s", cfg->local_address);
        return -1;
    }
    return 0;
}

/* The RTCP CNAME (random, as RFC 7022 asks, so that it names no one) and the
 * SDP session id. */
static int refclient__identity(struct refclient *rc)
{
    unsigned char raw[12], text[17];

    if (RAND_bytes(raw, sizeof(raw)) != 1 ||
        RAND_bytes((unsigned char *)&rc->sdp_session_id, sizeof(rc->sdp_session_id)) != 1)
        return -1;
    EVP_EncodeBlock(text, raw, sizeof(raw)); /* 16 characters, no padding */
    memcpy(rc->cname, text, sizeof(rc->cname) - 1);
    rc->cname[sizeof(rc->cname) - 1] = '\0';
    rc->sdp_session_id >>= 1; /* o= wants a 63-bit number */
    return 0;
}

struct refclient *refclient_new(const struct refclient_config *cfg, char *err, size_t errlen)
{
    struct refclient *rc = NULL;

    if (refclient__check_config(cfg, err, errlen) != 0)
        return NULL;
    refclient__srtp_global_init();
    rc = calloc(1, sizeof(*rc));
    if (rc == NULL) {
        refclient__errf(err, errlen, "out of memory");
        return NULL;
    }
    rc->controlling = cfg->controlling;
    rc->regular_nomination = cfg->regular_nomination;
    rc->ice_tcp = cfg->ice_tcp;
    if (refclient__identity(rc) != 0) {
        refclient__errf(err, errlen, "RAND_bytes failed");
        goto fail;
    }
    if (refclient__sync_init(rc) != 0) {
        refclient__errf(err, errlen, "cannot create mutex or condition variable");
        goto fail;
    }
    rc->ctx = g_main_context_new();
    rc->loop = g_main_loop_new(rc->ctx, FALSE);
    /* OpenSSL and Opus state is built here, before the thread exists; from
     * then on only the loop thread touches it. */
    if (refclient__dtls_init(rc, cfg->dtls_client, cfg->srtp_profiles, err, errlen) != 0)
        goto fail;
    if (refclient__media_init(&rc->media, cfg->tone_hz, err, errlen) != 0)
        goto fail;
    if (refclient__start_loop(rc, cfg, err, errlen) != 0)
        goto fail;
    return rc;

fail:
    refclient_free(rc);
    return NULL;
}

static int refclient__teardown_on_loop(struct refclient *rc, void *arg)
{
    (void)arg;
    refclient__media_stop(rc);
    refclient__dtls_stop(rc);
    refclient__ice_free(rc);
    g_main_loop_quit(rc->loop);
    return 0;
}

void refclient_free(struct refclient *rc)
{
    if (rc == NULL)
        return;
    if (rc->thread_started) {
        refclient__call(rc, refclient__teardown_on_loop, NULL);
        pthread_join(rc->thread, NULL);
    }
    if (rc->ctx != NULL) {
        /* Let sources destroyed during teardown release what they hold. */
        while (g_main_context_iteration(rc->ctx, FALSE))
            ;
    }
    refclient__srtp_free(&rc->srtp);
    refclient__dtls_free(&rc->dtls);
    refclient__media_free(&rc->media);
    if (rc->loop != NULL)
        g_main_loop_unref(rc->loop);
    if (rc->ctx != NULL)
        g_main_context_unref(rc->ctx);
    if (rc->sync_ready) {
        pthread_cond_destroy(&rc->cond);
        pthread_mutex_destroy(&rc->lock);
    }
    free(rc);
}

void refclient_local_credentials(const struct refclient *rc, char *ufrag, size_t ufrag_len,
                                 char *pwd, size_t pwd_len)
{
    if (ufrag != NULL && ufrag_len > 0)
        snprintf(ufrag, ufrag_len, "%s", rc->local_ufrag);
    if (pwd != NULL && pwd_len > 0)
        snprintf(pwd, pwd_len, "%s", rc->local_pwd);
}

const char *refclient_fingerprint(const struct refclient *rc)
{
    return rc->dtls.fingerprint;
}

int refclient_local_candidates(const struct refclient *rc, char addrs[][64], uint16_t *ports, int max)
{
    int n = rc->n_local < max ? rc->n_local : max;

    for (int i = 0; i < n; i++) {
        snprintf(addrs[i], 64, "%s", rc->local[i].addr);
        ports[i] = rc->local[i].port;
    }
    return n < 0 ? 0 : n;
}

struct refclient__remote_args {
    const char *ufrag, *pwd, *fingerprint;
    const char *addr;
    uint16_t port;
};

static int refclient__set_remote_on_loop(struct refclient *rc, void *arg)
{
    struct refclient__remote_args *a = arg;

    if (refclient__dtls_set_expected(rc, a->fingerprint) != 0)
        return -1;
    return refclient__ice_set_remote(rc, a->ufrag, a->pwd);
}

int refclient_set_remote(struct refclient *rc, const char *ufrag, const char *pwd,
                         const char *peer_fingerprint)
{
    struct refclient__remote_args a = {.ufrag = ufrag, .pwd = pwd, .fingerprint = peer_fingerprint};

    if (ufrag == NULL || pwd == NULL || peer_fingerprint == NULL)
        return -1;
    return refclient__call(rc, refclient__set_remote_on_loop, &a);
}

static int refclient__add_remote_on_loop(struct refclient *rc, void *arg)
{
    struct refclient__remote_args *a = arg;

    return refclient__ice_add_remote(rc, a->addr, a->port);
}

int refclient_add_remote_candidate(struct refclient *rc, const char *addr, uint16_t port)
{
    struct refclient__remote_args a = {.addr = addr, .port = port};

    if (addr == NULL || port == 0)
        return -1;
    return refclient__call(rc, refclient__add_remote_on_loop, &a);
}

int refclient_add_remote_netaddr(struct refclient *rc, const union netaddr *a)
{
    char host[NETADDR_STRLEN];

    netaddr_format_host(a, host, sizeof(host));
    return refclient_add_remote_candidate(rc, host, netaddr_port(a));
}

static int refclient__start_on_loop(struct refclient *rc, void *arg)
{
    (void)arg;
    return refclient__ice_start(rc);
}

int refclient_start(struct refclient *rc)
{
    return refclient__call(rc, refclient__start_on_loop, NULL);
}

static int refclient__restart_on_loop(struct refclient *rc, void *arg)
{
    (void)arg;
    return refclient__ice_restart(rc);
}

int refclient_restart_ice(struct refclient *rc)
{
    return refclient__call(rc, refclient__restart_on_loop, NULL);
}

static void refclient__explain_timeout(const struct refclient *rc, char *err, size_t errlen)
{
    refclient__errf(err, errlen,
                    "timeout: ice_ready=%d dtls_done=%d peer_verified=%d srtp_keyed=%d "
                    "dtls_sent=%llu dtls_received=%llu",
                    rc->stats.ice_ready, rc->stats.dtls_done, rc->stats.peer_verified,
                    rc->srtp_keyed, (unsigned long long)rc->stats.dtls_packets_sent,
                    (unsigned long long)rc->stats.dtls_packets_received);
}

int refclient_wait_ready(struct refclient *rc, int timeout_ms, char *err, size_t errlen)
{
    int ret = 0;

    refclient__lock(rc);
    if (!refclient__wait_locked(rc, refclient__is_ready, timeout_ms)) {
        ret = -1;
        if (rc->failed)
            refclient__errf(err, errlen, "%s", rc->failure);
        else
            refclient__explain_timeout(rc, err, errlen);
    }
    pthread_mutex_unlock(&rc->lock);
    return ret;
}

static int refclient__media_start_on_loop(struct refclient *rc, void *arg)
{
    (void)arg;
    return refclient__media_start(rc);
}

int refclient_start_media(struct refclient *rc)
{
    return refclient__call(rc, refclient__media_start_on_loop, NULL);
}

static int refclient__media_stop_on_loop(struct refclient *rc, void *arg)
{
    (void)arg;
    refclient__media_stop(rc);
    return 0;
}

void refclient_stop_media(struct refclient *rc)
{
    refclient__call(rc, refclient__media_stop_on_loop, NULL);
}

static int refclient__set_tone_on_loop(struct refclient *rc, void *arg)
{
    refclient__tone_set(&rc->media.tone, *(const double *)arg, REFCLIENT__SAMPLE_RATE);
    return 0;
}

int refclient_set_tone(struct refclient *rc, double tone_hz)
{
    if (!(tone_hz >= 100.0 && tone_hz <= 4000.0))
        return -1;
    return refclient__call(rc, refclient__set_tone_on_loop, &tone_hz);
}

void refclient_get_stats(struct refclient *rc, struct refclient_stats *out)
{
    refclient__lock(rc);
    *out = rc->stats;
    pthread_mutex_unlock(&rc->lock);
}
