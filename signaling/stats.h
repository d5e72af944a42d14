/* Signaling's counters for /metrics and the dashboard. Main (event-loop)
 * thread only: they are written where things happen and read by the
 * operator listener, which runs on the same thread. Aggregate only: a label
 * value is one of the server's own codes, never anything a client sent or
 * anything naming a person, a session or an address. */
#ifndef QUIETROOM_SIGNAL_STATS_H
#define QUIETROOM_SIGNAL_STATS_H

#include <stdint.h>

#include "quietroom/base/limits.h"
#include "quietroom/ops/metrics.h"

#define STATS_LABEL_MAX 32

/* One counter per label value, in order of first use. A value that is not
 * [a-z0-9_]+ or does not fit is counted as "other". */
struct stats_labelled {
    unsigned n;
    struct {
        char label[STATS_LABEL_MAX];
        uint64_t count;
    } v[QR_SIGNAL_LABELS_MAX];
};

void stats_count(struct stats_labelled *t, const char *label);
uint64_t stats_get(const struct stats_labelled *t, const char *label);
uint64_t stats_sum(const struct stats_labelled *t);

/* Rates over the last QR_OPS_WINDOW_MS, for the dashboard. */
struct stats_rates {
    double auth_ok, auth_resumed, auth_refused, messages, rejected;
};

struct signal_stats {
    uint64_t ws_open;                   /* WebSockets open now */
    uint64_t ws_opened;
    struct stats_labelled auth;         /* "ok", "resumed", "rejoined", "link_checked"
                                         * or a §7 code */
    uint64_t messages;
    struct stats_labelled rejected;     /* §7 codes of refused messages */
    uint64_t sessions_started;
    struct stats_labelled ended;        /* §4 end reasons, and "empty" */
    struct stats_labelled media_moves;  /* pairs moved or placed, by reason */
    uint64_t sdp_rewritten;
    uint64_t candidates_dropped;
    struct stats_labelled checks;       /* connection checks: "started", then each
                                         * result's verdict (good, weak, none) */
    uint64_t notices;                   /* waiting-room messages passed on */
    uint64_t store_writes;              /* visit records written */
    uint64_t takeovers;                 /* cluster: visits taken over from the store */
    uint64_t lost_visits;               /* cluster: visits another replica took from us */
    struct stats_labelled store_failures; /* by operation: claim, save, forget, encode,
                                           * unreadable, no_room */
    struct metrics_histogram setup;     /* session_setup_seconds */
    /* The dashboard's rates: counters at the start of the window. */
    uint64_t window_ms;
    uint64_t window_auth_ok, window_auth_resumed, window_auth_refused, window_messages,
        window_rejected;
    struct stats_rates rates;
};

void stats_init(struct signal_stats *st);
/* Advances the rate window when QR_OPS_WINDOW_MS have passed (timer tick). */
void stats_tick(struct signal_stats *st, uint64_t now_ms);

#endif
