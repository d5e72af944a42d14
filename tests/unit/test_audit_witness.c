/* quietroomctl audit verify --witness (common/audit/audit_witness.c): the
 * witness line parser on what rsyslog really writes, and the check of a
 * local chain against a witness file in rsyslog's RFC 5424 file format
 * (RSYSLOG_SyslogProtocol23Format) holding the records of two daemons,
 * duplicates, forged lines and other syslog traffic. The chains are sealed
 * with audit_record_seal as the writer does (and once by the writer
 * itself, audit_open/audit_emit); the CLI is run for its exit codes. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "quietroom/audit/audit.h"
#include "quietroom/audit/audit_record.h"
#include "quietroom/audit/audit_witness.h"

#define KEY "1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
#define OTHER "1 ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n"
#define KEY_AND_2 KEY "2 8899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677\n"

/* The relay's chain: three files (A 1-10, B 11-20, C 21-44); seq 22 is an
 * audit.purge vouching for B's stretch, so that A and C alone verify. */
#define NREC 44
#define NSIGNAL 30
#define CUT 41 /* the local end when records are cut off */
#define NAME_A "audit.jsonl.20261205T000000Z"
#define NAME_B "audit.jsonl.20261205T120000Z"
#define NAME_C "audit.jsonl"

struct chain {
    const char *node, *app;
    char *line[NREC + 1];               /* by seq, owned, without '\n' */
    char mac[NREC + 1][AUDIT_MAC_B64];
    uint64_t n;
};

struct world {
    char dir[64];
    char keys[160], witness[160], file[3][160];
    const char *paths[3];
    struct keyring kr;
    struct chain relay, signal;
};

static void keys_parse(struct keyring *kr, const char *text)
{
    char err[256];

    if (keyring_parse(text, kr, err, sizeof(err)) != 0)
        fail_msg("keyring_parse: %s", err);
}

/* --- the writer's stand-in ----------------------------------------------------- */

static json_t *ev_rotation(const char *type, const char *name_field, const char *name)
{
    return json_pack("{s:s,s:s,s:i,s:s?,s:s}", "type", type, "action", "E", "outcome", 0,
                     name_field, name, "reason", name != NULL ? "rotation" : "start");
}

/* What seq holds in the relay's (and signaling's) chain. */
static json_t *ev_for(const struct chain *ch, uint64_t seq)
{
    static const char *const types[] = {"auth.success", "participant.waiting",
                                        "participant.admitted", "leg.up", "leg.down",
                                        "session.ended"};

    switch (seq) {
    case 1:
        return ev_rotation("audit.open", "previous_file", NULL);
    case 10:
        return ev_rotation("audit.close", "rotated_to", NAME_A);
    case 11:
        return ev_rotation("audit.open", "previous_file", NAME_A);
    case 20:
        return ev_rotation("audit.close", "rotated_to", NAME_B);
    case 21:
        return ev_rotation("audit.open", "previous_file", NAME_B);
    case 22:
        return json_pack("{s:s,s:s,s:i,s:i,s:i,s:s}", "type", "audit.purge", "action", "D",
                         "outcome", 0, "first_seq", 11, "last_seq", 20, "last_mac", ch->mac[20]);
    default:
        return json_pack("{s:s,s:s,s:i,s:s,s:[s]}", "type", types[seq % 6], "action", "E",
                         "outcome", seq % 7 == 0 ? 4 : 0, "session", "appt-4711", "labels", "R");
    }
}

/* Seals seq of ch after seq - 1, as the writer would. ev is consumed. */
static void seal(struct chain *ch, uint64_t seq, json_t *ev, const struct keyring_key *key)
{
    struct hmac *h = hmac_new(HMAC_SHA256);
    char stamp[40];
    size_t len;
    char *line;

    assert_non_null(ev);
    assert_non_null(h);
    snprintf(stamp, sizeof(stamp), "2026-12-05T16:%02u:%02u.%03uZ", (unsigned)(seq / 60),
             (unsigned)(seq % 60), (unsigned)(seq * 37 % 1000));
    json_object_set_new(ev, "time", json_string(stamp));
    json_object_set_new(ev, "node", json_string(ch->node));
    line = audit_record_seal(ev, seq, key, seq == 1 ? AUDIT_GENESIS : ch->mac[seq - 1], h,
                             ch->mac[seq], &len);
    assert_non_null(line);
    line[len - 1] = '\0';
    free(ch->line[seq]);
    ch->line[seq] = line;
    json_decref(ev);
    hmac_free(h);
}

static void chain_build(struct chain *ch, const char *node, const char *app, uint64_t n,
                        const struct keyring *kr)
{
    ch->node = node;
    ch->app = app;
    ch->n = n;
    for (uint64_t seq = 1; seq <= n; seq++)
        seal(ch, seq, ev_for(ch, seq), keyring_active(kr));
}

/* Someone holding the key rewrites seq and seals the chain again from
 * there: the local chain verifies, only a copy held elsewhere disagrees. */
static void chain_reseal_from(struct chain *ch, uint64_t from, const struct keyring *kr)
{
    for (uint64_t seq = from; seq <= ch->n; seq++) {
        json_t *ev = ev_for(ch, seq);

        if (seq == from)
            json_object_set_new(ev, "outcome", json_integer(12));
        seal(ch, seq, ev, keyring_active(kr));
    }
}

static void chain_free(struct chain *ch)
{
    for (uint64_t seq = 0; seq <= NREC; seq++)
        free(ch->line[seq]);
}

/* --- files ----------------------------------------------------------------------- */

static void write_text(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static FILE *open_file(const char *path)
{
    FILE *fp;

    write_text(path, "", 0);
    fp = fopen(path, "w");
    assert_non_null(fp);
    return fp;
}

/* The local files holding seqs 1..upto (except skip, if non-zero), and the
 * first cut bytes of seq upto + 1 without a newline (a half line). */
static void write_local_cut(struct world *w, uint64_t upto, uint64_t skip, size_t cut)
{
    FILE *fp = NULL;

    for (uint64_t seq = 1; seq <= upto + (cut > 0); seq++) {
        if (seq == 1 || seq == 11 || seq == 21) {
            if (fp != NULL)
                fclose(fp);
            fp = open_file(w->file[seq / 10]);
        }
        if (seq == skip)
            continue;
        if (seq > upto)
            fwrite(w->relay.line[seq], 1, cut, fp);
        else
            fprintf(fp, "%s\n", w->relay.line[seq]);
    }
    fclose(fp);
}

static void write_local(struct world *w, uint64_t upto)
{
    write_local_cut(w, upto, 0, 0);
}

/* One witness line as rsyslog writes it with RSYSLOG_SyslogProtocol23Format:
 * the shipper's header (PRI from the outcome, the record's time, type as
 * MSGID), SD "-", and the record as MSG. */
static void witness_record(FILE *fp, const struct chain *ch, uint64_t seq)
{
    json_t *rec = json_loads(ch->line[seq], 0, NULL);
    json_int_t outcome;

    assert_non_null(rec);
    outcome = json_integer_value(json_object_get(rec, "outcome"));
    fprintf(fp, "<%d>1 %s vm %s 4242 %s - %s\n", outcome == 0 ? 85 : outcome == 4 ? 84 : 83,
            json_string_value(json_object_get(rec, "time")), ch->app,
            json_string_value(json_object_get(rec, "type")), ch->line[seq]);
    json_decref(rec);
}

/* Lines rsyslog wrote for other traffic (captured from rsyslog 8.2302). */
static const char *const foreign_lines[] = {
    "<13>1 2026-12-05T16:19:15.323040+00:00 vm quietroom-signal - audit.open [timeQuality "
    "tzKnown=\"1\" isSynced=\"0\"] {\"type\":\"x\",\"n\":\"\xc3\xa9\"}",
    "<13>1 2026-12-05T16:17:47+00:00 host3 tag - - -  an rfc3164 line",
    "<invld>1 2026-12-05T16:19:07.901834+00:00 localhost - - - - <999>1 2026-12-05T16:17:47Z h a "
    "p m - pri 999",
    "<13>1 2026-12-05T16:17:47Z h a p m - line1#012line2",
    "<13>1 2026-12-05T16:18:54.427270+00:00 - - - - - ",
};
#define NFOREIGN (sizeof(foreign_lines) / sizeof(foreign_lines[0]))

/* Both daemons' records interleaved, relay up to relay_upto, with other
 * traffic between them. */
static void write_witness_upto(struct world *w, uint64_t relay_upto)
{
    FILE *fp = open_file(w->witness);

    fprintf(fp, "%s\n", foreign_lines[0]);
    for (uint64_t seq = 1; seq <= NREC; seq++) {
        if (seq <= relay_upto)
            witness_record(fp, &w->relay, seq);
        if (seq <= NSIGNAL)
            witness_record(fp, &w->signal, seq);
        if (seq % 10 == 0 && seq / 10 < NFOREIGN)
            fprintf(fp, "%s\n", foreign_lines[seq / 10]);
    }
    fclose(fp);
}

static void write_witness(struct world *w)
{
    write_witness_upto(w, NREC);
}

static struct world *world_new(void)
{
    struct world *w = calloc(1, sizeof(*w));
    static const char *const names[] = {NAME_A, NAME_B, NAME_C};

    assert_non_null(w);
    snprintf(w->dir, sizeof(w->dir), "/tmp/qr-witness-XXXXXX");
    assert_non_null(mkdtemp(w->dir));
    snprintf(w->keys, sizeof(w->keys), "%s/audit.key", w->dir);
    snprintf(w->witness, sizeof(w->witness), "%s/collector.log", w->dir);
    for (size_t i = 0; i < 3; i++) {
        snprintf(w->file[i], sizeof(w->file[i]), "%s/%s", w->dir, names[i]);
        w->paths[i] = w->file[i];
    }
    write_text(w->keys, KEY, strlen(KEY));
    keys_parse(&w->kr, KEY);
    chain_build(&w->relay, "relay-1", "quietroom-relay", NREC, &w->kr);
    chain_build(&w->signal, "signal-1", "quietroom-signal", NSIGNAL, &w->kr);
    return w;
}

static void world_free(struct world *w)
{
    char cmd[128];

    chain_free(&w->relay);
    chain_free(&w->signal);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w->dir);
    if (getenv("QR_KEEP_TEST_DIRS") == NULL && system(cmd) != 0)
        fail_msg("cannot remove %s", w->dir);
    free(w);
}

static void verify3(struct world *w, struct audit_report *local, struct audit_witness_report *r)
{
    assert_int_equal(audit_witness_verify(w->witness, w->paths, 3, &w->kr, local, r), 0);
    assert_true(r->compared);
}

/* --- the line parser --------------------------------------------------------------- */

static bool span_is(struct audit_witness_span s, const char *text)
{
    return s.len == strlen(text) && memcmp(s.p, text, s.len) == 0;
}

/* Lines rsyslog wrote, as written, and what they carry. */
static void test_parse_what_rsyslog_writes(void **state)
{
    static const struct {
        const char *line, *app, *sd, *msg;
    } good[] = {
        {"<85>1 2026-12-05T16:17:47.123Z host1 quietroom-relay 4242 audit.open - {\"seq\":1}",
         "quietroom-relay", "-", "{\"seq\":1}"},
        /* a sender's BOM is kept by rsyslog, skipped here */
        {"<85>1 2026-12-05T16:17:47.123Z host1 quietroom-relay 4242 bom - \xef\xbb\xbf{\"a\":1}",
         "quietroom-relay", "-", "{\"a\":1}"},
        {"<84>1 2026-12-05T16:17:47.123456+02:00 host1 app - - [ex@32473 a=\"x\\\"y\\]z\\\\w\" "
         "b=\"2\"][o@1] hello sd",
         "app", "[ex@32473 a=\"x\\\"y\\]z\\\\w\" b=\"2\"][o@1]", "hello sd"},
        /* empty MSG: rsyslog still writes the SP */
        {"<13>1 2026-12-05T16:17:47Z h a p m - ", "a", "-", ""},
        {"<13>1 2026-12-05T16:18:54.427270+00:00 - - - - - ", "-", "-", ""},
        /* leading spaces of MSG are the sender's */
        {"<13>1 2026-12-05T16:17:47Z h a p m -   two leading spaces", "a", "-",
         "  two leading spaces"},
        /* 8-bit bytes in the header pass through rsyslog */
        {"<13>1 2026-12-05T16:17:47Z h\xc3\xa9st a\xffpp p m - 8bit header", "a\xffpp", "-",
         "8bit header"},
        /* an RFC 3164 frame: empty APP-NAME */
        {"<13>1 2026-12-05T16:21:02.215318+00:00 localhost  - - - 2026-12-05t16:17:47z h", "",
         "-", "2026-12-05t16:17:47z h"},
        {"<13>1 2026-12-05T16:17:47Z h a p m [x@1 a=\"#001ctl\"] ctl in sd", "a",
         "[x@1 a=\"#001ctl\"]", "ctl in sd"},
        {"<13>1 2026-12-05T16:17:47Z h a p m [x@1 a=\"v\"][y@1 b=\"\\x\"] backslash", "a",
         "[x@1 a=\"v\"][y@1 b=\"\\x\"]", "backslash"},
        /* a copy with CRLF line ends */
        {"<13>1 2026-12-05T16:17:47Z h a p m - crlf\r", "a", "-", "crlf"},
        {"<191>1 - h a p m -", "a", "-", ""},
    };
    struct audit_witness_line l;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (audit_witness_parse_line(good[i].line, strlen(good[i].line), &l) != 0)
            fail_msg("refused: %s", good[i].line);
        assert_true(span_is(l.app, good[i].app));
        assert_true(span_is(l.sd, good[i].sd));
        assert_true(span_is(l.msg, good[i].msg));
        assert_int_equal(l.version, 1);
    }
    assert_int_equal(audit_witness_parse_line(good[0].line, strlen(good[0].line), &l), 0);
    assert_int_equal(l.pri, 85);
    assert_true(span_is(l.time, "2026-12-05T16:17:47.123Z"));
    assert_true(span_is(l.host, "host1"));
    assert_true(span_is(l.procid, "4242"));
    assert_true(span_is(l.msgid, "audit.open"));
}

static void test_parse_refuses(void **state)
{
    static const char *const bad[] = {
        "",
        "garbage without pri",
        "<invld>1 2026-12-05T16:19:07.901834+00:00 localhost - - - - <999>1",
        "<192>1 2026-12-05T16:17:47Z h a p m - pri too big",
        "<1234>1 2026-12-05T16:17:47Z h a p m - pri too long",
        "<13>0 2026-12-05T16:17:47Z h a p m - version 0",
        "<13> 2026-12-05T16:17:47Z h a p m - no version",
        "<13>1 2026-12-05t16:17:47z h a p m - lower-case t",
        "<13>1 2026-12-05T16:17:47. h a p m - empty fraction",
        "<13>1 2026-12-05T16:17:47+0200 h a p m - offset without colon",
        "<13>1 Dec  5 16:17:47 host3 tag: rfc3164",
        "<13>1 2026-12-05T16:17:47Z h a p m",
        "<13>1 2026-12-05T16:17:47Z h a p",
        "<13>1 2026-12-05T16:17:47Z h a p m -x",
        "<13>1 2026-12-05T16:17:47Z h a p m [bad sd no clos e",
        "<13>1 2026-12-05T16:17:47Z h a p m [x@1 a=\"v\"]nospac e",
        "<13>1 2026-12-05T16:17:47Z h a p m [x@1 a=\"v] unterminated value",
        "<13>1 2026-12-05T16:17:47Z h a p m [x@1 a=v] unquoted",
        "<13>1 2026-12-05T16:17:47Z h a p m [] empty id",
        "<13>1 2026-12-05T16:17:47Z h a p m [x@1 a=\"v\"",
        "<13>1 2026-12-05T16:17:47Z h\ta p m - tab in a field",
        "<13>1 2026-12-05T16:17:47Z h a\x7f p m - DEL in a field",
    };
    static const char cut[] = "<85>1 2026-12-05T16:17:47.123Z host1 quietroom-relay 4242 "
                              "audit.open - {}";
    struct audit_witness_line l;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (audit_witness_parse_line(bad[i], strlen(bad[i]), &l) == 0)
            fail_msg("accepted: %s", bad[i]);
    }
    /* Every prefix of a good line short of its SD is refused, and none is
     * read past its end (exact-size copies, for ASan). */
    for (size_t len = 0; len <= strlen(cut) - 4; len++) {
        char *copy = malloc(len ? len : 1);

        memcpy(copy, cut, len);
        assert_int_equal(audit_witness_parse_line(copy, len, &l), -1);
        free(copy);
    }
    assert_int_equal(audit_witness_parse_line(cut, strlen(cut) - 3, &l), 0);
}

/* --- the check ----------------------------------------------------------------------- */

static void test_intact_with_both_daemons_and_noise(void **state)
{
    struct world *w = world_new();
    struct audit_witness_report r;
    struct audit_report local;

    (void)state;
    write_local(w, NREC);
    write_witness(w);
    verify3(w, &local, &r);
    assert_int_equal(local.problem, AUDIT_OK);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_string_equal(r.node, "relay-1");
    assert_int_equal(r.matched, NREC);
    assert_int_equal(r.matched_lo, 1);
    assert_int_equal(r.matched_hi, NREC);
    assert_int_equal(r.other_nodes, NSIGNAL);
    assert_int_equal(r.foreign, NFOREIGN);
    assert_int_equal(r.lines, NREC + NSIGNAL + NFOREIGN);
    assert_int_equal(r.duplicates + r.unverified + r.older + r.purged, 0);
    assert_int_equal(r.truncated.count + r.edited.count + r.deleted.count, 0);
    world_free(w);
}

/* Whole records cut off the end: the chain alone is intact. */
static void test_cut_records_are_truncated(void **state)
{
    struct world *w = world_new();
    struct audit_witness_report r;
    struct audit_report local;

    (void)state;
    write_local(w, CUT);
    write_witness(w);
    assert_int_equal(audit_verify_files(w->paths, 3, &w->kr, &local), 0);
    assert_int_equal(local.problem, AUDIT_OK);
    verify3(w, &local, &r);
    assert_int_equal(local.problem, AUDIT_OK);
    assert_int_equal(r.problem, AUDIT_TRUNCATED);
    assert_int_equal(r.truncated.count, NREC - CUT);
    assert_int_equal(r.truncated.seq, CUT + 1);
    assert_int_equal(r.truncated.seq_hi, NREC);
    assert_non_null(strstr(r.why, "ends at seq 41"));
    assert_non_null(strstr(r.why, "seq 42-44"));
    assert_int_equal(r.matched, CUT);
    world_free(w);
}

/* Half a line cut at the end reads as a crash's torn line; the witness
 * holding that record makes it truncated. A witness that has not got it
 * (shipping behind) leaves it torn. */
static void test_half_line_cut_is_truncated_not_torn(void **state)
{
    struct world *w = world_new();
    struct audit_witness_report r;
    struct audit_report local;

    (void)state;
    write_local_cut(w, CUT, 0, 40);
    assert_int_equal(audit_verify_files(w->paths, 3, &w->kr, &local), 0);
    assert_int_equal(local.problem, AUDIT_TORN);
    write_witness(w);
    verify3(w, &local, &r);
    assert_int_equal(local.problem, AUDIT_TORN);
    assert_int_equal(r.problem, AUDIT_TRUNCATED);
    assert_int_equal(r.truncated.seq, CUT + 1);
    assert_int_equal(r.truncated.seq_hi, NREC);
    write_witness_upto(w, CUT);
    verify3(w, &local, &r);
    assert_int_equal(local.problem, AUDIT_TORN);
    assert_int_equal(r.problem, AUDIT_OK);
    world_free(w);
}

/* Rewritten and sealed again with the key: intact alone, edited against
 * the witness, from the first record that differs. */
static void test_resealed_chain_differs(void **state)
{
    struct world *w = world_new();
    struct audit_witness_report r;
    struct audit_report local;

    (void)state;
    write_witness(w);
    chain_reseal_from(&w->relay, 30, &w->kr);
    write_local(w, NREC);
    verify3(w, &local, &r);
    assert_int_equal(local.problem, AUDIT_OK);
    assert_int_equal(r.problem, AUDIT_EDITED);
    assert_int_equal(r.edited.seq, 30);
    assert_int_equal(r.edited.seq_hi, NREC);
    assert_int_equal(r.edited.count, NREC - 30 + 1);
    assert_int_equal(r.matched, 29);
    assert_non_null(strstr(r.why, "seq 30 "));
    world_free(w);
}

static void test_deleted_inside_the_range(void **state)
{
    struct world *w = world_new();
    struct audit_witness_report r;
    struct audit_report local;

    (void)state;
    write_local_cut(w, NREC, 33, 0);
    write_witness(w);
    verify3(w, &local, &r);
    assert_int_equal(local.problem, AUDIT_DELETED);
    assert_int_equal(r.problem, AUDIT_DELETED);
    assert_int_equal(r.deleted.count, 1);
    assert_int_equal(r.deleted.seq, 33);
    assert_non_null(strstr(r.why, "seq 33 "));
    world_free(w);
}

/* Only the active file given: the witness's earlier records are older,
 * reported, not checked. */
static void test_older_records_are_counted(void **state)
{
    struct world *w = world_new();
    struct audit_witness_report r;
    struct audit_report local;

    (void)state;
    write_local(w, NREC);
    write_witness(w);
    assert_int_equal(audit_witness_verify(w->witness, &w->paths[2], 1, &w->kr, &local, &r), 0);
    assert_int_equal(local.problem, AUDIT_OK);
    assert_int_equal(local.first_seq, 21);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_int_equal(r.older, 20);
    assert_int_equal(r.matched, NREC - 20);
    world_free(w);
}

/* File B purged (the audit.purge at seq 22 vouches): its records in the
 * witness are neither deleted nor checked. */
static void test_purged_stretch_is_not_deleted(void **state)
{
    struct world *w = world_new();
    struct audit_witness_report r;
    struct audit_report local;
    const char *paths[] = {w->paths[0], w->paths[2]};

    (void)state;
    write_local(w, NREC);
    write_witness(w);
    assert_int_equal(audit_witness_verify(w->witness, paths, 2, &w->kr, &local, &r), 0);
    assert_int_equal(local.problem, AUDIT_OK);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_int_equal(r.purged, 10);
    assert_int_equal(r.matched, NREC - 10);
    world_free(w);
}

/* A collector that got records again after a reconnect. */
static void test_duplicates_are_accepted(void **state)
{
    struct world *w = world_new();
    struct audit_witness_report r;
    struct audit_report local;
    FILE *fp;

    (void)state;
    write_local(w, NREC);
    write_witness(w);
    fp = fopen(w->witness, "a");
    for (uint64_t seq = 35; seq <= NREC; seq++)
        witness_record(fp, &w->relay, seq);
    witness_record(fp, &w->relay, 1);
    witness_record(fp, &w->signal, 2);
    fclose(fp);
    verify3(w, &local, &r);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_int_equal(r.duplicates, NREC - 35 + 1 + 1);
    assert_int_equal(r.matched, NREC);
    assert_int_equal(r.other_nodes, NSIGNAL + 1);
    world_free(w);
}

/* The other daemon's records and other syslog traffic are ignored but
 * counted, whatever their seqs. */
static void test_other_node_and_foreign_lines_ignored(void **state)
{
    struct world *w = world_new();
    struct audit_witness_report r;
    struct audit_report local;
    FILE *fp;

    (void)state;
    chain_build(&w->signal, "signal-1", "quietroom-signal", NREC, &w->kr);
    chain_reseal_from(&w->signal, 5, &w->kr);
    write_local(w, 25);
    fp = open_file(w->witness);
    for (uint64_t seq = 1; seq <= NREC; seq++)
        witness_record(fp, &w->signal, seq);
    for (size_t i = 0; i < NFOREIGN; i++)
        fprintf(fp, "%s\n", foreign_lines[i]);
    fclose(fp);
    verify3(w, &local, &r);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_int_equal(r.other_nodes, NREC);
    assert_int_equal(r.foreign, NFOREIGN);
    assert_int_equal(r.matched, 0);
    world_free(w);
}

/* Lines whose seal fails under the key file are not trusted: a forged
 * record beyond the end, an edited copy, another key, an unknown key id. */
static void test_forged_lines_are_not_trusted(void **state)
{
    struct world *w = world_new();
    struct audit_witness_report r;
    struct audit_report local;
    struct keyring other, two;
    struct chain forged = {0}, second = {0};
    char *edited;
    FILE *fp;

    (void)state;
    keys_parse(&other, OTHER);
    keys_parse(&two, KEY_AND_2);
    chain_build(&forged, "relay-1", "quietroom-relay", NREC, &other);
    second.node = "relay-1";
    second.n = NREC;
    seal(&second, 1, ev_for(&second, 1), keyring_find(&two, 2));
    write_local(w, CUT);
    write_witness_upto(w, CUT);
    edited = strdup(w->relay.line[12]);
    memcpy(strstr(edited, "\"outcome\":0"), "\"outcome\":8", 11);
    fp = fopen(w->witness, "a");
    witness_record(fp, &forged, CUT + 1);
    witness_record(fp, &forged, 12);
    fprintf(fp, "<85>1 2026-12-05T16:17:47.123Z vm quietroom-relay 4242 x - %s\n", edited);
    fprintf(fp, "<85>1 2026-12-05T16:17:47.123Z vm quietroom-relay 4242 x - %s\n",
            second.line[1]);
    fclose(fp);
    verify3(w, &local, &r);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_int_equal(r.unverified, 4);
    assert_int_equal(r.matched, CUT);
    free(edited);
    chain_free(&forged);
    chain_free(&second);
    world_free(w);
}

/* Bytes a network peer may have sent: nothing crashes, nothing counts. */
static void test_garbage_witness(void **state)
{
    struct world *w = world_new();
    struct audit_witness_report r;
    struct audit_report local;
    static const char head[] = "<13>1 2026-12-05T16:17:47Z h a p m - {\"a\":\"";
    size_t big = 1024 * 1024 + 100;
    char *text = malloc(big + 64);
    FILE *fp;

    (void)state;
    write_local(w, NREC);
    fp = open_file(w->witness);
    memcpy(text, head, strlen(head));
    memset(text + strlen(head), 'x', big - strlen(head));
    fwrite(text, 1, big, fp);
    fputc('\n', fp);
    fwrite("\0\0\0\n\n\xff\xfe<13>1 \n", 1, 14, fp);
    fprintf(fp, "<85>1 2026-12-05T16:17:47Z vm a 1 m - %.60s\n", w->relay.line[3]);
    fprintf(fp, "<85>1 2026-12-05T16:17:47Z vm a 1 m - %s", w->relay.line[NREC]);
    fclose(fp);
    verify3(w, &local, &r);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_int_equal(r.lines, 6);
    assert_int_equal(r.foreign, 5);
    assert_int_equal(r.matched, 1); /* the last line, complete but for its '\n' */
    free(text);
    world_free(w);
}

static void test_unreadable_sides(void **state)
{
    struct world *w = world_new();
    struct audit_witness_report r;
    struct audit_report local;
    const char *missing[] = {"/nonexistent/audit.jsonl"};

    (void)state;
    write_local(w, NREC);
    assert_int_equal(audit_witness_verify(w->file[0], w->paths, 3, &w->kr, &local, &r), 0);
    assert_int_equal(r.lines, 10); /* a local file as witness: no syslog line */
    assert_int_equal(r.foreign, 10);
    unlink(w->witness);
    assert_int_equal(audit_witness_verify(w->witness, w->paths, 3, &w->kr, &local, &r), 0);
    assert_int_equal(r.problem, AUDIT_UNREADABLE);
    assert_false(r.compared);
    assert_int_equal(local.problem, AUDIT_OK);
    assert_int_equal(local.records, NREC);
    assert_int_equal(audit_witness_verify(w->dir, w->paths, 3, &w->kr, &local, &r), 0);
    assert_int_equal(r.problem, AUDIT_UNREADABLE);
    write_witness(w);
    assert_int_equal(audit_witness_verify(w->witness, missing, 1, &w->kr, &local, &r), 0);
    assert_int_equal(local.problem, AUDIT_UNREADABLE);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_false(r.compared);
    assert_int_equal(audit_witness_verify(NULL, w->paths, 3, &w->kr, &local, &r), -1);
    assert_int_equal(audit_witness_verify(w->witness, w->paths, 0, &w->kr, &local, &r), -1);
    assert_non_null(strstr(r.why, "no files"));
    world_free(w);
}

/* Emptied local files cannot say whose records to check: whatever the
 * witness holds was cut. */
static void test_empty_local_chain(void **state)
{
    struct world *w = world_new();
    struct audit_witness_report r;
    struct audit_report local;

    (void)state;
    write_text(w->file[2], "", 0);
    write_witness(w);
    assert_int_equal(audit_witness_verify(w->witness, &w->paths[2], 1, &w->kr, &local, &r), 0);
    assert_int_equal(local.problem, AUDIT_OK);
    assert_int_equal(r.problem, AUDIT_TRUNCATED);
    assert_int_equal(r.truncated.count, NREC + NSIGNAL);
    assert_non_null(strstr(r.why, "no record"));
    world_free(w);
}

/* A witness naming more nodes than are tracked is refused, not half read. */
static void test_too_many_nodes(void **state)
{
    struct world *w = world_new();
    struct audit_witness_report r;
    struct audit_report local;
    struct hmac *h = hmac_new(HMAC_SHA256);
    char mac[AUDIT_MAC_B64], node[32];
    FILE *fp;

    (void)state;
    write_local(w, NREC);
    fp = open_file(w->witness);
    for (int i = 0; i <= AUDIT_WITNESS_NODES_MAX; i++) {
        json_t *ev = json_pack("{s:s,s:s,s:i}", "type", "audit.open", "action", "E", "outcome", 0);
        size_t len;
        char *line;

        snprintf(node, sizeof(node), "node-%d", i);
        json_object_set_new(ev, "node", json_string(node));
        line = audit_record_seal(ev, 1, keyring_active(&w->kr), AUDIT_GENESIS, h, mac, &len);
        assert_non_null(line);
        fprintf(fp, "<85>1 2026-12-05T16:17:47.123Z vm a 1 audit.open - %s", line);
        free(line);
        json_decref(ev);
    }
    fclose(fp);
    hmac_free(h);
    assert_int_equal(audit_witness_verify(w->witness, w->paths, 3, &w->kr, &local, &r), -1);
    assert_non_null(strstr(r.why, "more than 4096 nodes"));
    world_free(w);
}

/* The real writer's file, and a witness built from its lines. */
static void test_real_writer(void **state)
{
    struct world *w = world_new();
    struct audit_config cfg = {.path = w->file[2], .node = "relay-9", .keys = &w->kr};
    struct audit_witness_report r;
    struct audit_report local;
    struct audit_log *log;
    char err[256], *line = NULL;
    size_t cap = 0;
    ssize_t len;
    FILE *in, *out;

    (void)state;
    log = audit_open(&cfg, err, sizeof(err));
    assert_non_null(log);
    for (int i = 0; i < 5; i++)
        assert_int_equal(audit_emit(log, audit_event("leg.up", 'C', AUDIT_SUCCESS)), 0);
    audit_close(log);
    in = fopen(w->file[2], "r");
    out = open_file(w->witness);
    assert_non_null(in);
    while ((len = getline(&line, &cap, in)) > 0)
        fprintf(out, "<85>1 2026-12-05T16:17:47.123Z vm quietroom-relay 99 x - %s", line);
    fclose(in);
    fclose(out);
    free(line);
    assert_int_equal(audit_witness_verify(w->witness, &w->paths[2], 1, &w->kr, &local, &r), 0);
    assert_int_equal(local.problem, AUDIT_OK);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_string_equal(r.node, "relay-9");
    assert_int_equal(r.matched, local.records);
    assert_true(r.matched >= 7); /* audit.open, five events, audit.close */
    world_free(w);
}

/* --- through the CLI ----------------------------------------------------------------- */

/* Runs quietroomctl audit verify; stdout and stderr together in out. */
static int ctl(struct world *w, bool witness, char *out, size_t outlen)
{
    char path[200];
    int fd, status;
    ssize_t n;
    pid_t pid;

    snprintf(path, sizeof(path), "%s/ctl.out", w->dir);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        if (o < 0 || dup2(o, 1) < 0 || dup2(o, 2) < 0)
            _exit(127);
        if (witness)
            execl(QR_CTL_BIN, QR_CTL_BIN, "audit", "verify", "--key-file", w->keys, "--witness",
                  w->witness, w->file[2], w->file[0], w->file[1], (char *)NULL);
        else
            execl(QR_CTL_BIN, QR_CTL_BIN, "audit", "verify", "--key-file", w->keys, w->file[2],
                  w->file[0], w->file[1], (char *)NULL);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    n = read(fd, out, outlen - 1);
    assert_true(n >= 0);
    out[n] = '\0';
    close(fd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void test_cli_exit_codes(void **state)
{
    struct world *w = world_new();
    char out[8192];

    (void)state;
    write_local(w, NREC);
    write_witness(w);
    assert_int_equal(ctl(w, true, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "44 present and identical here (seq 1-44)"));
    write_local(w, CUT);
    assert_int_equal(ctl(w, false, out, sizeof(out)), 0);
    assert_int_equal(ctl(w, true, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "truncated"));
    assert_non_null(strstr(out, "42"));
    assert_non_null(strstr(out, "44"));
    write_local_cut(w, CUT, 0, 40);
    assert_int_equal(ctl(w, false, out, sizeof(out)), 3);
    assert_int_equal(ctl(w, true, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "seq 42-44 were cut"));
    unlink(w->witness);
    assert_int_equal(ctl(w, true, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "unreadable"));
    world_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_what_rsyslog_writes),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_intact_with_both_daemons_and_noise),
        cmocka_unit_test(test_cut_records_are_truncated),
        cmocka_unit_test(test_half_line_cut_is_truncated_not_torn),
        cmocka_unit_test(test_resealed_chain_differs),
        cmocka_unit_test(test_deleted_inside_the_range),
        cmocka_unit_test(test_older_records_are_counted),
        cmocka_unit_test(test_purged_stretch_is_not_deleted),
        cmocka_unit_test(test_duplicates_are_accepted),
        cmocka_unit_test(test_other_node_and_foreign_lines_ignored),
        cmocka_unit_test(test_forged_lines_are_not_trusted),
        cmocka_unit_test(test_garbage_witness),
        cmocka_unit_test(test_unreadable_sides),
        cmocka_unit_test(test_empty_local_chain),
        cmocka_unit_test(test_too_many_nodes),
        cmocka_unit_test(test_real_writer),
        cmocka_unit_test(test_cli_exit_codes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
