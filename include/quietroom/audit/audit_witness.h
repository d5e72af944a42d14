/* Checking a local audit chain against a witness: the copy a syslog
 * collector keeps of the records the daemons ship to it, written by rsyslog
 * with its RFC 5424 file template (RSYSLOG_SyslogProtocol23Format), one
 * message a line, both daemons' records and other syslog traffic mixed.
 * A chain alone cannot show records cut off its end; the witness's records
 * beyond the local end name them. */
#ifndef QUIETROOM_AUDIT_WITNESS_H
#define QUIETROOM_AUDIT_WITNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quietroom/audit/audit_verify.h"
#include "quietroom/base/keyring.h"

/* Distinct nodes a witness may name; more is refused rather than tracked
 * without bound. */
#define AUDIT_WITNESS_NODES_MAX 4096
/* Room for the node name the report prints (longer names are cut). */
#define AUDIT_WITNESS_NODE_LEN 128

/* Bytes of one line; points into the caller's buffer, not NUL-terminated. */
struct audit_witness_span {
    const char *p;
    size_t len;
};

/* One witness line split into its RFC 5424 parts. */
struct audit_witness_line {
    unsigned pri;                          /* 0..191 */
    unsigned version;                      /* 1 from rsyslog's template */
    struct audit_witness_span time;        /* RFC 3339, or "-" */
    struct audit_witness_span host, app, procid, msgid; /* "-" when nil; may be empty */
    struct audit_witness_span sd;          /* "-" or the elements, escapes as written */
    struct audit_witness_span msg;         /* the rest, a leading UTF-8 BOM skipped */
};

/* Parses one line of len bytes (without its '\n'; a trailing '\r' is
 * ignored). Returns 0, or -1 when it is not an RFC 5424 line. Pure: no
 * allocation, any bytes accepted as input. */
int audit_witness_parse_line(const char *buf, size_t len, struct audit_witness_line *out);

/* One kind of disagreement between the witness and the local chain. */
struct audit_witness_finding {
    uint64_t count;            /* distinct witness records of this kind */
    uint64_t seq, seq_hi;      /* the lowest and highest seq of them */
    uint64_t line;             /* witness line of the lowest */
    char why[AUDIT_REPORT_WHY];
};

struct audit_witness_report {
    enum audit_problem problem;    /* AUDIT_OK, or the finding of the lowest seq, or
                                      AUDIT_UNREADABLE */
    const char *file;              /* the caller's witness path */
    char why[AUDIT_REPORT_WHY];    /* of problem */
    bool compared;                 /* false when either side could not be read */
    char node[AUDIT_WITNESS_NODE_LEN]; /* the local chain's node; "" if it has no record */
    /* Failures: */
    struct audit_witness_finding truncated; /* beyond the local end (AUDIT_TRUNCATED) */
    struct audit_witness_finding edited;    /* local record of that seq differs (AUDIT_EDITED) */
    struct audit_witness_finding deleted;   /* inside the local range, absent (AUDIT_DELETED) */
    /* Not failures, reported for the operator: */
    uint64_t lines;                /* lines read */
    uint64_t matched;              /* distinct records of the node, present and identical */
    uint64_t matched_lo, matched_hi;
    uint64_t duplicates;           /* further byte-identical copies of a record */
    uint64_t other_nodes;          /* records of other nodes (the other daemon's) */
    uint64_t older;                /* before the local chain's first seq (files not given) */
    uint64_t purged;               /* in a stretch the local audit.purge records vouch for */
    uint64_t foreign;              /* lines that are no syslog line or carry no record */
    uint64_t unverified;           /* records whose seal fails under the key file: not trusted */
};

/* Reads the witness first (so that records the daemon writes meanwhile are
 * ahead locally, not missing), then verifies the n local files as
 * audit_verify_files does into local, then checks every witness record of
 * the local chain's node against it: present and identical. Returns 0 with
 * both verdicts, or -1 when the check could not run, with the reason in
 * out->why. */
int audit_witness_verify(const char *witness, const char *const *paths, size_t n,
                         const struct keyring *kr, struct audit_report *local,
                         struct audit_witness_report *out);

#endif
