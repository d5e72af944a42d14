/* Audit records as FHIR AuditEvent resources (R4 or R5), gathered in a
 * Bundle of type "collection": the form an EHR's audit repository takes
 * them in. Pure: JSON in, JSON out, no I/O. Records are read defensively (a
 * field of the wrong type is left out, never trusted). */
#ifndef QUIETROOM_AUDIT_FHIR_H
#define QUIETROOM_AUDIT_FHIR_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

/* The FHIR release an export is written for. R4 is what the EHRs
 * behavioral-health practices run serve today (Epic, Oracle Health,
 * athenahealth); R5 for repositories that take it. Both carry the same
 * codes, agents and entities; only the element names and types differ. */
enum audit_fhir_release {
    AUDIT_FHIR_R4,
    AUDIT_FHIR_R5,
};

struct audit_fhir_filter {
    const char *session;   /* exact match on the record's "session"; NULL: all */
    bool has_since;
    int64_t since_ms;      /* with has_since: records whose "time" is at or after it */
};

/* Parses an RFC 3339 date-time ("2026-11-24T07:34:00.123Z", any offset) or
 * a date ("2026-11-24", midnight UTC) into Unix milliseconds. Returns 0, or
 * -1 if text is neither. */
int audit_fhir_parse_time(const char *text, int64_t *ms);

/* True if rec becomes an AuditEvent at all: every event, and of the
 * writer's own records the ones an auditor needs (audit.purge,
 * audit.overflow, audit.recovered) but not its bookkeeping (open, close,
 * checkpoint). */
bool audit_fhir_exported(const json_t *rec);

/* True if rec is exported and passes f. */
bool audit_fhir_wanted(const json_t *rec, const struct audit_fhir_filter *f);

/* The AuditEvent of release rel for rec (caller owns), or NULL if rec is
 * not exported or lacks what every AuditEvent needs (a type, a valid time). */
json_t *audit_fhir_event(const json_t *rec, enum audit_fhir_release rel);

/* A Bundle with no entries yet, stamped at now_ms (caller owns). */
json_t *audit_fhir_bundle(uint64_t now_ms);

/* Adds the AuditEvent of release rel for rec to bundle if f wants it.
 * Returns 1 if added, 0 if not wanted or not exportable, -1 when out of
 * memory. */
int audit_fhir_add(json_t *bundle, const json_t *rec, const struct audit_fhir_filter *f,
                   enum audit_fhir_release rel);

#endif
