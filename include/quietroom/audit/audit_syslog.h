/* One audit record as a syslog message (RFC 5424) in the octet-counted
 * framing of syslog over TLS (RFC 5425, section 4.3):
 *
 *   MSGLEN SP <PRI>1 SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP
 * - SP MSG
 *
 * MSG is the sealed line itself (without its '\n'), so the collector's copy
 * verifies with the same key. No I/O here. */
#ifndef QUIETROOM_AUDIT_SYSLOG_H
#define QUIETROOM_AUDIT_SYSLOG_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5424 field limits (section 6). */
#define AUDIT_SYSLOG_HOSTNAME_MAX 255
#define AUDIT_SYSLOG_APPNAME_MAX 48
#define AUDIT_SYSLOG_MSGID_MAX 32
/* "2026-12-05T16:22:18.772123+00:00" and a little room. */
#define AUDIT_SYSLOG_TIMESTAMP_MAX 40
/* Facility 10, security/authorization, as IHE ATNA senders use. */
#define AUDIT_SYSLOG_FACILITY 10

/* What the header says about one record. */
struct audit_syslog_head {
    int severity;         /* 0..7 */
    const char *timestamp; /* RFC 3339 (the record's "time"); NULL or invalid: "-" */
    const char *hostname; /* NULL or invalid: "-" */
    const char *app;      /* NULL or invalid: "-" */
    long procid;          /* <= 0: "-" */
    const char *msgid;    /* NULL or invalid: "-" */
};

/* The syslog severity of an audit outcome: notice for success, warning for
 * a minor failure, error otherwise. */
int audit_syslog_severity(int outcome);

/* True if s is 1..max printable US-ASCII characters without a space, as
 * RFC 5424 header fields must be. */
int audit_syslog_field_ok(const char *s, size_t max);

/* Writes the frame for msg (len bytes, no '\n') into out (cap bytes).
 * Returns its length, or 0 if it does not fit. */
size_t audit_syslog_frame(char *out, size_t cap, const struct audit_syslog_head *h, const char *msg,
                          size_t len);

/* The room a frame of a len-byte message needs at most. */
#define AUDIT_SYSLOG_FRAME_MAX(len)                                                                \
    ((len) + 24 + AUDIT_SYSLOG_TIMESTAMP_MAX + AUDIT_SYSLOG_HOSTNAME_MAX +                         \
     AUDIT_SYSLOG_APPNAME_MAX + 24 + AUDIT_SYSLOG_MSGID_MAX + 16)

#endif
