/* Shipping the audit chain to a syslog collector over TLS (RFC 5425), so a
 * copy of every record is held off the machine as soon as it is sealed.
 *
 * The local file stays the source of truth: the shipper is a thread of its
 * own that reads back what the writer has made durable, frames each line
 * (audit_syslog.h) and sends it. Nothing it does makes the writer, or
 * anyone who emits a record, wait. Records sent but not known to be
 * delivered are kept and sent again after a reconnect: the collector may
 * see a record twice, byte-identical, never miss one. */
#ifndef QUIETROOM_AUDIT_SHIP_H
#define QUIETROOM_AUDIT_SHIP_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "quietroom/audit/audit_syslog.h"

struct audit_ship_config {
    char host[256]; /* "" = no shipping; checked against the certificate */
    char port[8];
    char ca_file[PATH_MAX];                 /* required: who may receive the records */
    char cert_file[PATH_MAX];               /* optional client certificate ... */
    char key_file[PATH_MAX];                /* ... and its key */
    char app[AUDIT_SYSLOG_APPNAME_MAX + 1]; /* APP-NAME; "" = the caller's default */
};

/* Parses "HOST:PORT" or "[IPv6]:PORT" into c. Returns 0 or -1 with err. */
int audit_ship_parse_target(struct audit_ship_config *c, const char *value, char *err,
                            size_t errlen);

struct audit_ship_counters {
    uint64_t sent;   /* records sent for the first time */
    uint64_t resent; /* sent again after a reconnect */
    uint64_t connects_ok, connects_failed, refused_certificate;
    uint64_t behind_ms; /* how long the oldest durable record not yet acknowledged has waited */
    bool connected;
};

struct audit_ship;
struct audit_log;

/* Loads the TLS settings (a bad CA, certificate or key is an error now, not
 * at the first connection) and starts the thread, which ships path from
 * byte offset `from` on, where this run's records start; and first, if the
 * previous run noted (in DIR/.BASE.ship) that it shipped only up to a seq
 * below last_seq (the last record before `from`), the records after that
 * seq, rotated files included. log receives the "audit.ship" records
 * (stopped, resumed); app_default names the program. NULL with err. */
struct audit_ship *audit_ship_start(const struct audit_ship_config *c, const char *app_default,
                                    const char *path, uint64_t from, uint64_t last_seq,
                                    struct audit_log *log, char *err, size_t errlen);

/* The writer made path durable up to size bytes in the file with inode
 * ino (a new ino: the file was rotated and PATH is a new file). */
void audit_ship_committed(struct audit_ship *s, ino_t ino, uint64_t size);

void audit_ship_get_counters(struct audit_ship *s, struct audit_ship_counters *out);

/* From now on the shipper writes no "audit.ship" record of its own: the
 * log is about to close. */
void audit_ship_quiet(struct audit_ship *s);

/* Sends what is committed and not yet known delivered, waiting at most
 * QR_AUDIT_SHIP_DRAIN_MS, then stops the thread and frees s. NULL-safe. */
void audit_ship_stop(struct audit_ship *s);

#endif
