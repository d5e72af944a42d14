/* Audit metrics: aggregate counts only, never a record's content. */
#include "quietroom/ops/metrics_audit.h"

#include <stdio.h>

static void metrics_audit__ship(struct metrics *m, const char *prefix,
                                const struct audit_ship_counters *s)
{
    char name[96];

    snprintf(name, sizeof(name), "%s_audit_ship_records_total", prefix);
    metrics_family(m, name, "counter",
                   "Audit records sent to the syslog collector; resent: again after a reconnect.");
    metrics_u64(m, name, "result", "sent", s->sent);
    metrics_u64(m, name, "result", "resent", s->resent);
    snprintf(name, sizeof(name), "%s_audit_ship_connects_total", prefix);
    metrics_family(m, name, "counter", "Connections to the syslog collector, by result.");
    metrics_u64(m, name, "result", "ok", s->connects_ok);
    metrics_u64(m, name, "result", "failed", s->connects_failed);
    metrics_u64(m, name, "result", "refused_certificate", s->refused_certificate);
    snprintf(name, sizeof(name), "%s_audit_ship_connected", prefix);
    metrics_gauge(m, name, "1 while connected to the syslog collector.", s->connected);
    snprintf(name, sizeof(name), "%s_audit_ship_behind_seconds", prefix);
    metrics_gauge(m, name, "How long a durable audit record has waited to be sent (0: none).",
                  (double)s->behind_ms / 1000.0);
}

void metrics_audit(struct metrics *m, const char *prefix, const struct audit_counters *a,
                   const struct audit_ship_counters *ship)
{
    char name[96];

    snprintf(name, sizeof(name), "%s_audit_records_total", prefix);
    metrics_family(m, name, "counter", "Audit records by what became of them.");
    metrics_u64(m, name, "result", "written", a->written);
    metrics_u64(m, name, "result", "dropped", a->dropped);
    metrics_u64(m, name, "result", "write_error", a->write_errors);
    if (ship != NULL)
        metrics_audit__ship(m, prefix, ship);
}
