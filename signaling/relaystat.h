/* What signaling reads from a relay's control `stats` reply (docs/relay.md):
 * readiness, load, traffic counters, drops, worker load and the live RTP
 * loss distribution, and the rates between two replies. No I/O: the relay
 * threads parse, the dashboard and /metrics read copies. Every field is
 * optional in the reply; what is absent or malformed stays unknown. */
#ifndef QUIETROOM_SIGNAL_RELAYSTAT_H
#define QUIETROOM_SIGNAL_RELAYSTAT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "quietroom/base/limits.h"

/* A yes/no the relay may not have said. */
enum relaystat_flag { RELAYSTAT_UNKNOWN = -1, RELAYSTAT_NO = 0, RELAYSTAT_YES = 1 };

#define RELAYSTAT_NAME_MAX 24

struct relaystat_drop {
    char reason[RELAYSTAT_NAME_MAX];    /* [a-z0-9_]+, as the relay named it */
    int64_t count;
};

/* Counters and gauges are -1 when unknown. */
struct relaystat {
    enum relaystat_flag draining, ready;
    int64_t uptime_s;
    int64_t drain_left_s;               /* draining: until its drain-timeout; -1 unknown */
    int64_t sessions, links, capacity, legs;
    int64_t packets_in, packets_out, bytes_in, bytes_out;
    int64_t tcp_packets_in, tcp_packets_out;  /* of them, on ICE-TCP legs */
    int64_t tcp_open;                         /* ICE-TCP connections now */
    unsigned n_drops;
    struct relaystat_drop drops[QR_SIGNAL_RELAY_DROP_REASONS_MAX];
    unsigned n_workers;                 /* busy ratios known (0: unknown) */
    double worker_busy[QR_WORKERS_MAX]; /* 0..1 */
    unsigned n_loss;                    /* loss bounds known (0: unknown) */
    double loss_le[QR_SIGNAL_RELAY_LOSS_BOUNDS_MAX];
    int64_t loss_streams[QR_SIGNAL_RELAY_LOSS_BOUNDS_MAX + 1];  /* cumulative; last is +Inf */
};

/* Per-second rates between two replies; negative when unknown (first
 * reply, a relay restart in between, or a counter the relay did not send). */
struct relayrates {
    double packets_in, packets_out, bits_in, bits_out;
    double tcp_packets_in, tcp_packets_out;
    unsigned n_drops;
    struct {
        char reason[RELAYSTAT_NAME_MAX];
        double per_s;
    } drops[QR_SIGNAL_RELAY_DROP_REASONS_MAX];
};

/* Reads the "stats" object of a reply (NULL allowed: all unknown). */
void relaystat_parse(const json_t *stats, struct relaystat *out);

/* Rates from prev (taken at prev_ms) to cur (at cur_ms, monotonic). */
void relaystat_rates(const struct relaystat *prev, uint64_t prev_ms, const struct relaystat *cur,
                     uint64_t cur_ms, struct relayrates *out);

#endif
