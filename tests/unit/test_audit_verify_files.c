/* Audit chain verification beyond the tamper table (test_audit_verify.c),
 * on the same realistic log of three files (audit_verify_fixtures.c): the
 * counts of an intact log, a still-open log, files in any order and twice,
 * an unreadable file, the walk in chain order, every flipped byte a failure,
 * the active and a rotated file cut anywhere, and the problem codes. */
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

static struct audit_report verify(struct tlog *log)
{
    return verify_with(log, "2 " KEY2 "\n1 " KEY1 "\n");
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
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_of_an_intact_log),
        cmocka_unit_test(test_still_open_log_is_not_clean),
        cmocka_unit_test(test_any_order_and_duplicates),
        cmocka_unit_test(test_unreadable_file),
        cmocka_unit_test(test_walk_delivers_chain_order),
        cmocka_unit_test(test_every_flipped_byte_fails),
        cmocka_unit_test(test_cut_anywhere),
        cmocka_unit_test(test_problem_codes),
    };

    return cmocka_run_group_tests_name("audit_verify_files", tests, NULL, NULL);
}
