/* quietroom-visitbench: visits through quietroom-signal, as fast as a fixed
 * number of them at once allow (loadtest/visits.py runs it side by side
 * against SQLite, a 1-server and a 3-server NATS cluster).
 *
 * One visit, each step waiting for the server's reply:
 *   clinician connects, auth -> welcome (admitted)
 *   patient connects, auth -> welcome (waiting)
 *   clinician <- lobby with the patient waiting; admit -> both get peer
 *   clinician offer (tests/fixtures/sdp/chromium-offer-gathered.sdp)
 *     -> patient gets the rewritten offer, answers (firefox-answer.sdp)
 *     -> clinician gets the rewritten answer          [setup time ends here]
 *   --pings N times: clinician ping -> pong, timed; then N on the patient's
 *     connection (forwarded to the visit's owner when the patient is on
 *     another replica than the clinician, who created the visit)
 *   clinician end -> both get ended
 * Setup time runs from the clinician's connect to the answer received
 * (tokens are minted before, outside the timing). Prints one JSON object.
 * Loopback ws:// only; nothing is logged but counts and times. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "token_mint.h"
#include "wsconn.h"

enum stage {
    ST_MINT,
    ST_CONNECT_CLINICIAN,
    ST_AUTH_CLINICIAN,
    ST_CONNECT_PATIENT,
    ST_AUTH_PATIENT,
    ST_LOBBY,
    ST_ADMIT,
    ST_OFFER,
    ST_ANSWER,
    ST_PING_CLINICIAN,
    ST_PING_PATIENT,
    ST_END,
    ST_N
};

static const char *const stage_name[ST_N] = {
    "mint", "connect_clinician", "auth_clinician", "connect_patient", "auth_patient", "lobby",
    "admit", "offer", "answer", "ping_clinician", "ping_patient", "end"};

struct opts {
    const char *host, *origin, *key, *kid, *iss, *aud, *offer_file, *answer_file, *tag;
    int clinician_port, patient_port;
    unsigned visits, concurrency, pings, seconds, timeout_ms;
};

/* Samples in microseconds, grown as needed. */
struct samples {
    double *v;
    size_t n, cap;
};

static struct {
    struct opts o;
    char *offer, *answer;
    atomic_uint next;
    uint64_t t_start_us, t_stop_us;
    pthread_mutex_t mu;
    unsigned completed, attempted;
    unsigned failures[ST_N];
    char first_error[ST_N][160];
    struct samples setup, rtt_clinician, rtt_patient;
} B = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void samples_add(struct samples *s, double x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        double *v = realloc(s->v, cap * sizeof(*v));

        if (v == NULL)
            return;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, in milliseconds; -1 if none. */
static double pct_ms(const struct samples *s, double p)
{
    size_t i;

    if (s->n == 0)
        return -1;
    i = (size_t)(p / 100.0 * (double)s->n + 0.999999);
    if (i < 1)
        i = 1;
    if (i > s->n)
        i = s->n;
    return s->v[i - 1] / 1000.0;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        (buf = malloc((size_t)n + 1)) == NULL) {
        fclose(f);
        return NULL;
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static const char *str_of(json_t *m, const char *key)
{
    const char *s = json_string_value(json_object_get(m, key));

    return s != NULL ? s : "";
}

/* One visit's state, for failure reports. */
struct visit {
    unsigned index;
    struct wsconn *doc, *pat;
    char doc_id[32], pat_id[32];
    char err[160];
};

/* The next message of type `type` on c, skipping others; NULL on timeout,
 * close or an `error` message (its code goes into v->err). */
static json_t *expect(struct visit *v, struct wsconn *c, const char *type)
{
    const char *who = c == v->doc ? "clinician" : "patient";
    uint64_t until = now_us() + (uint64_t)B.o.timeout_ms * 1000u;

    for (;;) {
        uint64_t t = now_us();
        json_t *m;

        if (t >= until) {
            snprintf(v->err, sizeof(v->err), "%s: no %s within %u ms", who, type,
                     B.o.timeout_ms);
            return NULL;
        }
        if ((m = wsconn_recv(c, (int)((until - t) / 1000u) + 1)) == NULL) {
            int code = 0;

            if (wsconn_is_closed(c, &code))
                snprintf(v->err, sizeof(v->err), "%s: closed (%d) waiting for %s", who, code,
                         type);
            else
                snprintf(v->err, sizeof(v->err), "%s: no %s within %u ms", who, type,
                         B.o.timeout_ms);
            return NULL;
        }
        if (strcmp(str_of(m, "type"), type) == 0)
            return m;
        if (strcmp(str_of(m, "type"), "error") == 0) {
            snprintf(v->err, sizeof(v->err), "%s: error %s waiting for %s", who, str_of(m, "code"),
                     type);
            json_decref(m);
            return NULL;
        }
        json_decref(m);
    }
}

static struct wsconn *connect_ws(struct visit *v, int port)
{
    struct wsconn_target t = {.tls = false, .port = port, .path = "/ws"};
    struct wsconn_opts o = {.target = &t, .origin = B.o.origin, .protocol = "quietroom.v1"};
    struct wsconn *c;

    snprintf(t.host, sizeof(t.host), "%s", B.o.host);
    if ((c = wsconn_open(&o, (int)B.o.timeout_ms, v->err, sizeof(v->err))) == NULL)
        return NULL;
    return c;
}

/* auth with token on c; the welcome's participant id into id. */
static bool auth(struct visit *v, struct wsconn *c, const char *token, const char *state,
                 char *id, size_t idlen)
{
    json_t *m;

    if (wsconn_send_json(c, json_pack("{s:s,s:s}", "type", "auth", "token", token)) != 0) {
        snprintf(v->err, sizeof(v->err), "cannot send auth");
        return false;
    }
    if ((m = expect(v, c, "welcome")) == NULL)
        return false;
    if (strcmp(str_of(m, "state"), state) != 0) {
        snprintf(v->err, sizeof(v->err), "welcome state %s, not %s", str_of(m, "state"), state);
        json_decref(m);
        return false;
    }
    snprintf(id, idlen, "%s", str_of(m, "participant"));
    json_decref(m);
    return true;
}

static bool send_expect(struct visit *v, struct wsconn *from, json_t *msg, struct wsconn *to,
                        const char *type)
{
    json_t *m;

    if (wsconn_send_json(from, msg) != 0) {
        snprintf(v->err, sizeof(v->err), "cannot send (closed or full)");
        return false;
    }
    if ((m = expect(v, to, type)) == NULL)
        return false;
    json_decref(m);
    return true;
}

/* B.o.pings sequential pings on c, each round trip into rtt[]. */
static bool pings(struct visit *v, struct wsconn *c, double *rtt, unsigned *n)
{
    for (unsigned i = 0; i < B.o.pings; i++) {
        uint64_t t0 = now_us();

        if (!send_expect(v, c, json_pack("{s:s}", "type", "ping"), c, "pong"))
            return false;
        rtt[(*n)++] = (double)(now_us() - t0);
    }
    return true;
}

static int mint(const char *sid, const char *role, const char *sub, char **out, char *err,
                size_t errlen)
{
    struct token_mint_claims c = {.key = B.o.key, .kid = B.o.kid, .iss = B.o.iss,
                                  .aud = B.o.aud, .sub = sub, .role = role, .sid = sid,
                                  .ttl = 3600};

    return token_mint(&c, out, err, errlen);
}

/* Runs visit i; returns the stage that failed, or ST_N on success. */
static enum stage run_visit(unsigned i, double *setup_us, double *rtt_doc, unsigned *n_doc,
                            double *rtt_pat, unsigned *n_pat, char *err, size_t errlen)
{
    struct visit v = {.index = i};
    char sid[96], doc_sub[64], pat_sub[64];
    char *tok_doc = NULL, *tok_pat = NULL;
    enum stage st = ST_N;
    uint64_t t0;
    json_t *m;

    snprintf(sid, sizeof(sid), "bench-%s-%ld-%u", B.o.tag, (long)getpid(), i);
    snprintf(doc_sub, sizeof(doc_sub), "clinician-%u", i);
    snprintf(pat_sub, sizeof(pat_sub), "patient-%u", i);
    if (mint(sid, "clinician", doc_sub, &tok_doc, v.err, sizeof(v.err)) != 0 ||
        mint(sid, "patient", pat_sub, &tok_pat, v.err, sizeof(v.err)) != 0) {
        st = ST_MINT;
        goto out;
    }

    t0 = now_us();
#define STEP(stage, cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            st = (stage);                                                                          \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)
    STEP(ST_CONNECT_CLINICIAN, (v.doc = connect_ws(&v, B.o.clinician_port)) != NULL);
    STEP(ST_AUTH_CLINICIAN, auth(&v, v.doc, tok_doc, "admitted", v.doc_id, sizeof(v.doc_id)));
    STEP(ST_CONNECT_PATIENT, (v.pat = connect_ws(&v, B.o.patient_port)) != NULL);
    STEP(ST_AUTH_PATIENT, auth(&v, v.pat, tok_pat, "waiting", v.pat_id, sizeof(v.pat_id)));
    /* The lobby that lists the patient as waiting. */
    for (;;) {
        bool waiting = false;
        size_t k;
        json_t *p;

        STEP(ST_LOBBY, (m = expect(&v, v.doc, "lobby")) != NULL);
        json_array_foreach(json_object_get(m, "waiting"), k, p)
        {
            if (strcmp(str_of(p, "participant"), v.pat_id) == 0)
                waiting = true;
        }
        json_decref(m);
        if (waiting)
            break;
    }
    STEP(ST_ADMIT, wsconn_send_json(v.doc, json_pack("{s:s,s:s}", "type", "admit", "participant",
                                                      v.pat_id)) == 0);
    STEP(ST_ADMIT, (m = expect(&v, v.pat, "peer")) != NULL);
    json_decref(m);
    STEP(ST_ADMIT, (m = expect(&v, v.doc, "peer")) != NULL);
    json_decref(m);
    STEP(ST_OFFER, send_expect(&v, v.doc,
                               json_pack("{s:s,s:s,s:s}", "type", "offer", "to", v.pat_id, "sdp",
                                         B.offer),
                               v.pat, "offer"));
    STEP(ST_ANSWER, send_expect(&v, v.pat,
                                json_pack("{s:s,s:s,s:s}", "type", "answer", "to", v.doc_id,
                                          "sdp", B.answer),
                                v.doc, "answer"));
    *setup_us = (double)(now_us() - t0);
    STEP(ST_PING_CLINICIAN, pings(&v, v.doc, rtt_doc, n_doc));
    STEP(ST_PING_PATIENT, pings(&v, v.pat, rtt_pat, n_pat));
    STEP(ST_END, wsconn_send_json(v.doc, json_pack("{s:s}", "type", "end")) == 0);
    STEP(ST_END, (m = expect(&v, v.doc, "ended")) != NULL);
    json_decref(m);
    STEP(ST_END, (m = expect(&v, v.pat, "ended")) != NULL);
    json_decref(m);
#undef STEP
out:
    if (st != ST_N)
        snprintf(err, errlen, "%s", v.err);
    wsconn_close(v.pat);
    wsconn_close(v.doc);
    token_mint_free(tok_doc);
    token_mint_free(tok_pat);
    return st;
}

static void *worker(void *arg)
{
    double *rtt_doc = calloc(B.o.pings + 1, sizeof(double));
    double *rtt_pat = calloc(B.o.pings + 1, sizeof(double));

    (void)arg;
    if (rtt_doc == NULL || rtt_pat == NULL)
        goto done;
    for (;;) {
        unsigned i = atomic_fetch_add(&B.next, 1), n_doc = 0, n_pat = 0;
        double setup = -1;
        char err[160] = "";
        enum stage st;

        if (i >= B.o.visits ||
            (B.o.seconds > 0 && now_us() - B.t_start_us > (uint64_t)B.o.seconds * 1000000u))
            break;
        st = run_visit(i, &setup, rtt_doc, &n_doc, rtt_pat, &n_pat, err, sizeof(err));
        pthread_mutex_lock(&B.mu);
        B.attempted++;
        if (setup >= 0)
            samples_add(&B.setup, setup);
        for (unsigned k = 0; k < n_doc; k++)
            samples_add(&B.rtt_clinician, rtt_doc[k]);
        for (unsigned k = 0; k < n_pat; k++)
            samples_add(&B.rtt_patient, rtt_pat[k]);
        if (st == ST_N) {
            B.completed++;
        } else {
            B.failures[st]++;
            if (B.first_error[st][0] == '\0')
                snprintf(B.first_error[st], sizeof(B.first_error[st]), "%s", err);
        }
        pthread_mutex_unlock(&B.mu);
    }
done:
    free(rtt_doc);
    free(rtt_pat);
    return NULL;
}

static json_t *summarize(const struct samples *s)
{
    qsort(s->v, s->n, sizeof(double), cmp_double);
    return json_pack("{s:I,s:f,s:f,s:f,s:f}", "n", (json_int_t)s->n, "p50_ms", pct_ms(s, 50),
                     "p90_ms", pct_ms(s, 90), "p99_ms", pct_ms(s, 99), "max_ms", pct_ms(s, 100));
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: quietroom-visitbench --clinician-port P [--patient-port P] --key EHR.key\n"
            "         --kid KID --iss ISS --aud AUD [--origin URL] [--host 127.0.0.1]\n"
            "         [--visits 200] [--concurrency 8] [--pings 20] [--seconds 120]\n"
            "         [--timeout-ms 10000] [--offer SDP] [--answer SDP] [--tag NAME]\n"
            "Runs visits through quietroom-signal and prints JSON (see the file's head).\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"clinician-port", 1, 0, 'c'}, {"patient-port", 1, 0, 'p'}, {"key", 1, 0, 'k'},
        {"kid", 1, 0, 'K'},            {"iss", 1, 0, 'i'},          {"aud", 1, 0, 'a'},
        {"origin", 1, 0, 'o'},         {"host", 1, 0, 'H'},         {"visits", 1, 0, 'n'},
        {"concurrency", 1, 0, 'C'},    {"pings", 1, 0, 'P'},        {"seconds", 1, 0, 's'},
        {"timeout-ms", 1, 0, 't'},     {"offer", 1, 0, 'O'},        {"answer", 1, 0, 'A'},
        {"tag", 1, 0, 'T'},            {"help", 0, 0, 'h'},         {0, 0, 0, 0}};
    struct opts *o = &B.o;
    pthread_t *th;
    json_t *out, *fail, *errs;
    double wall_s;
    int c;

    *o = (struct opts){.host = "127.0.0.1", .origin = "https://ehr.example.org", .kid = "ehr-1",
                       .offer_file = QR_SOURCE_DIR "/tests/fixtures/sdp/chromium-offer-gathered.sdp",
                       .answer_file = QR_SOURCE_DIR "/tests/fixtures/sdp/firefox-answer.sdp",
                       .tag = "v", .visits = 200, .concurrency = 8, .pings = 20, .seconds = 120,
                       .timeout_ms = 10000};
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'c': o->clinician_port = atoi(optarg); break;
        case 'p': o->patient_port = atoi(optarg); break;
        case 'k': o->key = optarg; break;
        case 'K': o->kid = optarg; break;
        case 'i': o->iss = optarg; break;
        case 'a': o->aud = optarg; break;
        case 'o': o->origin = optarg; break;
        case 'H': o->host = optarg; break;
        case 'n': o->visits = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'C': o->concurrency = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'P': o->pings = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': o->seconds = (unsigned)strtoul(optarg, NULL, 10); break;
        case 't': o->timeout_ms = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'O': o->offer_file = optarg; break;
        case 'A': o->answer_file = optarg; break;
        case 'T': o->tag = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (o->patient_port == 0)
        o->patient_port = o->clinician_port;
    if (o->clinician_port <= 0 || o->key == NULL || o->iss == NULL || o->aud == NULL ||
        o->concurrency == 0 || o->concurrency > 256 || o->pings > 100000 ||
        o->timeout_ms == 0) {
        usage(stderr);
        return 2;
    }
    if ((B.offer = read_file(o->offer_file)) == NULL ||
        (B.answer = read_file(o->answer_file)) == NULL) {
        fprintf(stderr, "visitbench: cannot read %s or %s: %s\n", o->offer_file, o->answer_file,
                strerror(errno));
        return 1;
    }
    if ((th = calloc(o->concurrency, sizeof(*th))) == NULL)
        return 1;
    B.t_start_us = now_us();
    for (unsigned i = 0; i < o->concurrency; i++)
        if (pthread_create(&th[i], NULL, worker, NULL) != 0) {
            fprintf(stderr, "visitbench: pthread_create failed\n");
            return 1;
        }
    for (unsigned i = 0; i < o->concurrency; i++)
        pthread_join(th[i], NULL);
    B.t_stop_us = now_us();
    wall_s = (double)(B.t_stop_us - B.t_start_us) / 1e6;

    fail = json_object();
    errs = json_object();
    for (int s = 0; s < ST_N; s++)
        if (B.failures[s] > 0) {
            json_object_set_new(fail, stage_name[s], json_integer(B.failures[s]));
            json_object_set_new(errs, stage_name[s], json_string(B.first_error[s]));
        }
    out = json_pack(
        "{s:i,s:i,s:i,s:i,s:i,s:i,s:o,s:o,s:f,s:f,s:o,s:o,s:o}", "clinician_port",
        o->clinician_port, "patient_port", o->patient_port, "concurrency", o->concurrency,
        "pings_per_side", o->pings, "attempted", B.attempted, "completed", B.completed,
        "failures", fail, "first_errors", errs, "wall_s", wall_s, "visits_per_s",
        wall_s > 0 ? B.completed / wall_s : 0.0,
        "setup", summarize(&B.setup), "rtt_clinician", summarize(&B.rtt_clinician),
        "rtt_patient", summarize(&B.rtt_patient));
    json_dumpf(out, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    fputc('\n', stdout);
    json_decref(out);
    free(th);
    free(B.offer);
    free(B.answer);
    free(B.setup.v);
    free(B.rtt_clinician.v);
    free(B.rtt_patient.v);
    return B.completed > 0 && B.completed == B.attempted ? 0 : 1;
}
