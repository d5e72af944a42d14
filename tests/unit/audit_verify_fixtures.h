/* Shared by test_audit_verify.c and test_audit_verify_files.c: a realistic
 * log of three files (rotation links, a key rotation, a crash recovered)
 * built with audit_record_seal as the writer would, written to a temporary
 * directory and verified. */
#ifndef QR_TEST_AUDIT_VERIFY_FIXTURES_H
#define QR_TEST_AUDIT_VERIFY_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#define BOTH "1 " KEY1 "\n2 " KEY2 "\n"

void keys_load(struct keyring *kr, const char *text);
struct tlog *build(enum crash how, bool purge);
/* Writes the files that are not absent; paths in chain order. */
void write_log(struct tlog *log);
void free_log(struct tlog *log);
struct audit_report verify_with(struct tlog *log, const char *keys);
/* Deletes line no (1-based) of f. */
void t_delete(struct tfile *f, size_t no);
/* The active file's last line deleted: audit.close lost. */
void delete_close(struct tlog *log);

#endif
