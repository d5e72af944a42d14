/* What the parts of the audit verifier share: audit_verify.c (the walk over
 * the files), audit_verify_line.c (reading and judging one line),
 * audit_verify_order.c (finding the files' chain order),
 * audit_verify_chain.c (each line against the chain) and
 * audit_verify_report.c (problems and the verdict). Not part of the public
 * interface. */
#ifndef QUIETROOM_AUDIT_VERIFY_INTERNAL_H
#define QUIETROOM_AUDIT_VERIFY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "quietroom/audit/audit_json.h"
#include "quietroom/audit/audit_record.h"
#include "quietroom/audit/audit_verify.h"
#include "quietroom/base/hmac.h"
#include "quietroom/base/keyring.h"

/* "seq 7" or "seq 7-9" in buf (the verifier's and the witness check's
 * wording of a stretch). */
const char *audit_verify__range(char *buf, size_t len, uint64_t lo, uint64_t hi);

/* Longer lines are never records; they are measured, not parsed. */
#define AV_LINE_MAX AUDIT_JSON_LINE_MAX
#define AV_STAMP_LEN 16 /* "YYYYMMDDTHHMMSSZ" */

enum av_kind { AV_EVENT, AV_OPEN, AV_CLOSE, AV_RECOVERED, AV_PURGE };

/* What one line says, without its text. */
struct av_line {
    uint64_t no;                 /* 1-based */
    uint64_t seq;                /* claimed; 0 if unreadable */
    uint64_t torn_bytes;         /* of an audit.recovered */
    size_t len;                  /* without the '\n' */
    enum audit_line_status st;
    int kid;
    enum av_kind kind;
    bool unterminated;           /* no '\n' after it */
    bool fragment;               /* not JSON, but could be the start of a record */
    bool tail_mac;               /* not JSON, yet its mac member survived */
    bool accepted;
    char prev[AUDIT_MAC_B64];
    char mac[AUDIT_MAC_B64];
};

struct av_file {
    const char *path;            /* the caller's */
    const char *base;            /* points into path */
    dev_t dev;
    ino_t ino;
    uint64_t order_seq;          /* first seq found at its head; UINT64_MAX if none */
    char stamp[AV_STAMP_LEN + 1];/* rotation stamp; "" for the active file */
    char *open_prev;             /* previous_file of a leading audit.open; owned */
    bool has_head;
    struct av_line head;         /* its first line, for look-ahead across files */
    /* Set once the file is checked: */
    uint64_t nlines;
    bool ends_close;             /* its last sealed record is audit.close */
    /* While it is checked (owned): */
    struct av_line *lines;
    size_t n, cap;
};

struct av_event {
    enum audit_problem p;
    size_t fi;
    uint64_t line, seq, ord;
    int kid;
    bool bad_mac;
    char why[AUDIT_REPORT_WHY];
};

/* A stretch of seqs missing at the start or between files. */
struct av_gap {
    struct av_event ev;
    uint64_t lo, hi;             /* lo 0: unknown (the chain's beginning) */
    char prev[AUDIT_MAC_B64];    /* of the record after the stretch */
};

struct av_purge {
    uint64_t first, last;
    char last_mac[AUDIT_MAC_B64];
};

struct av_ctx {
    const struct keyring *kr;
    struct hmac *h;
    struct av_file *files;       /* owned, chain order */
    size_t nfiles;
    /* The chain so far: */
    bool started;
    uint64_t seq;
    char mac[AUDIT_MAC_B64];
    enum av_kind last_kind;
    /* Verdict: */
    uint64_t ord;
    bool failed;
    struct av_event fail;
    struct av_event torn;
    struct av_gap *gaps;         /* owned */
    size_t ngaps;
    struct av_purge *purges;     /* owned */
    size_t npurges, cap_purges;
    uint64_t ok_lines, bad_mac_lines;
    struct av_event first_bad_mac;
    uint32_t kid_ok[256], kid_bad[256];
    struct audit_report *out;
};

struct av_buf {
    char *data;                  /* owned */
    size_t cap;
};
/* --- audit_verify_line.c ------------------------------------------------------- */

/* Reads one line into b (NUL-terminated; text beyond AV_LINE_MAX is dropped
 * but counted in *len). Returns 1, 0 at end of file, -1 out of memory. */
int audit_verify__getline(FILE *fp, struct av_buf *b, size_t *len, bool *nl);

/* The text of the line just read ("" for an empty first line). */
const char *audit_verify__text(const struct av_buf *b);

/* Judges one line's text into l. With collect, sealed purge records are
 * kept and per-key counts taken (the main pass); open_prev (if given) gets
 * the previous_file of an audit.open. Returns -1 only when out of memory. */
int audit_verify__parse(struct av_ctx *c, const char *text, size_t len, struct av_line *l,
                        bool collect, char **open_prev);

/* --- audit_verify_order.c ------------------------------------------------------ */

/* Opens every path, drops duplicates (the same file twice), reads heads
 * and puts c->files in chain order. Returns 1 when a file is unreadable
 * (verdict set), -1 out of memory. */
int audit_verify__collect(struct av_ctx *c, const char *const *paths, size_t n,
                          struct av_buf *b);

/* --- audit_verify_chain.c ------------------------------------------------------ */

/* Judges line i of file fi (loaded) against the chain so far, recording the
 * first failure. Returns -1 only when out of memory. */
int audit_verify__check(struct av_ctx *c, size_t fi, size_t i);

/* After the first failure: keep every sealed record that moves forward, so
 * that a forced export still has them. */
void audit_verify__resync(struct av_ctx *c, struct av_line *l);

/* --- audit_verify_report.c ----------------------------------------------------- */

/* The verdict for a file that cannot be read. */
void audit_verify__unreadable(struct av_ctx *c, const char *path, const char *what);

/* Records the first failure; the walk goes on in resync mode. */
void audit_verify__fail(struct av_ctx *c, enum audit_problem p, size_t fi,
                        const struct av_line *l, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Counts a torn line, keeping the first for the verdict. */
void audit_verify__torn(struct av_ctx *c, size_t fi, const struct av_line *l, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

/* A missing stretch lo..l->seq - 1 ending just before l: a failure unless a
 * purge record vouches for it by the end. Returns -1 out of memory. */
int audit_verify__gap(struct av_ctx *c, size_t fi, const struct av_line *l, uint64_t lo,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Writes the verdict into c->out once every file is checked. */
void audit_verify__report(struct av_ctx *c);

#endif
