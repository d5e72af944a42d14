/* Audit chain verification: a realistic log of three files (rotation links,
 * a key rotation, a crash recovered) is built with audit_record_seal, then
 * tampered with in every way the table below lists; each tamper must be
 * named, with the file and line it is at. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "quietroom/audit/audit_record.h"
#include "quietroom/audit/audit_verify.h"

#define KEY1 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define KEY2 "8899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677"
#define BAD1 "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define BAD2 "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

#define NAME_A "audit.jsonl.20261124T070000Z"
#define NAME_B "audit.jsonl.20261125T070000Z"
#define NAME_C "audit.jsonl"
#define MAX_LINES 32
#define MAX_SEQ 64
#define FRAGMENT 40 /* bytes a crash leaves of a line */

enum { FA, FB, FC, NFILES };

/* How the log is built. */
enum crash {
    CRASH_NONE,
    CRASH_RECOVERED,    /* fragment, then audit.recovered and audit.open */
    CRASH_NO_RECOVERED, /* fragment ended by the writer, killed before audit.recovered */
    CRASH_COMPLETE,     /* a whole line cut before its '\n': the writer forks around it */
};

struct tfile {
    const char *name;
    char *lines[MAX_LINES]; /* owned, without '\n' */
    size_t n;
    bool no_newline;        /* the last line is unterminated */
    bool absent;
};

struct tlog {
    char dir[64];
    struct tfile f[NFILES];
    char mac[MAX_SEQ][AUDIT_MAC_B64];  /* by seq */
    char paths[NFILES + 1][128];
    const char *argv[NFILES + 1];
    size_t nargv;
};

/* A stand-in for the writer: seals events one after another. */
struct sim {
    struct tlog *log;
    struct hmac *h;
    struct keyring kr;
    const struct keyring_key *key;
    size_t file;
    uint64_t seq;
    char prev[AUDIT_MAC_B64];
    uint64_t minute;
};

static void keys_load(struct keyring *kr, const char *text)
{
    char err[256];

    if (keyring_parse(text, kr, err, sizeof(err)) != 0)
        fail_msg("keyring_parse: %s", err);
}

static void add_line(struct tfile *f, char *line)
{
    assert_true(f->n < MAX_LINES);
    f->lines[f->n++] = line;
}

/* Seals ev (consumed) as the writer would: time and node, then the seal. */
static char *sim_seal(struct sim *s, json_t *ev, uint64_t seq, const char *prev, char *mac)
{
    char stamp[40];
    size_t len;
    char *line;

    snprintf(stamp, sizeof(stamp), "2026-11-%02uT%02u:%02u:00.%03uZ",
             (unsigned)(24 + s->minute / 1440), (unsigned)(s->minute / 60 % 24),
             (unsigned)(s->minute % 60), (unsigned)(s->minute * 7 % 1000));
    s->minute += 3;
    json_object_set_new(ev, "time", json_string(stamp));
    json_object_set_new(ev, "node", json_string("relay-1"));
    line = audit_record_seal(ev, seq, s->key, prev, s->h, mac, &len);
    assert_non_null(line);
    line[len - 1] = '\0';
    json_decref(ev);
    return line;
}

static void sim_emit(struct sim *s, json_t *ev)
{
    char mac[AUDIT_MAC_B64];

    assert_non_null(ev);
    s->seq++;
    add_line(&s->log->f[s->file], sim_seal(s, ev, s->seq, s->prev, mac));
    memcpy(s->prev, mac, AUDIT_MAC_B64);
    memcpy(s->log->mac[s->seq], mac, AUDIT_MAC_B64);
}

static json_t *ev_new(const char *type, const char *action, int outcome)
{
    return json_pack("{s:s,s:s,s:i}", "type", type, "action", action, "outcome", outcome);
}

static json_t *ev_agent(json_t *ev, const char *sub, const char *role, const char *addr)
{
    json_t *a = json_pack("{s:b}", "requestor", 1);

    if (sub != NULL)
        json_object_set_new(a, "sub", json_string(sub));
    if (role != NULL)
        json_object_set_new(a, "role", json_string(role));
    if (addr != NULL)
        json_object_set_new(a, "address", json_string(addr));
    json_object_set_new(ev, "agents", json_pack("[o]", a));
    return ev;
}

static json_t *ev_session(json_t *ev, const char *sid, bool part2)
{
    json_object_set_new(ev, "session", json_string(sid));
    json_object_set_new(ev, "labels", part2 ? json_pack("[s,s]", "R", "42CFRPart2")
                                            : json_pack("[s]", "R"));
    return ev;
}

static json_t *ev_set(json_t *ev, const char *name, json_t *value)
{
    json_object_set_new(ev, name, value);
    return ev;
}

static json_t *ev_open(const char *previous, const char *reason)
{
    json_t *ev = ev_new("audit.open", "E", 0);

    ev_set(ev, "previous_file", previous ? json_string(previous) : json_null());
    return ev_set(ev, "reason", json_string(reason));
}

static json_t *ev_close(const char *rotated_to, const char *reason)
{
    json_t *ev = ev_new("audit.close", "E", 0);

    ev_set(ev, "rotated_to", rotated_to ? json_string(rotated_to) : json_null());
    return ev_set(ev, "reason", json_string(reason));
}

static void build_a(struct sim *s)
{
    s->file = FA;
    sim_emit(s, ev_open(NULL, "start"));
    sim_emit(s, ev_agent(ev_new("relay.start", "E", 0), NULL, "relay", NULL));
    sim_emit(s, ev_set(ev_session(ev_agent(ev_new("auth.success", "E", 0), "dr-a", "clinician",
                                           "10.1.2.3:50000"),
                                  "appt-42", true),
                       "detail", json_pack("{s:s,s:s}", "participant", "c1", "method", "token")));
    sim_emit(s, ev_session(ev_agent(ev_new("participant.waiting", "E", 0), "p-77", "patient",
                                    "198.51.100.7:40000"),
                           "appt-42", true));
    sim_emit(s, ev_set(ev_session(ev_agent(ev_new("participant.admitted", "U", 0), "p-77",
                                           "patient", NULL),
                                  "appt-42", true),
                       "by", json_pack("{s:s,s:s}", "sub", "dr-a", "role", "clinician")));
    sim_emit(s, ev_set(ev_session(ev_agent(ev_new("leg.up", "C", 0), NULL, "leg-a",
                                           "h:0123456789abcdef"),
                                  "0011223344556677", false),
                       "detail", json_pack("{s:i,s:i}", "link", 0, "kid", 1)));
    sim_emit(s, ev_set(ev_agent(ev_new("auth.failure", "E", 4), NULL, NULL, "203.0.113.9:1234"),
                       "reason", json_string("token_bad_signature")));
    sim_emit(s, ev_set(ev_new("audit.checkpoint", "E", 0), "records", json_integer(7)));
    sim_emit(s, ev_close(NAME_A, "rotation"));
}

/* The line a crash cut: the start of the record that would have come. */
static void crash(struct sim *s, enum crash how)
{
    char mac[AUDIT_MAC_B64], *line;
    json_t *ev;

    line = sim_seal(s, ev_session(ev_agent(ev_new("participant.resumed", "E", 0), "p-77",
                                           "patient", "198.51.100.7:40001"),
                                  "appt-42", true),
                    s->seq + 1, s->prev, mac);
    if (how != CRASH_COMPLETE)
        line[FRAGMENT] = '\0';
    add_line(&s->log->f[s->file], line);
    if (how == CRASH_NO_RECOVERED) {
        sim_emit(s, ev_open(NULL, "start"));
        return;
    }
    ev = ev_set(ev_new("audit.recovered", "E", 4), "reason", json_string("torn_last_line"));
    sim_emit(s, ev_set(ev, "torn_bytes", json_integer((json_int_t)strlen(line))));
    sim_emit(s, ev_open(NULL, "start"));
}

static void build_b(struct sim *s, enum crash how)
{
    json_t *ev;

    s->file = FB;
    sim_emit(s, ev_open(NAME_A, "rotation"));
    ev = ev_agent(ev_new("participant.disconnected", "E", 4), "p-77", "patient", NULL);
    sim_emit(s, ev_set(ev_session(ev, "appt-42", true), "reason", json_string("network")));
    if (how != CRASH_NONE)
        crash(s, how);
    sim_emit(s, ev_session(ev_agent(ev_new("participant.resumed", "E", 0), "p-77", "patient",
                                    "198.51.100.7:40001"),
                           "appt-42", true));
    ev = ev_session(ev_agent(ev_new("leg.down", "D", 4), NULL, "leg-a", "h:0123456789abcdef"),
                    "0011223344556677", false);
    ev_set(ev, "reason", json_string("consent"));
    ev_set(ev, "period", json_pack("{s:s,s:s}", "start", "2026-11-24T07:15:00.000Z", "end",
                                   "2026-11-25T07:20:00.000Z"));
    sim_emit(s, ev_set(ev, "detail",
                       json_pack("{s:I,s:I,s:f,s:[{s:i,s:f}]}", "duration_ms",
                                 (json_int_t)300000, "bytes_in", (json_int_t)3000000000LL,
                                 "loss", 0.02, "rtp_streams", "lost", 3, "jitter_ms", 4.5)));
    ev = ev_session(ev_new("session.ended", "E", 0), "appt-42", true);
    ev_set(ev, "by", json_pack("{s:s,s:s}", "sub", "dr-a", "role", "clinician"));
    sim_emit(s, ev_set(ev, "detail", json_pack("{s:i}", "participants", 2)));
    sim_emit(s, ev_close(NAME_B, "rotation"));
}

/* The active file, sealed under key id 2 after a key rotation. */
static void build_c(struct sim *s, bool purge)
{
    s->file = FC;
    s->key = keyring_find(&s->kr, 2);
    sim_emit(s, ev_open(NAME_B, "rotation"));
    if (purge) {
        json_t *ev = ev_set(ev_new("audit.purge", "D", 0), "reason", json_string("retention"));

        ev_set(ev, "file", json_string(NAME_A));
        ev_set(ev, "first_seq", json_integer(1));
        ev_set(ev, "last_seq", json_integer(9));
        sim_emit(s, ev_set(ev, "last_mac", json_string(s->log->mac[9])));
    }
    sim_emit(s, ev_set(ev_session(ev_agent(ev_new("participant.left", "E", 0), "dr-a",
                                           "clinician", "10.1.2.3:50000"),
                                  "appt-42", true),
                       "reason", json_string("hangup")));
    sim_emit(s, ev_set(ev_new("audit.overflow", "E", 4), "lost", json_integer(3)));
    sim_emit(s, ev_set(ev_agent(ev_new("auth.failure", "E", 4), "p-78", "patient", "::1"),
                       "reason", json_string("token_expired")));
    sim_emit(s, ev_agent(ev_new("signal.stop", "E", 0), NULL, "signaling", NULL));
    sim_emit(s, ev_close(NULL, "stop"));
}

static struct tlog *build(enum crash how, bool purge)
{
    struct tlog *log = calloc(1, sizeof(*log));
    struct sim s = {.log = log};

    assert_non_null(log);
    log->f[FA].name = NAME_A;
    log->f[FB].name = NAME_B;
    log->f[FC].name = NAME_C;
    snprintf(log->dir, sizeof(log->dir), "/tmp/qr-audit-verify-XXXXXX");
    assert_non_null(mkdtemp(log->dir));
    keys_load(&s.kr, "1 " KEY1 "\n2 " KEY2 "\n");
    s.key = keyring_find(&s.kr, 1);
    s.h = hmac_new(HMAC_SHA256);
    memcpy(s.prev, AUDIT_GENESIS, AUDIT_MAC_B64);
    build_a(&s);
    build_b(&s, how);
    build_c(&s, purge);
    hmac_free(s.h);
    keyring_wipe(&s.kr);
    return log;
}

/* Writes the files that are not absent; paths in chain order. */
static void write_log(struct tlog *log)
{
    log->nargv = 0;
    for (int i = 0; i < NFILES; i++) {
        struct tfile *f = &log->f[i];
        FILE *fp;

        snprintf(log->paths[i], sizeof(log->paths[i]), "%s/%s", log->dir, f->name);
        unlink(log->paths[i]);
        if (f->absent)
            continue;
        fp = fopen(log->paths[i], "w");
        assert_non_null(fp);
        for (size_t j = 0; j < f->n; j++)
            fprintf(fp, "%s%s", f->lines[j], j + 1 == f->n && f->no_newline ? "" : "\n");
        fclose(fp);
        log->argv[log->nargv++] = log->paths[i];
    }
}

static void free_log(struct tlog *log)
{
    char cmd[128];

    for (int i = 0; i < NFILES; i++) {
        for (size_t j = 0; j < log->f[i].n; j++)
            free(log->f[i].lines[j]);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", log->dir);
    if (system(cmd) != 0)
        print_message("could not remove %s\n", log->dir);
    free(log);
}

static struct audit_report verify_with(struct tlog *log, const char *keys)
{
    struct audit_report r;
    struct keyring kr;

    keys_load(&kr, keys);
    write_log(log);
    assert_int_equal(audit_verify_files(log->argv, log->nargv, &kr, &r), 0);
    keyring_wipe(&kr);
    return r;
}

static struct audit_report verify(struct tlog *log)
{
    return verify_with(log, "2 " KEY2 "\n1 " KEY1 "\n");
}

/* --- tampering, by line (1-based) --------------------------------------------- */

static void t_delete(struct tfile *f, size_t no)
{
    free(f->lines[no - 1]);
    memmove(&f->lines[no - 1], &f->lines[no], (f->n - no) * sizeof(char *));
    f->n--;
}

static void t_insert(struct tfile *f, size_t after, const char *text)
{
    assert_true(f->n < MAX_LINES);
    memmove(&f->lines[after + 1], &f->lines[after], (f->n - after) * sizeof(char *));
    f->lines[after] = strdup(text);
    f->n++;
}

static void t_swap(struct tfile *f, size_t a, size_t b)
{
    char *t = f->lines[a - 1];

    f->lines[a - 1] = f->lines[b - 1];
    f->lines[b - 1] = t;
}

/* Replaces the first occurrence of from in line no with to. */
static void t_edit(struct tfile *f, size_t no, const char *from, const char *to)
{
    char *line = f->lines[no - 1], *at = strstr(line, from), *out;

    assert_non_null(at);
    out = malloc(strlen(line) - strlen(from) + strlen(to) + 1);
    sprintf(out, "%.*s%s%s", (int)(at - line), line, to, at + strlen(from));
    free(line);
    f->lines[no - 1] = out;
}

/* Cuts bytes from the end of the file: the last line loses them and its '\n'. */
static void t_cut_bytes(struct tfile *f, size_t bytes)
{
    char *last = f->lines[f->n - 1];

    assert_true(strlen(last) > bytes);
    last[strlen(last) - bytes] = '\0';
    f->no_newline = true;
}

/* --- the table ---------------------------------------------------------------- */

struct tamper {
    const char *name;
    enum crash crash;
    bool purge;
    void (*apply)(struct tlog *log);
    const char *keys;                  /* NULL: both right keys */
    enum audit_problem want;
    int file;                          /* FA, FB, FC; -1 for none */
    uint64_t line;
};

static void edit_field(struct tlog *log)
{
    t_edit(&log->f[FA], 3, "dr-a", "dr-b");
}

static void edit_last_of_rotated(struct tlog *log)
{
    t_edit(&log->f[FB], 6, "\"rotation\"", "\"stop\"");
}

static void edit_seq(struct tlog *log)
{
    t_edit(&log->f[FA], 5, "\"seq\":5", "\"seq\":6");
}

static void edit_breaking_json(struct tlog *log)
{
    t_edit(&log->f[FA], 4, "\"type\":", "\"type\"=");
}

static void delete_line(struct tlog *log)
{
    t_delete(&log->f[FA], 5);
}

static void delete_first_record(struct tlog *log)
{
    t_delete(&log->f[FA], 1);
}

static void delete_first_of_rotated(struct tlog *log)
{
    t_delete(&log->f[FB], 1);
}

static void swap_lines(struct tlog *log)
{
    t_swap(&log->f[FB], 2, 3);
}

static void move_line_later(struct tlog *log)
{
    char *moved = strdup(log->f[FA].lines[2]);

    t_delete(&log->f[FA], 3);
    t_insert(&log->f[FA], 5, moved);
    free(moved);
}

/* A line that looks right (seq 5 after seq 4) but is sealed with a key the
 * attacker made up. */
static void insert_forged(struct tlog *log)
{
    struct keyring kr;
    struct hmac *h = hmac_new(HMAC_SHA256);
    char mac[AUDIT_MAC_B64], *line;
    size_t len;
    json_t *ev = json_pack("{s:s,s:s,s:i,s:s,s:s,s:s}", "type", "participant.admitted", "action",
                           "U", "outcome", 0, "session", "appt-42", "time",
                           "2026-11-24T00:13:00.000Z", "node", "relay-1");

    keys_load(&kr, "1 " BAD1 "\n");
    line = audit_record_seal(ev, 5, keyring_find(&kr, 1), log->mac[4], h, mac, &len);
    line[len - 1] = '\0';
    t_insert(&log->f[FA], 4, line);
    free(line);
    json_decref(ev);
    hmac_free(h);
}

static void insert_replayed_copy(struct tlog *log)
{
    char *copy = strdup(log->f[FA].lines[1]);

    t_insert(&log->f[FA], 6, copy);
    free(copy);
}

static void insert_unsealed(struct tlog *log)
{
    t_insert(&log->f[FA], 3, "{\"type\":\"auth.success\",\"agents\":[{\"sub\":\"mallory\"}]}");
}

static void insert_garbage(struct tlog *log)
{
    t_insert(&log->f[FB], 3, "rm -rf / # not a record");
}

static void torn_last_line(struct tlog *log)
{
    t_cut_bytes(&log->f[FC], 30);
}

static void last_newline_only(struct tlog *log)
{
    log->f[FC].no_newline = true;
}

static void cut_bytes_rotated(struct tlog *log)
{
    t_cut_bytes(&log->f[FA], 20);
}

static void cut_lines_rotated(struct tlog *log)
{
    t_delete(&log->f[FA], 9);
    t_delete(&log->f[FA], 8);
}

static void empty_rotated(struct tlog *log)
{
    while (log->f[FB].n > 0)
        t_delete(&log->f[FB], log->f[FB].n);
}

static void remove_middle(struct tlog *log)
{
    log->f[FB].absent = true;
}

static void remove_first(struct tlog *log)
{
    log->f[FA].absent = true;
}

static void delete_close(struct tlog *log)
{
    t_delete(&log->f[FC], log->f[FC].n);
}

static void torn_resized(struct tlog *log)
{
    t_edit(&log->f[FB], 3, "{\"type\"", "{\"type\"  ");
}

static void nothing(struct tlog *log)
{
    (void)log;
}

#define BOTH "1 " KEY1 "\n2 " KEY2 "\n"

static const struct tamper tampers[] = {
    {"intact", CRASH_NONE, false, nothing, NULL, AUDIT_OK, -1, 0},
    {"intact_purge_vouches_for_missing_first_file", CRASH_NONE, true, remove_first, NULL,
     AUDIT_OK, -1, 0},
    {"crash_recovered_is_torn", CRASH_RECOVERED, false, nothing, NULL, AUDIT_TORN, FB, 3},
    {"crash_before_recovered_record_is_torn", CRASH_NO_RECOVERED, false, nothing, NULL,
     AUDIT_TORN, FB, 3},
    {"crash_cut_only_newline_is_torn", CRASH_COMPLETE, false, nothing, NULL, AUDIT_TORN, FB, 3},
    {"torn_last_line", CRASH_NONE, false, torn_last_line, NULL, AUDIT_TORN, FC, 6},
    {"last_line_without_newline", CRASH_NONE, false, last_newline_only, NULL, AUDIT_TORN, FC, 6},
    {"closed_log_cut_at_a_line_is_undetectable", CRASH_NONE, false, delete_close, NULL, AUDIT_OK,
     -1, 0},
    {"edit_field", CRASH_NONE, false, edit_field, NULL, AUDIT_EDITED, FA, 3},
    {"edit_last_line_of_rotated_file", CRASH_NONE, false, edit_last_of_rotated, NULL,
     AUDIT_EDITED, FB, 6},
    {"edit_seq", CRASH_NONE, false, edit_seq, NULL, AUDIT_EDITED, FA, 5},
    {"edit_breaking_json", CRASH_NONE, false, edit_breaking_json, NULL, AUDIT_EDITED, FA, 4},
    {"edit_torn_fragment", CRASH_RECOVERED, false, torn_resized, NULL, AUDIT_EDITED, FB, 3},
    {"delete_line", CRASH_NONE, false, delete_line, NULL, AUDIT_DELETED, FA, 5},
    {"delete_first_record", CRASH_NONE, false, delete_first_record, NULL, AUDIT_DELETED, FA, 1},
    {"delete_first_line_of_rotated_file", CRASH_NONE, false, delete_first_of_rotated, NULL,
     AUDIT_DELETED, FB, 1},
    {"swap_lines", CRASH_NONE, false, swap_lines, NULL, AUDIT_REORDERED, FB, 2},
    {"move_line_later", CRASH_NONE, false, move_line_later, NULL, AUDIT_REORDERED, FA, 3},
    {"insert_forged", CRASH_NONE, false, insert_forged, NULL, AUDIT_INSERTED, FA, 5},
    {"insert_replayed_copy", CRASH_NONE, false, insert_replayed_copy, NULL, AUDIT_INSERTED, FA,
     7},
    {"insert_unsealed", CRASH_NONE, false, insert_unsealed, NULL, AUDIT_INSERTED, FA, 4},
    {"insert_garbage", CRASH_NONE, false, insert_garbage, NULL, AUDIT_TRUNCATED, FB, 4},
    {"cut_bytes_of_rotated_file", CRASH_NONE, false, cut_bytes_rotated, NULL, AUDIT_TRUNCATED,
     FA, 9},
    {"cut_lines_of_rotated_file", CRASH_NONE, false, cut_lines_rotated, NULL, AUDIT_TRUNCATED,
     FA, 8},
    {"empty_rotated_file", CRASH_NONE, false, empty_rotated, NULL, AUDIT_TRUNCATED, FB, 1},
    {"remove_middle_file", CRASH_NONE, true, remove_middle, NULL, AUDIT_GAP, FC, 1},
    {"remove_first_file_without_purge", CRASH_NONE, false, remove_first, NULL, AUDIT_GAP, FB, 1},
    {"wrong_key", CRASH_NONE, false, nothing, "1 " BAD1 "\n2 " BAD2 "\n", AUDIT_WRONG_KEY, FA, 1},
    {"wrong_key_for_one_id", CRASH_NONE, false, nothing, "1 " KEY1 "\n2 " BAD2 "\n",
     AUDIT_WRONG_KEY, FC, 1},
    {"unknown_kid", CRASH_NONE, false, nothing, "1 " KEY1 "\n", AUDIT_UNKNOWN_KEY, FC, 1},
};

#define N_TAMPERS (sizeof(tampers) / sizeof(tampers[0]))

static void test_tamper(void **state)
{
    const struct tamper *t = *state;
    struct tlog *log = build(t->crash, t->purge);
    struct audit_report r;
    char where[160] = "";

    t->apply(log);
    r = verify_with(log, t->keys ? t->keys : BOTH);
    if (r.file != NULL)
        snprintf(where, sizeof(where), "line %llu of %s", (unsigned long long)r.line,
                 strrchr(r.file, '/') + 1);
    print_message("%-45s %s: %s: %s\n", t->name, where, audit_problem_code(r.problem), r.why);
    assert_string_equal(audit_problem_code(r.problem), audit_problem_code(t->want));
    if (t->file < 0) {
        assert_null(r.file);
    } else {
        assert_non_null(r.file);
        assert_string_equal(strrchr(r.file, '/') + 1, log->f[t->file].name);
        assert_int_equal(r.line, t->line);
    }
    /* Reasons never carry key material. */
    assert_null(strstr(r.why, KEY1));
    assert_null(strstr(r.why, "00112233"));
    free_log(log);
}

/* --- beyond the table ----------------------------------------------------------- */

static void test_counts_of_an_intact_log(void **state)
{
    struct tlog *log = build(CRASH_RECOVERED, false);
    struct audit_report r = verify(log);

    (void)state;
    assert_int_equal(r.problem, AUDIT_TORN);
    assert_int_equal(r.files, 3);
    assert_int_equal(r.records, 23);
    assert_int_equal(r.first_seq, 1);
    assert_int_equal(r.last_seq, 23);
    assert_int_equal(r.torn, 1);
    assert_true(r.clean);
    assert_false(audit_problem_is_failure(r.problem));
    assert_non_null(strstr(r.why, "recovered"));
    free_log(log);
}

static void test_still_open_log_is_not_clean(void **state)
{
    struct tlog *log = build(CRASH_NONE, false);
    struct audit_report r;

    (void)state;
    delete_close(log);
    r = verify(log);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_false(r.clean);
    assert_int_equal(r.last_seq, 20);
    free_log(log);
}

/* Files come in any order (a shell glob sorts the active file first), and
 * the same file twice counts once. */
static void test_any_order_and_duplicates(void **state)
{
    struct tlog *log = build(CRASH_NONE, false);
    struct audit_report r;
    struct keyring kr;
    const char *paths[5];

    (void)state;
    keys_load(&kr, BOTH);
    write_log(log);
    paths[0] = log->paths[FC];
    paths[1] = log->paths[FB];
    paths[2] = log->paths[FA];
    paths[3] = log->paths[FB];
    paths[4] = log->paths[FC];
    assert_int_equal(audit_verify_files(paths, 5, &kr, &r), 0);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_int_equal(r.files, 3);
    assert_int_equal(r.records, 21);
    keyring_wipe(&kr);
    free_log(log);
}

static void test_unreadable_file(void **state)
{
    struct audit_report r;
    struct keyring kr;
    const char *paths[] = {"/nonexistent/audit.jsonl"};

    (void)state;
    keys_load(&kr, BOTH);
    assert_int_equal(audit_verify_files(paths, 1, &kr, &r), 0);
    assert_int_equal(r.problem, AUDIT_UNREADABLE);
    assert_string_equal(r.file, paths[0]);
    assert_true(audit_problem_is_failure(r.problem));
    assert_int_equal(audit_verify_files(paths, 0, &kr, &r), -1);
}

struct seen {
    uint64_t seqs[MAX_SEQ];
    size_t n;
};

static int collect(json_t *rec, const char *file, uint64_t line, void *arg)
{
    struct seen *s = arg;

    assert_non_null(file);
    assert_true(line > 0);
    s->seqs[s->n++] = (uint64_t)json_integer_value(json_object_get(rec, "seq"));
    return 0;
}

/* The walk hands over each accepted record once, in chain order, and never
 * the torn fragment. */
static void test_walk_delivers_chain_order(void **state)
{
    struct tlog *log = build(CRASH_RECOVERED, false);
    struct audit_report r;
    struct keyring kr;
    struct seen seen = {.n = 0};
    const char *paths[3];

    (void)state;
    keys_load(&kr, BOTH);
    write_log(log);
    paths[0] = log->paths[FC];
    paths[1] = log->paths[FA];
    paths[2] = log->paths[FB];
    assert_int_equal(audit_verify_walk(paths, 3, &kr, collect, &seen, &r), 0);
    assert_int_equal(seen.n, 23);
    for (size_t i = 0; i < seen.n; i++)
        assert_int_equal(seen.seqs[i], i + 1);
    keyring_wipe(&kr);
    free_log(log);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "r");
    char *buf = malloc(65536);

    assert_non_null(fp);
    *len = fread(buf, 1, 65536, fp);
    fclose(fp);
    return buf;
}

static void spill(const char *path, const char *buf, size_t len)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    fclose(fp);
}

static struct audit_report verify_written(struct tlog *log, struct keyring *kr)
{
    struct audit_report r;

    assert_int_equal(audit_verify_files(log->argv, log->nargv, kr, &r), 0);
    return r;
}

/* Any one byte changed anywhere in any file is a failure, never "ok" or a
 * mere torn line. */
static void test_every_flipped_byte_fails(void **state)
{
    struct tlog *log = build(CRASH_NONE, false);
    struct keyring kr;
    unsigned seed = 20261124, checked = 0;

    (void)state;
    keys_load(&kr, BOTH);
    write_log(log);
    for (int fi = 0; fi < NFILES; fi++) {
        size_t len;
        char *orig = slurp(log->paths[fi], &len), *buf = malloc(len);

        for (size_t off = (size_t)(rand_r(&seed) % 5); off < len; off += 3 + rand_r(&seed) % 9) {
            struct audit_report r;

            memcpy(buf, orig, len);
            buf[off] ^= (char)(1 + rand_r(&seed) % 255);
            spill(log->paths[fi], buf, len);
            r = verify_written(log, &kr);
            if (!audit_problem_is_failure(r.problem))
                fail_msg("byte %zu of %s changed: %s (%s)", off, log->f[fi].name,
                         audit_problem_code(r.problem), r.why);
            checked++;
        }
        spill(log->paths[fi], orig, len);
        free(buf);
        free(orig);
    }
    print_message("%u damaged copies, all named as failures\n", checked);
    keyring_wipe(&kr);
    free_log(log);
}

/* The active file cut at any byte (a crash, or a copy taken while it is
 * written) is intact or torn; a rotated file cut anywhere short of its last
 * '\n' (which loses nothing) fails. */
static void test_cut_anywhere(void **state)
{
    struct tlog *log = build(CRASH_NONE, false);
    struct keyring kr;
    size_t len;
    char *orig;

    (void)state;
    keys_load(&kr, BOTH);
    write_log(log);
    orig = slurp(log->paths[FC], &len);
    for (size_t cut = 1; cut < len; cut += 5) {
        struct audit_report r;

        spill(log->paths[FC], orig, cut);
        r = verify_written(log, &kr);
        if (r.problem != (orig[cut - 1] == '\n' ? AUDIT_OK : AUDIT_TORN))
            fail_msg("active file cut at %zu: %s (%s)", cut, audit_problem_code(r.problem),
                     r.why);
    }
    spill(log->paths[FC], orig, len);
    free(orig);
    orig = slurp(log->paths[FA], &len);
    for (size_t cut = 0; cut + 1 < len; cut += 7) {
        struct audit_report r;

        spill(log->paths[FA], orig, cut);
        r = verify_written(log, &kr);
        if (!audit_problem_is_failure(r.problem))
            fail_msg("rotated file cut at %zu: %s (%s)", cut, audit_problem_code(r.problem),
                     r.why);
    }
    free(orig);
    keyring_wipe(&kr);
    free_log(log);
}

static void test_problem_codes(void **state)
{
    (void)state;
    assert_string_equal(audit_problem_code(AUDIT_OK), "ok");
    assert_string_equal(audit_problem_code(AUDIT_EDITED), "edited");
    assert_string_equal(audit_problem_code(AUDIT_WRONG_KEY), "wrong_key");
    assert_string_equal(audit_problem_code((enum audit_problem)99), "unknown");
    assert_false(audit_problem_is_failure(AUDIT_TORN));
    assert_true(audit_problem_is_failure(AUDIT_GAP));
}

int main(void)
{
    struct CMUnitTest tests[N_TAMPERS + 8];
    const struct CMUnitTest rest[] = {
        cmocka_unit_test(test_counts_of_an_intact_log),
        cmocka_unit_test(test_still_open_log_is_not_clean),
        cmocka_unit_test(test_any_order_and_duplicates),
        cmocka_unit_test(test_unreadable_file),
        cmocka_unit_test(test_walk_delivers_chain_order),
        cmocka_unit_test(test_every_flipped_byte_fails),
        cmocka_unit_test(test_cut_anywhere),
        cmocka_unit_test(test_problem_codes),
    };

    for (size_t i = 0; i < N_TAMPERS; i++)
        tests[i] = (struct CMUnitTest){.name = tampers[i].name, .test_func = test_tamper,
                                       .initial_state = (void *)&tampers[i]};
    memcpy(&tests[N_TAMPERS], rest, sizeof(rest));
    return _cmocka_run_group_tests("audit_verify", tests, N_TAMPERS + 8, NULL, NULL);
}
