/* Audit chain verification: a realistic log of three files (rotation links,
 * a key rotation, a crash recovered) is built with audit_record_seal (see
 * audit_verify_fixtures.c), then tampered with in every way the table below
 * lists; each tamper must be named, with the file and line it is at. The
 * checks beyond the table (files in any order, the walk, torn tails, every
 * byte flipped, cuts anywhere) are in test_audit_verify_files.c. */
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

/* --- tampering, by line (1-based) --------------------------------------------- */

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

static void torn_resized(struct tlog *log)
{
    t_edit(&log->f[FB], 3, "{\"type\"", "{\"type\"  ");
}

static void nothing(struct tlog *log)
{
    (void)log;
}

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

int main(void)
{
    struct CMUnitTest tests[N_TAMPERS];

    for (size_t i = 0; i < N_TAMPERS; i++)
        tests[i] = (struct CMUnitTest){.name = tampers[i].name, .test_func = test_tamper,
                                       .initial_state = (void *)&tampers[i]};
    return _cmocka_run_group_tests("audit_verify", tests, N_TAMPERS, NULL, NULL);
}
