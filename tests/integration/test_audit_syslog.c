/* Audit evidence that leaves the machine: both daemons ship every sealed
 * record over syslog/TLS (RFC 5425) to a real rsyslogd started by the test
 * (collector.c: a test CA, TLS on loopback, the witness file in rsyslog's
 * standard RFC 5424 template), and `quietroomctl audit verify --witness`
 * checks each daemon's local file against what the collector holds.
 *   - the rig itself: rsyslogd takes a message over TLS, stops, comes back
 *     on the same port appending to the same file, presents the
 *     certificate asked for;
 *   - a call through relay and signaling: every local record is in the
 *     witness byte for byte, under the daemon's APP-NAME, the record's type
 *     as MSGID and its outcome as severity; verify --witness passes;
 *   - the collector down for 10 s while visits come and go and a call's
 *     audio flows: joins answered within a second, no gap in the audio;
 *     once it is back nothing is missing, duplicates are identical, the
 *     daemons count resends or reconnects, verify --witness passes;
 *   - the local tail cut (three whole records; half a line): verify
 *     --witness exits 1 naming the missing seqs, where the local chain alone
 *     says intact or torn;
 *   - a collector presenting a certificate for another name gets nothing,
 *     the daemons say why and go on serving;
 *   - a collector requiring a client certificate gets the relay's records
 *     (it has one) and none of signaling's (it has none).
 * Without rsyslogd or a TLS driver for it the test fails when CI=true and
 * is skipped (77) elsewhere. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quietroom/audit/audit_record.h"
#include "quietroom/base/hmac.h"
#include "quietroom/base/keyring.h"

#include "callkit.h"
#include "collector.h"
#include "ctlrun.h"
#include "world.h"

#define SKIP_RC 77
#define OPS_TOKEN "audit-syslog-ops-token-4471"
#define AUTH "Authorization: Bearer " OPS_TOKEN "\r\n"
#define CTL_LIMIT_S 60
#define OUTAGE_MS 10000
#define REPLY_MS 1000          /* a signaling answer that takes longer is a stall */
#define AUDIO_GAP_MS 1000      /* the longest silence a call may have */
#define SHIP_WAIT_MS 30000     /* reconnect backoff and resending, with margin */
#define LOG_WAIT_MS 15000
#define CUT_RECORDS 3

struct syslog_world {
    struct collector col;
    struct world w;
    char token_file[64];
    char sig_lines[4][HARNESS_PATH + 32];
    const char *sig_extra[5];
    const char *relay_extra[9];
};

/* One daemon as the checks see it. */
struct daemon_view {
    const char *what;                   /* "relay", "signal" */
    const char *app;                    /* its default APP-NAME */
    const char *audit, *key, *log;
    int ops_port;
    pid_t pid;
};

static int teardown(void **state);

/* --- fixture ---------------------------------------------------------------------- */

static int write_token_file(struct syslog_world *s)
{
    FILE *f;
    int fd;

    snprintf(s->token_file, sizeof(s->token_file), "/tmp/qr-syslog-token-XXXXXX");
    if ((fd = mkstemp(s->token_file)) < 0 || (f = fdopen(fd, "w")) == NULL)
        return -1;
    fprintf(f, "%s\n", OPS_TOKEN);
    return fclose(f);
}

/* The collector presenting cert, then relay and signaling shipping to it:
 * the relay with a client certificate, signaling without; both serve
 * /metrics on loopback. A setup that fails stops what it started (cmocka
 * runs no teardown after it). */
static int setup_world(void **state, enum collector_cert cert, bool require_client_cert)
{
    struct syslog_world *s = calloc(1, sizeof(*s));
    struct world_opts o = {.ops_token = OPS_TOKEN};
    int n = 0;

    *state = s;
    if (s == NULL || collector_start(&s->col, cert, require_client_cert) != 0 ||
        write_token_file(s) != 0)
        return -1;
    s->relay_extra[n++] = "--audit-syslog";
    s->relay_extra[n++] = s->col.addr;
    s->relay_extra[n++] = "--audit-syslog-ca";
    s->relay_extra[n++] = s->col.ca;
    s->relay_extra[n++] = "--audit-syslog-cert";
    s->relay_extra[n++] = s->col.client_cert;
    s->relay_extra[n++] = "--audit-syslog-key";
    s->relay_extra[n++] = s->col.client_key;
    s->relay_extra[n] = NULL;
    snprintf(s->sig_lines[0], sizeof(s->sig_lines[0]), "audit-syslog = %s", s->col.addr);
    snprintf(s->sig_lines[1], sizeof(s->sig_lines[1]), "audit-syslog-ca = %s", s->col.ca);
    snprintf(s->sig_lines[2], sizeof(s->sig_lines[2]), "ops-listen = 127.0.0.1:0");
    snprintf(s->sig_lines[3], sizeof(s->sig_lines[3]), "ops-token-file = %s", s->token_file);
    for (n = 0; n < 4; n++)
        s->sig_extra[n] = s->sig_lines[n];
    s->sig_extra[n] = NULL;
    o.relay_extra = s->relay_extra;
    o.signal_extra = s->sig_extra;
    if (world_start(&s->w, &o) != 0)
        return -1;
    return s->w.relay.ops_port > 0 && s->w.sig.ops_port > 0 ? 0 : -1;
}

static int setup_with(void **state, enum collector_cert cert, bool require_client_cert)
{
    if (setup_world(state, cert, require_client_cert) == 0)
        return 0;
    teardown(state);
    return -1;
}

static int setup(void **state)
{
    return setup_with(state, COLLECTOR_CERT_LOCALHOST, false);
}

static int setup_wrong_name(void **state)
{
    return setup_with(state, COLLECTOR_CERT_WRONG_NAME, false);
}

static int setup_client_cert(void **state)
{
    return setup_with(state, COLLECTOR_CERT_LOCALHOST, true);
}

/* The collector alone, for the test of the rig. */
static int setup_collector(void **state)
{
    struct syslog_world *s = calloc(1, sizeof(*s));

    *state = s;
    if (s != NULL && collector_start(&s->col, COLLECTOR_CERT_LOCALHOST, false) == 0)
        return 0;
    teardown(state);
    return -1;
}

/* Stops everything; fails if a daemon exited badly or an rsyslogd of this
 * test still runs. */
static int teardown(void **state)
{
    struct syslog_world *s = *state;
    int rc;

    if (s == NULL)
        return 0;
    callkit_stop_samplers();
    rc = world_stop(&s->w);
    rc |= collector_cleanup(&s->col); /* fails if an rsyslogd of ours still runs */
    if (s->token_file[0] != '\0')
        unlink(s->token_file);
    free(s);
    *state = NULL;
    return rc;
}

static void relay_view(struct world *w, struct daemon_view *v)
{
    *v = (struct daemon_view){"relay", "quietroom-relay", w->relay.audit, w->relay.audit_key,
                              w->relay.log, w->relay.ops_port, w->relay.pid};
}

static void signal_view(struct world *w, struct daemon_view *v)
{
    *v = (struct daemon_view){"signal", "quietroom-signal", w->sig.audit, w->sig.audit_key,
                              w->sig.log, w->sig.ops_port, w->sig.pid};
}

/* --- the witness file --------------------------------------------------------------- */

/* One witness line cut into the fields of rsyslog's RFC 5424 template:
 * <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG. Only lines
 * whose SD is "-" are ours; the pointers go into the line. */
struct wline {
    int pri;
    const char *field[6];               /* TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID, SD */
    size_t flen[6];
    const char *msg;
    size_t msg_len;
};

static bool wline_parse(const char *line, size_t len, struct wline *out)
{
    const char *p = line, *end = line + len;
    char *after;

    if (len < 4 || *p != '<')
        return false;
    out->pri = (int)strtol(p + 1, &after, 10);
    if (after >= end || strncmp(after, ">1 ", 3) != 0)
        return false;
    p = after + 3;
    for (int i = 0; i < 6; i++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));

        if (sp == NULL)
            return false;
        out->field[i] = p;
        out->flen[i] = (size_t)(sp - p);
        p = sp + 1;
    }
    if (out->flen[5] != 1 || out->field[5][0] != '-')
        return false;
    out->msg = p;
    out->msg_len = (size_t)(end - p);
    return true;
}

static bool field_is(const struct wline *l, int i, const char *want)
{
    return l->flen[i] == strlen(want) && memcmp(l->field[i], want, l->flen[i]) == 0;
}

/* A daemon's local audit file, one entry per record. */
struct local_rec {
    const char *text;                   /* the line without '\n', into the file's text */
    size_t len;
    unsigned long long seq;
    unsigned seen;                      /* times the witness holds it */
};

struct local_log {
    char *text;
    struct local_rec *rec;
    size_t n;
    char node[128];
    unsigned long long first_seq;
    bool live;                          /* read while the daemon writes: it may be ahead */
};

static void local_free(struct local_log *l)
{
    free(l->text);
    free(l->rec);
    memset(l, 0, sizeof(*l));
}

/* Reads a daemon's file: the records must be whole and numbered one after
 * another, which the local chain promises. A live daemon's file may end in
 * a line being written: it is left for the next read. */
static void local_read_from(const char *path, bool live, struct local_log *l)
{
    char *p;

    memset(l, 0, sizeof(*l));
    l->live = live;
    l->text = read_text(path);
    assert_non_null(l->text);
    for (p = l->text; *p != '\0';) {
        char *nl = strchr(p, '\n');
        json_t *obj;

        if (nl == NULL && live)
            break;
        if (nl == NULL)
            fail_msg("%s ends in a partial line", path);
        l->rec = realloc(l->rec, (l->n + 1) * sizeof(*l->rec));
        assert_non_null(l->rec);
        l->rec[l->n] = (struct local_rec){.text = p, .len = (size_t)(nl - p)};
        obj = json_loadb(p, (size_t)(nl - p), 0, NULL);
        assert_non_null(obj);
        l->rec[l->n].seq = (unsigned long long)json_integer_value(json_object_get(obj, "seq"));
        if (l->n == 0) {
            const char *node = json_string_value(json_object_get(obj, "node"));

            snprintf(l->node, sizeof(l->node), "%s", node != NULL ? node : "");
            l->first_seq = l->rec[0].seq;
        }
        json_decref(obj);
        if (l->rec[l->n].seq != l->first_seq + l->n)
            fail_msg("%s: seq %llu where %llu was due", path, l->rec[l->n].seq,
                     l->first_seq + l->n);
        l->n++;
        p = nl + 1;
    }
    assert_true(l->n > 0);
}

static void local_read(const char *path, struct local_log *l)
{
    local_read_from(path, false, l);
}

/* The severity the contract maps each outcome to (PRI = 10 * 8 + it). */
static int severity_of(long long outcome)
{
    return outcome == 0 ? 5 : outcome == 4 ? 4 : 3;
}

/* The header the daemon must have put on its record l. */
static void check_header(const struct wline *l, const struct daemon_view *d,
                         const struct local_rec *r)
{
    json_t *obj = json_loadb(r->text, r->len, 0, NULL);
    const char *type = json_string_value(json_object_get(obj, "type"));
    const char *stamp = json_string_value(json_object_get(obj, "time"));
    char procid[16];

    assert_non_null(type);
    assert_non_null(stamp);
    if (!field_is(l, 2, d->app))
        fail_msg("%s seq %llu: APP-NAME %.*s, not %s", d->what, r->seq, (int)l->flen[2],
                 l->field[2], d->app);
    if (!field_is(l, 4, strlen(type) <= 32 ? type : "-"))
        fail_msg("%s seq %llu: MSGID %.*s, not its type %s", d->what, r->seq, (int)l->flen[4],
                 l->field[4], type);
    if (l->pri != 80 + severity_of(json_integer_value(json_object_get(obj, "outcome"))))
        fail_msg("%s seq %llu: PRI %d for outcome %lld", d->what, r->seq, l->pri,
                 json_integer_value(json_object_get(obj, "outcome")));
    /* The record's time is already RFC 3339 UTC with milliseconds. */
    if (!field_is(l, 0, stamp))
        fail_msg("%s seq %llu: TIMESTAMP %.*s, its time is %s", d->what, r->seq,
                 (int)l->flen[0], l->field[0], stamp);
    snprintf(procid, sizeof(procid), "%ld", (long)d->pid);
    if (d->pid > 0 && !field_is(l, 3, procid))
        fail_msg("%s seq %llu: PROCID %.*s, not %s", d->what, r->seq, (int)l->flen[3],
                 l->field[3], procid);
    json_decref(obj);
}

/* Matches the witness against d's local records. A witness record is d's
 * when it opens under d's audit key with d's node: both daemons may run
 * under one node name (the host's), their keys tell them apart. Each must
 * be the local record of its seq byte for byte (so duplicates are
 * identical), under d's header. Returns how many local records the witness
 * lacks (the first one in *missing); the duplicates go to *dups. */
static size_t witness_match(const char *witness, const struct daemon_view *d, struct local_log *l,
                            unsigned long long *missing, size_t *dups)
{
    struct hmac *h = hmac_new(HMAC_SHA256);
    struct keyring keys;
    char err[256];
    size_t lacking = 0;

    assert_non_null(h);
    if (keyring_load(d->key, &keys, err, sizeof(err)) != 0)
        fail_msg("%s: %s", d->key, err);
    *dups = 0;
    for (size_t i = 0; i < l->n; i++)
        l->rec[i].seen = 0;
    for (const char *p = witness; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        struct audit_line al = {0};
        struct wline wl;

        if (wline_parse(p, len, &wl) &&
            audit_record_open(wl.msg, wl.msg_len, &keys, h, &al) == AUDIT_LINE_OK &&
            strcmp(world_str(al.obj, "node"), l->node) == 0 &&
            al.seq >= l->first_seq) {
            struct local_rec *r = al.seq - l->first_seq < l->n ? &l->rec[al.seq - l->first_seq]
                                                               : NULL;

            if (r == NULL && !l->live)
                fail_msg("the witness holds %s seq %llu, past the local file", d->what,
                         (unsigned long long)al.seq);
            if (r != NULL) {
                if (r->len != wl.msg_len || memcmp(r->text, wl.msg, r->len) != 0)
                    fail_msg("the witness's %s seq %llu is not the local record:\n%.*s\n%.*s",
                             d->what, r->seq, (int)wl.msg_len, wl.msg, (int)r->len, r->text);
                check_header(&wl, d, r);
                *dups += r->seen++ > 0;
            }
        }
        audit_line_free(&al);
        p += len + (nl != NULL);
    }
    for (size_t i = l->n; i-- > 0;) {
        if (l->rec[i].seen == 0) {
            lacking++;
            *missing = l->rec[i].seq;
        }
    }
    keyring_wipe(&keys);
    hmac_free(h);
    return lacking;
}

/* Every record of d's local file is in the witness: byte-identical MSG, the
 * right header, duplicates only identical. Returns the duplicates. */
static size_t assert_all_witnessed(const struct collector *col, const struct daemon_view *d)
{
    struct local_log l;
    char *witness = collector_witness(col);
    unsigned long long missing = 0;
    size_t dups, lacking;

    local_read(d->audit, &l);
    lacking = witness_match(witness, d, &l, &missing, &dups);
    if (lacking > 0)
        fail_msg("%zu of %zu %s records are not in the witness, seq %llu the first", lacking,
                 l.n, d->what, missing);
    print_message("%s: %zu records (seq %llu-%llu) all in the witness, %zu duplicates\n",
                  d->what, l.n, l.first_seq, l.first_seq + l.n - 1, dups);
    local_free(&l);
    free(witness);
    return dups;
}

/* Waits until every record d has written so far is in the witness. */
static void wait_all_witnessed(const struct collector *col, const struct daemon_view *d,
                               int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        struct local_log l;
        char *witness = collector_witness(col);
        unsigned long long missing = 0;
        size_t dups, lacking;

        local_read_from(d->audit, true, &l);
        lacking = witness_match(witness, d, &l, &missing, &dups);
        local_free(&l);
        free(witness);
        if (lacking == 0)
            return;
        if (now_ms() >= deadline)
            fail_msg("after %d ms %zu %s records are still not in the witness (seq %llu)",
                     timeout_ms, lacking, d->what, missing);
        usleep(100000);
    }
}

/* --- quietroomctl audit verify --------------------------------------------------- */

/* verify [--witness W] of d's file; the exit code, the output in *out if
 * asked for (caller frees), printed otherwise when not 0. */
static int verify(const struct daemon_view *d, const char *witness, char **out)
{
    char *with[] = {QR_CTL_BIN, "audit", "verify", "--key-file", (char *)d->key,
                    "--witness", (char *)witness, (char *)d->audit, NULL};
    char *without[] = {QR_CTL_BIN, "audit", "verify", "--key-file", (char *)d->key,
                       (char *)d->audit, NULL};
    struct ctlrun r;
    int code;

    assert_int_equal(ctlrun(witness ? with : without, CTL_LIMIT_S, &r), 0);
    if (out != NULL) {
        size_t n = strlen(r.out) + strlen(r.err) + 1;

        *out = malloc(n);
        assert_non_null(*out);
        snprintf(*out, n, "%s%s", r.out, r.err);
    }
    if (r.exit_code != 0 && out == NULL)
        print_message("verify %s%s exited %d:\n%s%s", d->what, witness ? " --witness" : "",
                      r.exit_code, r.out, r.err);
    code = r.exit_code;
    ctlrun_free(&r);
    return code;
}

/* Whether text holds the number n on its own (not inside a longer one). */
static bool mentions(const char *text, unsigned long long n)
{
    char digits[24];
    size_t len = (size_t)snprintf(digits, sizeof(digits), "%llu", n);

    for (const char *p = strstr(text, digits); p != NULL; p = strstr(p + 1, digits)) {
        bool before = p > text && p[-1] >= '0' && p[-1] <= '9';
        bool after = p[len] >= '0' && p[len] <= '9';

        if (!before && !after)
            return true;
    }
    return false;
}

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* --- metrics ------------------------------------------------------------------------ */

/* The value of one sample of d's /metrics ("name{labels}" after the
 * daemon's prefix), or -1 when absent or unreadable. */
static double ship_metric(const struct daemon_view *d, const char *sample)
{
    char want[160], *resp = http_request(d->ops_port, "/metrics", AUTH);
    const char *body = http_body(resp);
    double v = -1;
    size_t n;

    n = (size_t)snprintf(want, sizeof(want), "quietroom_%s_audit_ship_%s", d->what, sample);
    for (const char *p = body; p != NULL && *p != '\0';) {
        if (strncmp(p, want, n) == 0 && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    free(resp);
    return v;
}

/* Waits until d's sample is at least min (or, with at_most, at most min). */
static double wait_metric(const struct daemon_view *d, const char *sample, double want,
                          bool at_most, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    double v;

    for (;;) {
        v = ship_metric(d, sample);
        if (v >= 0 && (at_most ? v <= want : v >= want))
            return v;
        if (now_ms() >= deadline)
            fail_msg("%s: %s is %g after %d ms, %s %g wanted", d->what, sample, v, timeout_ms,
                     at_most ? "at most" : "at least", want);
        usleep(50000);
    }
}

/* Waits up to timeout_ms for an "audit.ship" record with reason in d's
 * local file. */
static void wait_ship_record(const struct daemon_view *d, const char *reason, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    char want[64];

    snprintf(want, sizeof(want), "\"reason\":\"%s\"", reason);
    for (;;) {
        char *text = read_text(d->audit);
        bool found = false;

        for (char *p = text; p != NULL && *p != '\0' && !found;) {
            char *nl = strchr(p, '\n');

            if (nl == NULL)
                break;
            *nl = '\0';
            found = strstr(p, "\"type\":\"audit.ship\"") != NULL && strstr(p, want) != NULL;
            p = nl + 1;
        }
        free(text);
        if (found)
            return;
        if (now_ms() >= deadline)
            fail_msg("%s wrote no audit.ship record \"%s\" in %d ms", d->what, reason,
                     timeout_ms);
        usleep(50000);
    }
}

/* --- visits ------------------------------------------------------------------------ */

/* A clinician and a patient in visit sid, the patient admitted; every
 * signaling answer within REPLY_MS (the worst in *worst_ms). */
static void admitted_pair(struct world *w, const char *sid, struct callkit_party *doc,
                          struct callkit_party *pat, uint64_t *worst_ms)
{
    char *doc_tok = mint_token(&w->sig, sid, "clinician", "dr-syslog", NULL);
    char *pat_tok = mint_token(&w->sig, sid, "patient", "pt-syslog", NULL);
    uint64_t t;

    assert_non_null(doc_tok);
    assert_non_null(pat_tok);
    *doc = (struct callkit_party){.port = w->sig.port};
    *pat = (struct callkit_party){.port = w->sig.port};
    t = now_ms();
    callkit_join(doc, doc_tok, "admitted");
    if (now_ms() - t > *worst_ms)
        *worst_ms = now_ms() - t;
    t = now_ms();
    callkit_join(pat, pat_tok, "waiting");
    if (now_ms() - t > *worst_ms)
        *worst_ms = now_ms() - t;
    t = now_ms();
    callkit_admit(doc, pat);
    if (now_ms() - t > *worst_ms)
        *worst_ms = now_ms() - t;
    free(doc_tok);
    free(pat_tok);
}

static void end_visit(struct callkit_party *doc, struct callkit_party *pat)
{
    wsconn_send_json(doc->ws, json_pack("{s:s}", "type", "end"));
    json_decref(callkit_expect(pat->ws, "ended"));
    callkit_free(doc);
    callkit_free(pat);
}

/* A refused token: an audit record with a failed outcome. */
static void forged_token(struct world *w)
{
    json_t *m = NULL;

    wsconn_free(world_join_token(w, "not.a.token", &m));
    assert_string_equal(world_str(m, "type"), "error");
    json_decref(m);
}

/* A whole visit: joins, admission, audio both ways through the relay, a
 * forged token, the end. */
static void visit_with_call(struct world *w, const char *sid)
{
    struct callkit_party doc, pat;
    uint64_t worst = 0;

    admitted_pair(w, sid, &doc, &pat, &worst);
    callkit_media(&doc, &pat);
    forged_token(w);
    end_visit(&doc, &pat);
}

static void stop_daemons(struct world *w)
{
    assert_int_equal(signal_stop(&w->sig), 0);
    assert_int_equal(relay_stop(&w->relay), 0);
}

/* --- tests ------------------------------------------------------------------------- */

/* The rig: a message over TLS reaches the witness in the RFC 5424 file
 * template; stopped, nothing listens and no rsyslogd is left; restarted on
 * the same port it appends; it presents the certificate asked for. */
static void test_collector_rig(void **state)
{
    struct syslog_world *s = *state;
    struct collector *c = &s->col;
    char why[256], *witness;

    assert_int_equal(collector_send(c, "qr-rig", "rig", "{\"rig\":1}", why, sizeof(why)), 0);
    assert_true(collector_wait_for(c, " qr-rig ", 5000));
    assert_true(collector_wait_for(c, " rig - {\"rig\":1}\n", 100));

    assert_int_equal(collector_survivors(c), 1); /* the check sees a running one */
    assert_int_equal(collector_stop(c), 0);
    assert_int_equal(collector_survivors(c), 0);
    assert_int_not_equal(collector_handshake(c, "127.0.0.1", why, sizeof(why)), 0);

    assert_int_equal(collector_restart(c, COLLECTOR_CERT_LOCALHOST), 0);
    assert_int_equal(collector_send(c, "qr-rig", "rig", "{\"rig\":2}", why, sizeof(why)), 0);
    assert_true(collector_wait_for(c, "{\"rig\":2}\n", 5000));
    assert_int_equal(collector_handshake(c, "localhost", why, sizeof(why)), 0);
    assert_int_not_equal(collector_handshake(c, "wrong.example", why, sizeof(why)), 0);

    assert_int_equal(collector_stop(c), 0);
    assert_int_equal(collector_restart(c, COLLECTOR_CERT_WRONG_NAME), 0);
    assert_int_equal(collector_handshake(c, "wrong.example", why, sizeof(why)), 0);
    assert_int_not_equal(collector_handshake(c, "127.0.0.1", why, sizeof(why)), 0);
    print_message("the wrong certificate for 127.0.0.1: %s\n", why);

    witness = collector_witness(c);
    assert_non_null(strstr(witness, "{\"rig\":1}\n"));
    free(witness);
}

/* What else a hospital's collector receives, which verify --witness must
 * pass over: another program's line, and JSON that is no sealed record. */
static void foreign_lines(const struct collector *col)
{
    char why[256];

    assert_int_equal(collector_send(col, "sshd", "-", "Accepted publickey for admin", why,
                                    sizeof(why)), 0);
    assert_int_equal(collector_send(col, "quietroom-relay", "leg.up",
                                    "{\"node\":\"elsewhere\",\"seq\":1,\"mac\":\"AAAA\"}", why,
                                    sizeof(why)), 0);
    assert_true(collector_wait_for(col, "\"mac\":\"AAAA\"}\n", 5000));
}

/* Case a: a call through both daemons; every record is at the collector. */
static void test_call_reaches_the_collector(void **state)
{
    struct syslog_world *s = *state;
    struct daemon_view relay, sig;

    foreign_lines(&s->col);
    visit_with_call(&s->w, "s-syslog-call");
    relay_view(&s->w, &relay);
    signal_view(&s->w, &sig);
    wait_metric(&relay, "records_total{result=\"sent\"}", 1, false, SHIP_WAIT_MS);
    wait_metric(&sig, "records_total{result=\"sent\"}", 1, false, SHIP_WAIT_MS);
    assert_true(ship_metric(&relay, "connected") == 1);
    assert_true(ship_metric(&sig, "connected") == 1);
    /* SIGTERM: what is still queued goes out before the daemons exit. */
    stop_daemons(&s->w);

    assert_all_witnessed(&s->col, &relay);
    assert_all_witnessed(&s->col, &sig);
    assert_int_equal(verify(&relay, s->col.witness, NULL), 0);
    assert_int_equal(verify(&sig, s->col.witness, NULL), 0);
}

/* Case b: the collector down for OUTAGE_MS while visits come and go and a
 * call goes on; back, it gets everything. */
static void test_collector_outage_loses_nothing(void **state)
{
    struct syslog_world *s = *state;
    struct world *w = &s->w;
    struct daemon_view relay, sig;
    struct callkit_party doc, pat;
    struct callkit_sampler *sampler;
    struct local_log before_r, before_s, after_r, after_s;
    uint64_t worst = 0, start, received[2];
    double resent_r, resent_s, ok_r, ok_s;
    int visits = 0;

    relay_view(w, &relay);
    signal_view(w, &sig);
    admitted_pair(w, "s-syslog-long", &doc, &pat, &worst);
    callkit_media(&doc, &pat);
    wait_all_witnessed(&s->col, &relay, SHIP_WAIT_MS);
    wait_all_witnessed(&s->col, &sig, SHIP_WAIT_MS);
    local_read_from(relay.audit, true, &before_r);
    local_read_from(sig.audit, true, &before_s);

    sampler = callkit_sampler_start(doc.rc, pat.rc);
    received[0] = callkit_received(doc.rc);
    received[1] = callkit_received(pat.rc);
    assert_int_equal(collector_stop(&s->col), 0);
    worst = 0;
    for (start = now_ms(); now_ms() - start < OUTAGE_MS; visits++) {
        struct callkit_party d, p;
        char sid[32];

        snprintf(sid, sizeof(sid), "s-outage-%d", visits);
        admitted_pair(w, sid, &d, &p, &worst);
        forged_token(w);
        end_visit(&d, &p);
    }
    /* The daemons noticed: no connection, and behind by about the outage
     * (what the QuietroomAuditShippingBehind alert watches). */
    wait_metric(&relay, "connected", 0, true, 100);
    wait_metric(&sig, "connected", 0, true, 100);
    wait_metric(&relay, "behind_seconds", OUTAGE_MS / 2000.0, false, 2000);
    wait_metric(&sig, "behind_seconds", OUTAGE_MS / 2000.0, false, 2000);
    assert_int_equal(collector_restart(&s->col, COLLECTOR_CERT_LOCALHOST), 0);
    print_message("outage: %d visits in %llu ms, the slowest signaling answer %llu ms\n", visits,
                  (unsigned long long)(now_ms() - start), (unsigned long long)worst);
    if (worst > REPLY_MS)
        fail_msg("signaling took %llu ms to answer while the collector was down",
                 (unsigned long long)worst);

    wait_metric(&relay, "connected", 1, false, SHIP_WAIT_MS);
    wait_metric(&sig, "connected", 1, false, SHIP_WAIT_MS);
    /* Shipping stopped and resumed is on the record: "resumed" once the
     * collector has held what it was sent for a while. */
    wait_ship_record(&relay, "stopped", 0);
    wait_ship_record(&sig, "stopped", 0);
    wait_ship_record(&relay, "resumed", SHIP_WAIT_MS);
    wait_ship_record(&sig, "resumed", SHIP_WAIT_MS);
    wait_all_witnessed(&s->col, &relay, SHIP_WAIT_MS);
    wait_all_witnessed(&s->col, &sig, SHIP_WAIT_MS);
    wait_metric(&relay, "behind_seconds", 0, true, SHIP_WAIT_MS);
    wait_metric(&sig, "behind_seconds", 0, true, SHIP_WAIT_MS);
    callkit_sampler_stop(sampler);
    print_message("audio during the outage: longest gaps %llu / %llu ms, %llu / %llu packets\n",
                  (unsigned long long)sampler->gap_ms[0], (unsigned long long)sampler->gap_ms[1],
                  (unsigned long long)(callkit_received(doc.rc) - received[0]),
                  (unsigned long long)(callkit_received(pat.rc) - received[1]));
    assert_true(sampler->gap_ms[0] < AUDIO_GAP_MS);
    assert_true(sampler->gap_ms[1] < AUDIO_GAP_MS);
    assert_true(callkit_received(doc.rc) > received[0]);
    assert_true(callkit_received(pat.rc) > received[1]);
    free(sampler);

    /* Both daemons wrote records while nobody received them. */
    local_read_from(relay.audit, true, &after_r);
    local_read_from(sig.audit, true, &after_s);
    print_message("records during and after the outage: relay %zu, signal %zu\n",
                  after_r.n - before_r.n, after_s.n - before_s.n);
    assert_true(after_r.n > before_r.n);
    assert_true(after_s.n > before_s.n + (size_t)visits);
    local_free(&before_r);
    local_free(&before_s);
    local_free(&after_r);
    local_free(&after_s);

    resent_r = ship_metric(&relay, "records_total{result=\"resent\"}");
    resent_s = ship_metric(&sig, "records_total{result=\"resent\"}");
    ok_r = ship_metric(&relay, "connects_total{result=\"ok\"}");
    ok_s = ship_metric(&sig, "connects_total{result=\"ok\"}");
    print_message("relay: resent %g, connects ok %g; signal: resent %g, connects ok %g\n",
                  resent_r, ok_r, resent_s, ok_s);
    assert_true(resent_r > 0 || ok_r >= 2);
    assert_true(resent_s > 0 || ok_s >= 2);

    end_visit(&doc, &pat);
    stop_daemons(w);
    assert_all_witnessed(&s->col, &relay);
    assert_all_witnessed(&s->col, &sig);
    assert_int_equal(verify(&relay, s->col.witness, NULL), 0);
    assert_int_equal(verify(&sig, s->col.witness, NULL), 0);
}

/* Case c on one stopped daemon: its last CUT_RECORDS records removed, then
 * its last line cut in half. */
static void cut_tail(const struct collector *col, const struct daemon_view *d)
{
    struct local_log l;
    unsigned long long last, first_cut;
    size_t whole, half;
    char *out;
    int code;

    local_read(d->audit, &l);
    assert_true(l.n > CUT_RECORDS + 1);
    last = l.rec[l.n - 1].seq;
    first_cut = last - CUT_RECORDS + 1;
    assert_int_equal(verify(d, col->witness, NULL), 0);

    whole = (size_t)(l.rec[l.n - CUT_RECORDS].text - l.text);
    write_text(d->audit, l.text, whole);
    code = verify(d, col->witness, &out);
    print_message("%s without seq %llu-%llu: verify --witness exited %d:\n%s", d->what,
                  first_cut, last, code, out);
    assert_int_equal(code, 1);
    if (!mentions(out, first_cut) || !mentions(out, last))
        fail_msg("verify --witness does not name seq %llu-%llu", first_cut, last);
    free(out);

    half = (size_t)(l.rec[l.n - 1].text - l.text) + l.rec[l.n - 1].len / 2;
    write_text(d->audit, l.text, half);
    assert_int_equal(verify(d, NULL, NULL), 3);
    code = verify(d, col->witness, &out);
    print_message("%s with seq %llu cut in half: verify --witness exited %d:\n%s", d->what,
                  last, code, out);
    assert_int_equal(code, 1);
    if (!mentions(out, last))
        fail_msg("verify --witness does not name seq %llu", last);
    free(out);

    write_text(d->audit, l.text, strlen(l.text));
    assert_int_equal(verify(d, col->witness, NULL), 0);
    local_free(&l);
}

static void test_cut_tail_is_seen(void **state)
{
    struct syslog_world *s = *state;
    struct daemon_view relay, sig;

    relay_view(&s->w, &relay);
    signal_view(&s->w, &sig);
    visit_with_call(&s->w, "s-syslog-cut");
    stop_daemons(&s->w);
    assert_all_witnessed(&s->col, &relay);
    assert_all_witnessed(&s->col, &sig);
    cut_tail(&s->col, &sig);
    cut_tail(&s->col, &relay);
}

/* Waits until d's log has a line naming audit-syslog and a certificate. */
static void wait_log_certificate(const struct daemon_view *d)
{
    uint64_t deadline = now_ms() + LOG_WAIT_MS;

    for (;;) {
        char *log = read_text(d->log), *line = NULL;

        for (char *p = log; p != NULL && *p != '\0' && line == NULL;) {
            char *nl = strchr(p, '\n');

            if (nl != NULL)
                *nl = '\0';
            if (strstr(p, "audit-syslog") != NULL && strstr(p, "certificate") != NULL)
                line = p;
            p = nl != NULL ? nl + 1 : NULL;
        }
        if (line != NULL)
            print_message("%s: %s\n", d->what, line);
        free(log);
        if (line != NULL)
            return;
        if (now_ms() >= deadline)
            fail_msg("%s's log says nothing of audit-syslog and a certificate", d->what);
        usleep(50000);
    }
}

/* None of d's local records is anywhere in text. */
static void assert_no_record_in(const char *text, const struct daemon_view *d)
{
    struct local_log l;

    local_read(d->audit, &l);
    for (size_t i = 0; i < l.n; i++) {
        char *rec = strndup(l.rec[i].text, l.rec[i].len);

        assert_non_null(rec);
        if (strstr(text, rec) != NULL)
            fail_msg("%s seq %llu reached a collector it must not trust", d->what,
                     l.rec[i].seq);
        free(rec);
    }
    print_message("%s: none of its %zu records reached the collector\n", d->what, l.n);
    local_free(&l);
}

/* Case d: the collector presents a certificate for wrong.example. */
static void test_wrong_certificate_gets_nothing(void **state)
{
    struct syslog_world *s = *state;
    struct world *w = &s->w;
    struct daemon_view relay, sig;
    struct callkit_party doc, pat;
    uint64_t worst = 0;
    char why[256], *witness;

    relay_view(w, &relay);
    signal_view(w, &sig);
    /* The collector works for a client that expects its name. */
    assert_int_equal(collector_send(&s->col, "qr-rig", "rig", "{\"control\":1}", why,
                                    sizeof(why)), 0);
    assert_true(collector_wait_for(&s->col, "{\"control\":1}\n", 5000));

    visit_with_call(w, "s-syslog-wrong");
    wait_log_certificate(&relay);
    wait_log_certificate(&sig);
    wait_metric(&relay, "connects_total{result=\"refused_certificate\"}", 1, false, 100);
    wait_metric(&sig, "connects_total{result=\"refused_certificate\"}", 1, false, 100);
    assert_true(ship_metric(&relay, "connected") == 0);
    assert_true(ship_metric(&sig, "connected") == 0);
    /* The daemons go on serving. */
    admitted_pair(w, "s-syslog-wrong-2", &doc, &pat, &worst);
    callkit_media(&doc, &pat);
    end_visit(&doc, &pat);
    print_message("a visit with the collector refused: the slowest answer %llu ms\n",
                  (unsigned long long)worst);
    assert_true(worst <= REPLY_MS);
    stop_daemons(w);

    witness = collector_witness(&s->col);
    assert_null(strstr(witness, " quietroom-relay "));
    assert_null(strstr(witness, " quietroom-signal "));
    assert_no_record_in(witness, &relay);
    assert_no_record_in(witness, &sig);
    free(witness);
}

/* A collector that requires a client certificate of its CA: the relay has
 * one (audit-syslog-cert, -key) and ships everything; signaling has none,
 * gets nothing through, says why, and goes on serving. */
static void test_client_certificate_required(void **state)
{
    struct syslog_world *s = *state;
    struct daemon_view relay, sig;
    char *witness;

    relay_view(&s->w, &relay);
    signal_view(&s->w, &sig);
    visit_with_call(&s->w, "s-syslog-client-cert");
    wait_all_witnessed(&s->col, &relay, SHIP_WAIT_MS);
    wait_log_certificate(&sig);
    stop_daemons(&s->w);

    assert_all_witnessed(&s->col, &relay);
    assert_int_equal(verify(&relay, s->col.witness, NULL), 0);
    witness = collector_witness(&s->col);
    assert_null(strstr(witness, " quietroom-signal "));
    assert_no_record_in(witness, &sig);
    free(witness);
}

/* Fails in CI, skips elsewhere, when rsyslogd or its TLS driver is missing. */
static int collector_missing(void)
{
    const char *ci = getenv("CI"), *driver;
    bool in_ci = ci != NULL && strcmp(ci, "true") == 0;
    char why[256];

    if (collector_check(&driver, why, sizeof(why)) == 0)
        return 0;
    fprintf(stderr, "test_audit_syslog: %s%s\n", why, in_ci ? "; CI=true: failing" : "; skipped");
    return in_ci ? 1 : SKIP_RC;
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_collector_rig, setup_collector, teardown),
        cmocka_unit_test_setup_teardown(test_call_reaches_the_collector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collector_outage_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_tail_is_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_certificate_gets_nothing, setup_wrong_name,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_certificate_required, setup_client_cert,
                                        teardown),
    };
    int rc = collector_missing();

    if (rc != 0)
        return rc;
    return world_run_tests("audit_syslog", tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
}
