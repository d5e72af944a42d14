/* Signaling's reader of a relay's stats reply (relaystat.c) on arbitrary
 * JSON: two replies (split at the first newline) and the rates between
 * them. Whatever it keeps must be within its documented ranges. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "relaystat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *s)
{
    size_t n = strnlen(s, RELAYSTAT_NAME_MAX);

    if (n == 0 || n == RELAYSTAT_NAME_MAX)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            abort();
    }
}

static void check(const struct relaystat *st)
{
    if (st->n_drops > QR_SIGNAL_RELAY_DROP_REASONS_MAX || st->n_workers > QR_WORKERS_MAX ||
        st->n_loss > QR_SIGNAL_RELAY_LOSS_BOUNDS_MAX)
        abort();
    for (unsigned i = 0; i < st->n_drops; i++) {
        check_name(st->drops[i].reason);
        if (st->drops[i].count < 0)
            abort();
    }
    for (unsigned i = 0; i < st->n_workers; i++) {
        if (!(st->worker_busy[i] >= 0.0 && st->worker_busy[i] <= 1.0))
            abort();
    }
    for (unsigned i = 0; i < st->n_loss; i++) {
        if (!(st->loss_le[i] > 0.0 && st->loss_le[i] <= 1.0) ||
            (i > 0 && !(st->loss_le[i] > st->loss_le[i - 1])) ||
            st->loss_streams[i + 1] < st->loss_streams[i])
            abort();
    }
}

static json_t *load(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    json_t *stats = json_incref(json_object_get(j, "stats"));

    json_decref(j);
    return stats;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t first = nl ? (size_t)(nl - data) : size;
    json_t *a = load(data, first), *b = nl ? load(nl + 1, size - first - 1) : NULL;
    struct relaystat prev, cur;
    struct relayrates r;

    relaystat_parse(a, &prev);
    relaystat_parse(b, &cur);
    check(&prev);
    check(&cur);
    relaystat_rates(&prev, 1000, &cur, 2000, &r);
    if (r.n_drops != cur.n_drops || isnan(r.packets_in) || isnan(r.bits_out))
        abort();
    for (unsigned i = 0; i < r.n_drops; i++) {
        check_name(r.drops[i].reason);
        if (isnan(r.drops[i].per_s) || isinf(r.drops[i].per_s))
            abort();
    }
    json_decref(a);
    json_decref(b);
    return 0;
}
