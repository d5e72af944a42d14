/* Tolerant reading of a relay's stats reply. The relay is authenticated,
 * but a reply is still input: numbers are range-checked, names are checked
 * against a small alphabet, arrays are bounded, and a relay of an older or
 * newer version simply leaves fields unknown. */
#include "relaystat.h"

#include <stdio.h>
#include <string.h>

/* A non-negative integer at obj.group.name (group NULL: obj.name), else -1. */
static int64_t relaystat__count(const json_t *obj, const char *group, const char *name)
{
    const json_t *v = group ? json_object_get(json_object_get(obj, group), name)
                            : json_object_get(obj, name);

    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    return (int64_t)json_integer_value(v);
}

static enum relaystat_flag relaystat__flag(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);

    if (!json_is_boolean(v))
        return RELAYSTAT_UNKNOWN;
    return json_is_true(v) ? RELAYSTAT_YES : RELAYSTAT_NO;
}

/* Names we pass on to the dashboard: short, lower case, digits, '_'. */
static bool relaystat__name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n >= RELAYSTAT_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

static void relaystat__drops(const json_t *stats, struct relaystat *out)
{
    const json_t *dropped = json_object_get(stats, "dropped"), *v;
    const char *name;

    json_object_foreach((json_t *)dropped, name, v)
    {
        if (out->n_drops == QR_SIGNAL_RELAY_DROP_REASONS_MAX)
            break;
        if (!relaystat__name_ok(name) || !json_is_integer(v) || json_integer_value(v) < 0)
            continue;
        snprintf(out->drops[out->n_drops].reason, RELAYSTAT_NAME_MAX, "%s", name);
        out->drops[out->n_drops++].count = (int64_t)json_integer_value(v);
    }
}

static void relaystat__workers(const json_t *stats, struct relaystat *out)
{
    const json_t *busy = json_object_get(stats, "worker_busy"), *v;
    size_t i;

    if (!json_is_array(busy) || json_array_size(busy) > QR_WORKERS_MAX)
        return;
    json_array_foreach(busy, i, v)
    {
        double d = json_number_value(v);

        if (!json_is_number(v) || !(d >= 0.0)) /* also refuses NaN */
            return;
        out->worker_busy[i] = d > 1.0 ? 1.0 : d;
    }
    out->n_workers = (unsigned)json_array_size(busy);
}

/* "rtp_loss": {"le": [ascending bounds], "active_streams": [cumulative
 * counts per bound, then the +Inf total]}; all or nothing. */
static void relaystat__loss(const json_t *stats, struct relaystat *out)
{
    const json_t *loss = json_object_get(stats, "rtp_loss");
    const json_t *le = json_object_get(loss, "le"), *streams = json_object_get(loss, "active_streams");
    size_t n = json_array_size(le);

    if (!json_is_array(le) || !json_is_array(streams) || n == 0 ||
        n > QR_SIGNAL_RELAY_LOSS_BOUNDS_MAX || json_array_size(streams) != n + 1)
        return;
    for (size_t i = 0; i <= n; i++) {
        const json_t *c = json_array_get(streams, i);

        if (i < n) {
            const json_t *b = json_array_get(le, i);
            double d = json_number_value(b);

            if (!json_is_number(b) || !(d > 0.0 && d <= 1.0) ||
                (i > 0 && !(d > out->loss_le[i - 1])))
                return;
            out->loss_le[i] = d;
        }
        if (!json_is_integer(c) || json_integer_value(c) < 0 ||
            (i > 0 && json_integer_value(c) < out->loss_streams[i - 1]))
            return;
        out->loss_streams[i] = (int64_t)json_integer_value(c);
    }
    out->n_loss = (unsigned)n;
}

void relaystat_parse(const json_t *stats, struct relaystat *out)
{
    memset(out, 0, sizeof(*out));
    out->draining = relaystat__flag(stats, "draining");
    out->ready = relaystat__flag(stats, "ready");
    out->uptime_s = relaystat__count(stats, NULL, "uptime_s");
    out->drain_left_s = relaystat__count(stats, NULL, "drain_left_s");
    out->sessions = relaystat__count(stats, "sessions", "active");
    out->links = relaystat__count(stats, "links", "active");
    out->capacity = relaystat__count(stats, "links", "capacity");
    out->legs = relaystat__count(stats, "legs", "active");
    out->packets_in = relaystat__count(stats, "packets", "received");
    out->packets_out = relaystat__count(stats, "packets", "forwarded");
    out->bytes_in = relaystat__count(stats, "bytes", "received");
    out->bytes_out = relaystat__count(stats, "bytes", "forwarded");
    out->tcp_packets_in = relaystat__count(stats, "tcp", "packets_received");
    out->tcp_packets_out = relaystat__count(stats, "tcp", "packets_forwarded");
    out->tcp_open = relaystat__count(stats, "tcp_connections", "open");
    if (json_is_object(stats)) {
        relaystat__drops(stats, out);
        relaystat__workers(stats, out);
        relaystat__loss(stats, out);
    }
}

static double relaystat__rate(int64_t a, int64_t b, double dt_s, double scale)
{
    if (a < 0 || b < 0 || b < a || dt_s <= 0.0)
        return -1.0;
    return (double)(b - a) * scale / dt_s;
}

void relaystat_rates(const struct relaystat *prev, uint64_t prev_ms, const struct relaystat *cur,
                     uint64_t cur_ms, struct relayrates *out)
{
    double dt = cur_ms > prev_ms ? (double)(cur_ms - prev_ms) / 1000.0 : 0.0;

    memset(out, 0, sizeof(*out));
    /* A relay that restarted in between counts from zero again. */
    if (prev->uptime_s >= 0 && cur->uptime_s >= 0 && cur->uptime_s < prev->uptime_s)
        dt = 0.0;
    out->packets_in = relaystat__rate(prev->packets_in, cur->packets_in, dt, 1.0);
    out->packets_out = relaystat__rate(prev->packets_out, cur->packets_out, dt, 1.0);
    out->bits_in = relaystat__rate(prev->bytes_in, cur->bytes_in, dt, 8.0);
    out->bits_out = relaystat__rate(prev->bytes_out, cur->bytes_out, dt, 8.0);
    out->tcp_packets_in = relaystat__rate(prev->tcp_packets_in, cur->tcp_packets_in, dt, 1.0);
    out->tcp_packets_out = relaystat__rate(prev->tcp_packets_out, cur->tcp_packets_out, dt, 1.0);
    for (unsigned i = 0; i < cur->n_drops; i++) {
        int64_t before = -1;

        for (unsigned j = 0; j < prev->n_drops; j++) {
            if (strcmp(prev->drops[j].reason, cur->drops[i].reason) == 0)
                before = prev->drops[j].count;
        }
        snprintf(out->drops[out->n_drops].reason, RELAYSTAT_NAME_MAX, "%s", cur->drops[i].reason);
        out->drops[out->n_drops++].per_s = relaystat__rate(before, cur->drops[i].count, dt, 1.0);
    }
}
