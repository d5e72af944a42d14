/* Audit log writer: tamper-evident JSON Lines (each line sealed with an
 * HMAC chained to the line before), fields aligned to FHIR R5 AuditEvent,
 * written by one thread so that callers never wait on the disk unless they
 * ask to (audit_write returns only once the record is on disk). */
#ifndef QUIETROOM_AUDIT_H
#define QUIETROOM_AUDIT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "quietroom/base/keyring.h"

struct audit_ship_config;

struct audit_config {
    const char *path;             /* the active file; rotated files are PATH.YYYYMMDDTHHMMSSZ */
    const char *node;             /* this process in every record ("source") */
    const struct keyring *keys;   /* the first key seals; copied */
    uint64_t rotate_bytes;        /* 0: QR_AUDIT_ROTATE_BYTES; rotation is also daily (UTC) */
    uint32_t retention_days;      /* 0: QR_AUDIT_RETENTION_DAYS (six years) */
    uint32_t checkpoint_every;    /* records; 0: QR_AUDIT_CHECKPOINT_EVERY */
    bool hash_addresses;          /* record network addresses as keyed hashes */
    const struct audit_ship_config *ship; /* NULL or no host: records are not shipped */
    const char *program;          /* the default APP-NAME of shipped records */
};

struct audit_log;

/* Opens (or continues) the log at cfg->path: finds the last sealed record to
 * continue the chain, records a torn last line left by a crash, and starts
 * the writer thread. Returns NULL with a reason in err. Close with
 * audit_close. */
struct audit_log *audit_open(const struct audit_config *cfg, char *err, size_t errlen);

/* Queues one event (consumed). Never blocks: when the queue is full the
 * event is counted as lost and an "audit.overflow" record says so. */
int audit_emit(struct audit_log *log, json_t *event);

/* Writes one event (consumed) and returns 0 once it is on disk (fdatasync;
 * group commit with whatever else is queued), -1 if it could not be. */
int audit_write(struct audit_log *log, json_t *event);

/* Blocks until everything queued so far is on disk. */
void audit_flush(struct audit_log *log);

struct audit_counters {
    uint64_t written;
    uint64_t dropped;
    uint64_t write_errors;
    uint64_t rotations;
};
void audit_get_counters(struct audit_log *log, struct audit_counters *out);

/* The shipper's counters; false if records are not shipped. */
struct audit_ship_counters;
bool audit_get_ship_counters(struct audit_log *log, struct audit_ship_counters *out);

/* Writes what is queued and an "audit.close" record, stops the thread,
 * lets the shipper deliver what is left (QR_AUDIT_SHIP_DRAIN_MS at most),
 * frees everything. NULL-safe. */
void audit_close(struct audit_log *log);

/* --- building events -------------------------------------------------------
 * A record says what happened ("type", FHIR "action" C/R/U/D/E and
 * "outcome"), who took part ("agents": sub, role, requestor, address), which
 * session (with its security labels), when (the writer adds "time"; a
 * "period" for things that lasted) and "detail" (counts, never content). */

enum audit_outcome {
    AUDIT_SUCCESS = 0,
    AUDIT_MINOR_FAILURE = 4,
    AUDIT_SERIOUS_FAILURE = 8,
    AUDIT_MAJOR_FAILURE = 12,
};

/* A new event; NULL only when out of memory (the other builders accept it). */
json_t *audit_event(const char *type, char action, enum audit_outcome outcome);
void audit_event_reason(json_t *ev, const char *reason);
/* sub, role and address may be NULL when unknown. */
void audit_event_agent(json_t *ev, const char *sub, const char *role, bool requestor,
                       const char *address);
/* The clinician (or operator) who caused the event. */
void audit_event_by(json_t *ev, const char *sub, const char *role);
/* The session, labelled "R" (restricted), and "42CFRPart2" when part2. */
void audit_event_session(json_t *ev, const char *session, bool part2);
void audit_event_period(json_t *ev, uint64_t start_wall_ms, uint64_t end_wall_ms);
/* detail[name] = value (consumed). */
void audit_event_detail(json_t *ev, const char *name, json_t *value);

#endif
