/* Counting, and the dashboard's one-second rates. */
#include "stats.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Seconds of session setup: a call should be up in about a second; the
 * tail shows ICE or a browser waiting on the network. */
static const double stats_setup_bounds[] = {0.1, 0.25, 0.5, 1, 2, 5, 10, 30};

static bool stats__label_ok(const char *label)
{
    size_t n = strlen(label);

    if (n == 0 || n >= STATS_LABEL_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = label[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

void stats_count(struct stats_labelled *t, const char *label)
{
    if (label == NULL || !stats__label_ok(label))
        label = "other";
    for (unsigned i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].label, label) == 0) {
            t->v[i].count++;
            return;
        }
    }
    if (t->n == QR_SIGNAL_LABELS_MAX) {
        /* Full: the last slot becomes "other" (never reached with our codes). */
        snprintf(t->v[t->n - 1].label, STATS_LABEL_MAX, "other");
        t->v[t->n - 1].count++;
        return;
    }
    snprintf(t->v[t->n].label, STATS_LABEL_MAX, "%s", label);
    t->v[t->n++].count = 1;
}

uint64_t stats_get(const struct stats_labelled *t, const char *label)
{
    for (unsigned i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].label, label) == 0)
            return t->v[i].count;
    }
    return 0;
}

uint64_t stats_sum(const struct stats_labelled *t)
{
    uint64_t sum = 0;

    for (unsigned i = 0; i < t->n; i++)
        sum += t->v[i].count;
    return sum;
}

void stats_init(struct signal_stats *st)
{
    memset(st, 0, sizeof(*st));
    metrics_histogram_init(&st->setup, stats_setup_bounds,
                           sizeof(stats_setup_bounds) / sizeof(stats_setup_bounds[0]), 1000.0);
}

void stats_tick(struct signal_stats *st, uint64_t now_ms)
{
    uint64_t ok = stats_get(&st->auth, "ok"), resumed = stats_get(&st->auth, "resumed");
    uint64_t refused = stats_sum(&st->auth) - ok - resumed, rejected = stats_sum(&st->rejected);
    double dt;

    if (st->window_ms == 0) {
        st->window_ms = now_ms;
    } else if (now_ms - st->window_ms >= QR_OPS_WINDOW_MS) {
        dt = (double)(now_ms - st->window_ms) / 1000.0;
        st->rates.auth_ok = (double)(ok - st->window_auth_ok) / dt;
        st->rates.auth_resumed = (double)(resumed - st->window_auth_resumed) / dt;
        st->rates.auth_refused = (double)(refused - st->window_auth_refused) / dt;
        st->rates.messages = (double)(st->messages - st->window_messages) / dt;
        st->rates.rejected = (double)(rejected - st->window_rejected) / dt;
        st->window_ms = now_ms;
    } else {
        return;
    }
    st->window_auth_ok = ok;
    st->window_auth_resumed = resumed;
    st->window_auth_refused = refused;
    st->window_messages = st->messages;
    st->window_rejected = rejected;
}
