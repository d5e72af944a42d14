/* Relay manager. Each relay's thread owns its control connection; the shared
 * fields (health, stats, revocations, the keyring) sit under one mutex that
 * nobody holds across a network call. */
#include "relays.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quietroom/base/clock.h"
#include "quietroom/wire/ctlproto.h"
#include "quietroom/base/limits.h"
#include "quietroom/base/log.h"

#define RELAYS_REVOKED_MAX 8192
#define RELAYS_RETRY_MS 1000

struct revocation {
    char sid[64];
    uint32_t until;
    bool sent;
};

struct relay_state {
    struct relays *owner;
    int index;
    struct signal_relay_spec spec;      /* immutable */
    pthread_t thread;
    bool started;
    /* Under owner->lock. */
    bool tried;                         /* a first connection attempt was made */
    bool connected;
    bool was_up;                        /* connected at least once */
    bool lost;                          /* silent past QR_RELAY_LOST_MS (logged once) */
    uint64_t hold_until_ms;             /* came back: no new pairs before this */
    uint64_t last_heard_ms;             /* any call answered (stats or revoke) */
    unsigned placed;                    /* pairs placed since the last stats reply */
    uint64_t last_ok_ms;
    bool have_stats, have_rates;
    struct relaystat st;                /* the last reply, taken at last_ok_ms */
    struct relayrates rates;            /* since the reply before */
    char error[160];
    struct revocation revs[RELAYS_REVOKED_MAX];
    unsigned n_revs;
    unsigned n_unsent;
};

struct relays {
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* work for a relay thread, or stop */
    pthread_cond_t progress;  /* a revocation was answered */
    bool stopping;
    uint64_t started_ms;      /* a relay not heard from yet counts from here */
    struct keyring keys;      /* replaced on reload; threads copy it to connect */
    struct audit_log *audit;
    unsigned n;
    struct relay_state st[SIGNAL_RELAYS_MAX];
};

static bool relays__healthy(const struct relay_state *s, uint64_t now)
{
    return s->connected && s->have_stats && s->st.capacity > 0 &&
           now - s->last_ok_ms < 3 * QR_RELAY_POLL_MS;
}

/* Takes new sessions: healthy, not draining, and not saying it is unready
 * (a relay too old to say either way counts as ready). */
static bool relays__ready(const struct relay_state *s, uint64_t now)
{
    return relays__healthy(s, now) && s->st.draining != RELAYSTAT_YES &&
           s->st.ready != RELAYSTAT_NO;
}

static void relays__timedwait(struct relays *r, uint64_t wait_ms)
{
    struct timespec ts;

    clock_deadline(CLOCK_REALTIME, wait_ms, &ts);
    pthread_cond_timedwait(&r->wake, &r->lock, &ts);
}

/* Forgets revocations whose credentials have expired everywhere. */
static void relays__purge(struct relay_state *s, uint32_t now_s)
{
    unsigned kept = 0;

    for (unsigned i = 0; i < s->n_revs; i++) {
        if (s->revs[i].until > now_s)
            s->revs[kept++] = s->revs[i];
        else if (!s->revs[i].sent)
            s->n_unsent--;
    }
    s->n_revs = kept;
}

/* Called without the lock. Returns 0, or -1 if the connection is unusable. */
static int relays__call(struct relay_state *s, struct ctlclient *c, json_t *req, json_t **resp)
{
    char err[160];

    *resp = ctlclient_call(c, req, QR_RELAY_CALL_TIMEOUT_MS, err, sizeof(err));
    pthread_mutex_lock(&s->owner->lock);
    if (*resp == NULL)
        snprintf(s->error, sizeof(s->error), "%s", err);
    else
        s->last_heard_ms = clock_mono_ms(); /* alive, even while revocations queue */
    pthread_mutex_unlock(&s->owner->lock);
    return *resp == NULL ? -1 : 0;
}

static int relays__send_one_revoke(struct relay_state *s, struct ctlclient *c)
{
    struct relays *r = s->owner;
    char sid[64] = "";
    json_t *req, *resp = NULL;
    int rc;

    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < s->n_revs && sid[0] == '\0'; i++) {
        if (!s->revs[i].sent)
            snprintf(sid, sizeof(sid), "%s", s->revs[i].sid);
    }
    pthread_mutex_unlock(&r->lock);
    req = json_pack("{s:s,s:s}", "op", "revoke", "session", sid);
    rc = relays__call(s, c, req, &resp);
    json_decref(req);
    if (rc == 0 && !json_is_true(json_object_get(resp, "ok")))
        log_error("relay %s refused a revocation: %s", s->spec.name,
                  json_string_value(json_object_get(resp, "error")));
    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; rc == 0 && i < s->n_revs; i++) {
        if (!s->revs[i].sent && strcmp(s->revs[i].sid, sid) == 0) {
            s->revs[i].sent = true;
            s->n_unsent--;
        }
    }
    pthread_cond_broadcast(&r->progress);
    pthread_mutex_unlock(&r->lock);
    json_decref(resp);
    return rc;
}

/* Reads the relay's stats; parsing and rates are done before the lock is
 * taken, so the event loop never waits on them. */
static int relays__poll(struct relay_state *s, struct ctlclient *c)
{
    json_t *req = json_pack("{s:s}", "op", "stats"), *resp = NULL, *stats;
    int rc = relays__call(s, c, req, &resp);
    struct relaystat st, prev;
    struct relayrates rates;
    uint64_t now, prev_ms;
    bool had;

    json_decref(req);
    now = clock_mono_ms();
    stats = json_object_get(resp, "stats");
    if (rc != 0 || !json_is_object(stats) || !json_is_true(json_object_get(resp, "ok"))) {
        json_decref(resp);
        return rc;
    }
    relaystat_parse(stats, &st);
    json_decref(resp);
    pthread_mutex_lock(&s->owner->lock);
    had = s->have_stats;
    prev = s->st;
    prev_ms = s->last_ok_ms;
    pthread_mutex_unlock(&s->owner->lock);
    if (had)
        relaystat_rates(&prev, prev_ms, &st, now, &rates);
    pthread_mutex_lock(&s->owner->lock);
    if (had && s->st.draining != RELAYSTAT_YES && st.draining == RELAYSTAT_YES)
        log_info("relay %s is draining: no new sessions are placed on it", s->spec.name);
    s->st = st;
    s->placed = 0;
    s->have_stats = true;
    s->have_rates = had;
    if (had)
        s->rates = rates;
    s->last_ok_ms = now;
    pthread_mutex_unlock(&s->owner->lock);
    return rc;
}

static struct ctlclient *relays__connect(struct relay_state *s)
{
    char err[160];
    struct keyring keys;
    struct ctlclient *c;

    /* A copy: a reload may replace the keyring while we connect. */
    pthread_mutex_lock(&s->owner->lock);
    keys = s->owner->keys;
    pthread_mutex_unlock(&s->owner->lock);
    c = ctlclient_connect(s->spec.control, &keys, QR_RELAY_CALL_TIMEOUT_MS, err, sizeof(err));
    keyring_wipe(&keys);
    pthread_mutex_lock(&s->owner->lock);
    s->tried = true;
    if (c == NULL) {
        if (strcmp(s->error, err) != 0)
            log_warn("relay %s: %s", s->spec.name, err);
        snprintf(s->error, sizeof(s->error), "%s", err);
    } else {
        log_info("relay %s: control connection up%s", s->spec.name,
                 s->was_up ? "; new pairs go to it once it has held for a while" : "");
        s->error[0] = '\0';
        /* Back after it lost its calls: damped, so that a flapping relay
         * does not collect new calls it may drop again. A blip shorter
         * than that costs nothing. */
        if (s->was_up && clock_mono_ms() - s->last_heard_ms > QR_RELAY_LOST_MS)
            s->hold_until_ms = clock_mono_ms() + QR_RELAY_HOLD_MS;
        s->was_up = true;
        s->lost = false;
        s->connected = true;
        /* It may have restarted and forgotten: say every revocation again. */
        for (unsigned i = 0; i < s->n_revs; i++)
            s->revs[i].sent = false;
        s->n_unsent = s->n_revs;
    }
    pthread_mutex_unlock(&s->owner->lock);
    return c;
}

static void *relays__main(void *arg)
{
    struct relay_state *s = arg;
    struct relays *r = s->owner;
    struct ctlclient *c = NULL;
    uint64_t next_connect = 0, next_poll = 0;

    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        uint64_t now = clock_mono_ms();
        int rc = 0;

        relays__purge(s, clock_wall_s());
        if (c == NULL && now >= next_connect) {
            pthread_mutex_unlock(&r->lock);
            if ((c = relays__connect(s)) == NULL)
                next_connect = now + RELAYS_RETRY_MS;
            next_poll = 0;
            pthread_mutex_lock(&r->lock);
            continue;
        }
        if (c != NULL && s->n_unsent > 0) {
            pthread_mutex_unlock(&r->lock);
            rc = relays__send_one_revoke(s, c);
            pthread_mutex_lock(&r->lock);
        } else if (c != NULL && now >= next_poll) {
            pthread_mutex_unlock(&r->lock);
            rc = relays__poll(s, c);
            next_poll = now + QR_RELAY_POLL_MS;
            pthread_mutex_lock(&r->lock);
        } else {
            uint64_t until = c != NULL ? next_poll : next_connect;

            relays__timedwait(r, until > now ? until - now : 1);
        }
        if (rc != 0) {
            log_warn("relay %s: control connection lost: %s", s->spec.name, s->error);
            s->connected = false;
            s->have_stats = s->have_rates = false;
            pthread_mutex_unlock(&r->lock);
            ctlclient_close(c);
            pthread_mutex_lock(&r->lock);
            c = NULL;
            next_connect = clock_mono_ms() + RELAYS_RETRY_MS;
        }
    }
    pthread_mutex_unlock(&r->lock);
    ctlclient_close(c);
    return NULL;
}

struct relays *relays_start(const struct signal_relay_spec *specs, unsigned n,
                            const struct keyring *kr, struct audit_log *audit)
{
    struct relays *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    pthread_cond_init(&r->progress, NULL);
    r->keys = *kr;
    r->audit = audit;
    r->n = n;
    r->started_ms = clock_mono_ms();
    for (unsigned i = 0; i < n; i++) {
        struct relay_state *s = &r->st[i];

        s->owner = r;
        s->index = (int)i;
        s->spec = specs[i];
        snprintf(s->error, sizeof(s->error), "not connected yet");
        if (pthread_create(&s->thread, NULL, relays__main, s) != 0) {
            relays_free(r);
            return NULL;
        }
        s->started = true;
    }
    return r;
}

void relays_free(struct relays *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
    for (unsigned i = 0; i < r->n; i++) {
        if (r->st[i].started)
            pthread_join(r->st[i].thread, NULL);
    }
    pthread_cond_destroy(&r->progress);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    keyring_wipe(&r->keys);
    free(r);
}

/* The least loaded ready relay with room; held ones (back lately) only if
 * allowed. Load counts the pairs placed since its last stats reply, so a
 * burst of moves spreads instead of piling on one relay. */
static int relays__best(const struct relays *r, uint64_t now, bool held_too)
{
    double best_load = 1.0;
    int best = -1;

    for (unsigned i = 0; i < r->n; i++) {
        const struct relay_state *s = &r->st[i];
        double load;

        if (!relays__ready(s, now) || (!held_too && now < s->hold_until_ms))
            continue;
        /* A pair is two links at most (one per ICE generation in flight). */
        load = (double)((s->st.links > 0 ? s->st.links : 0) + 2 * (int64_t)s->placed) /
               (double)s->st.capacity;
        if (load < best_load) {
            best_load = load;
            best = (int)i;
        }
    }
    return best;
}

int relays_pick(struct relays *r)
{
    uint64_t now = clock_mono_ms();
    int best;

    pthread_mutex_lock(&r->lock);
    if ((best = relays__best(r, now, false)) < 0)
        best = relays__best(r, now, true);
    if (best >= 0)
        r->st[best].placed++;
    pthread_mutex_unlock(&r->lock);
    return best;
}

const char *relays_leaving(struct relays *r, int i)
{
    uint64_t now = clock_mono_ms();
    const char *why = NULL;
    struct relay_state *s;
    uint64_t since;

    if (i < 0 || (unsigned)i >= r->n)
        return "relay_unknown";
    s = &r->st[i];
    pthread_mutex_lock(&r->lock);
    /* One never heard from gets a first connection attempt's time more. */
    since = s->last_heard_ms != 0 ? s->last_heard_ms : r->started_ms + QR_RELAY_CALL_TIMEOUT_MS;
    if (now > since && now - since > QR_RELAY_LOST_MS) {
        why = "relay_lost";
        if (!s->lost)
            log_warn("relay %s: no answer for %u ms: its calls move to another relay",
                     s->spec.name, QR_RELAY_LOST_MS);
        s->lost = true;
    } else {
        s->lost = false;
    }
    /* Draining: only where there is somewhere to go; until its deadline a
     * draining relay still carries the call. */
    if (why == NULL && s->have_stats && s->st.draining == RELAYSTAT_YES &&
        s->st.drain_left_s >= 0 && s->st.drain_left_s <= QR_RELAY_MOVE_LEAD_S &&
        relays__best(r, now, true) >= 0)
        why = "relay_draining";
    pthread_mutex_unlock(&r->lock);
    return why;
}

/* A relay index comes from a visit record, which another replica (with
 * another configuration) may have written: checked, not trusted. */
const struct signal_relay_spec *relays_spec(const struct relays *r, int i)
{
    return i >= 0 && (unsigned)i < r->n ? &r->st[i].spec : NULL;
}

void relays_revoke(struct relays *r, int i, const char *sid, uint32_t until_s)
{
    struct relay_state *s;

    if (i < 0 || (unsigned)i >= r->n)
        return;
    s = &r->st[i];

    pthread_mutex_lock(&r->lock);
    if (s->n_revs == RELAYS_REVOKED_MAX)
        relays__purge(s, clock_wall_s());
    if (s->n_revs < RELAYS_REVOKED_MAX) {
        struct revocation *v = &s->revs[s->n_revs++];

        snprintf(v->sid, sizeof(v->sid), "%s", sid);
        v->until = until_s;
        v->sent = false;
        s->n_unsent++;
        pthread_cond_broadcast(&r->wake);
    } else {
        log_error("relay %s: too many remembered revocations; one is lost", s->spec.name);
    }
    pthread_mutex_unlock(&r->lock);
}

int relays_flush(struct relays *r, int timeout_ms)
{
    uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;
    int pending;

    pthread_mutex_lock(&r->lock);
    for (;;) {
        uint64_t now = clock_mono_ms();
        struct timespec ts;

        pending = 0;
        for (unsigned i = 0; i < r->n; i++)
            pending += (int)(r->st[i].connected ? r->st[i].n_unsent : 0);
        if (pending == 0 || now >= deadline)
            break;
        clock_deadline(CLOCK_REALTIME, 50, &ts);
        pthread_cond_timedwait(&r->progress, &r->lock, &ts);
    }
    pthread_mutex_unlock(&r->lock);
    return pending;
}

void relays_set_keys(struct relays *r, const struct keyring *kr)
{
    pthread_mutex_lock(&r->lock);
    keyring_wipe(&r->keys);
    r->keys = *kr;
    pthread_mutex_unlock(&r->lock);
}

json_t *relays_status(struct relays *r)
{
    json_t *arr = json_array();
    uint64_t now = clock_mono_ms();

    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < r->n; i++) {
        const struct relay_state *s = &r->st[i];
        bool healthy = relays__healthy(s, now);

        json_array_append_new(
            arr, json_pack("{s:s,s:b,s:b,s:i,s:i,s:i}", "name", s->spec.name, "healthy", healthy,
                           "draining", healthy && s->st.draining == RELAYSTAT_YES, "links_active",
                           healthy ? (int)s->st.links : 0, "capacity",
                           healthy ? (int)s->st.capacity : 0, "revocations_pending",
                           (int)s->n_unsent));
    }
    pthread_mutex_unlock(&r->lock);
    return arr;
}

unsigned relays_count(const struct relays *r)
{
    return r->n;
}

void relays_view(struct relays *r, unsigned i, struct relays_view *out)
{
    const struct relay_state *s = &r->st[i];

    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", s->spec.name);
    pthread_mutex_lock(&r->lock);
    out->up = relays__healthy(s, clock_mono_ms());
    out->have_stats = out->up;
    out->have_rates = out->up && s->have_rates;
    if (out->up)
        out->st = s->st;
    if (out->have_rates)
        out->rates = s->rates;
    out->revocations_pending = s->n_unsent;
    pthread_mutex_unlock(&r->lock);
}

enum relays_readiness relays_readiness(struct relays *r)
{
    enum relays_readiness v = RELAYS_NONE;
    uint64_t now = clock_mono_ms();
    bool all_tried = true;

    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < r->n; i++) {
        if (relays__ready(&r->st[i], now))
            v = RELAYS_READY;
        all_tried = all_tried && r->st[i].tried && (!r->st[i].connected || r->st[i].have_stats);
    }
    pthread_mutex_unlock(&r->lock);
    return v == RELAYS_NONE && !all_tried ? RELAYS_STARTING : v;
}
