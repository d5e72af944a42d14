/* The log the audit verification tests tamper with (see
 * audit_verify_fixtures.h): a stand-in for the writer, the files written and
 * removed, and a verification with a given keyring. */
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

#include "audit_verify_fixtures.h"

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

void keys_load(struct keyring *kr, const char *text)
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

struct tlog *build(enum crash how, bool purge)
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
void write_log(struct tlog *log)
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

void free_log(struct tlog *log)
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

struct audit_report verify_with(struct tlog *log, const char *keys)
{
    struct audit_report r;
    struct keyring kr;

    keys_load(&kr, keys);
    write_log(log);
    assert_int_equal(audit_verify_files(log->argv, log->nargv, &kr, &r), 0);
    keyring_wipe(&kr);
    return r;
}

void t_delete(struct tfile *f, size_t no)
{
    free(f->lines[no - 1]);
    memmove(&f->lines[no - 1], &f->lines[no], (f->n - no) * sizeof(char *));
    f->n--;
}

void delete_close(struct tlog *log)
{
    t_delete(&log->f[FC], log->f[FC].n);
}
