/* Verifying an audit log: the active file and its rotated files, given in
 * any order, checked as one chain. Names the first line that breaks it and
 * why, telling tampering (edited, deleted, reordered, inserted, truncated)
 * from what a crash leaves behind (a torn line) and from a missing file. */
#ifndef QUIETROOM_AUDIT_VERIFY_H
#define QUIETROOM_AUDIT_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "quietroom/base/keyring.h"

enum audit_problem {
    AUDIT_OK = 0,
    AUDIT_TORN,        /* only crash remnants: torn lines, recovered or at the very end */
    AUDIT_EDITED,      /* content changed after sealing: the seal fails, the link holds */
    AUDIT_DELETED,     /* sealed records missing inside a file */
    AUDIT_REORDERED,   /* sealed records out of order */
    AUDIT_INSERTED,    /* a line that does not belong: forged, unsealed or copied */
    AUDIT_TRUNCATED,   /* the end of a rotated file cut off, or a garbage line */
    AUDIT_WRONG_KEY,   /* nothing sealed under this key id verifies: another key */
    AUDIT_UNKNOWN_KEY, /* sealed under a key id the key file lacks */
    AUDIT_GAP,         /* a file of the chain (or the chain's beginning) is missing */
    AUDIT_UNREADABLE,  /* a file could not be read */
};

#define AUDIT_REPORT_WHY 256

/* The verdict. file points to one of the caller's paths. */
struct audit_report {
    enum audit_problem problem;   /* the first problem in chain order */
    const char *file;             /* where; NULL when AUDIT_OK */
    uint64_t line;                /* 1-based in file; the line after its last for a cut end */
    uint64_t seq;                 /* the seq the line claims, 0 if none */
    char why[AUDIT_REPORT_WHY];   /* never holds key material */
    /* Not failures, reported for the operator: */
    size_t files;                 /* distinct files read */
    uint64_t records;             /* sealed records accepted into the chain */
    uint64_t first_seq, last_seq; /* of the accepted records */
    unsigned torn;                /* torn lines left by crashes */
    bool clean;                   /* the chain ends with "audit.close" (a clean stop) */
};

/* "ok", "torn", "edited", "deleted", ... */
const char *audit_problem_code(enum audit_problem p);

/* False for AUDIT_OK and AUDIT_TORN: crash remnants are not tampering. */
bool audit_problem_is_failure(enum audit_problem p);

/* Called once for each record accepted into the chain, in chain order, after
 * the file holding it was checked (so possibly before a later file turns out
 * to break the chain: the caller decides once the verdict is in). rec is
 * borrowed for the call. A non-zero return stops the walk. */
typedef int (*audit_verify_fn)(json_t *rec, const char *file, uint64_t line, void *arg);

/* Checks every line of the n files in paths against kr: each seal, seq
 * continuity and each prev against the line before, across files ordered by
 * their first record. Returns 0 with the verdict in out (which may name a
 * problem), or -1 when the check could not run (no files, out of memory, a
 * file changed under the walk, fn stopped it), with out->why set. */
int audit_verify_walk(const char *const *paths, size_t n, const struct keyring *kr,
                      audit_verify_fn fn, void *arg, struct audit_report *out);

/* audit_verify_walk without a callback. */
int audit_verify_files(const char *const *paths, size_t n, const struct keyring *kr,
                       struct audit_report *out);

#endif
