/* RTP header parsing and per-SSRC reception statistics (RFC 3550 A.1, A.8):
 * loss, reordering and interarrival jitter, from headers only, never payload.
 * One thread updates a struct rtpstats; any thread may read it. */
#ifndef QUIETROOM_RTPSTATS_H
#define QUIETROOM_RTPSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quietroom/base/limits.h"

#ifdef QR_BPF
/* The kernel path's program (relay/bpf) keeps a leg's streams in its map
 * under a spin lock, and BPF has no C11 atomics: the same layout, plain
 * fields. */
#define RTPSTATS_ATOMIC(t) t
#else
#include <stdatomic.h>
#define RTPSTATS_ATOMIC(t) _Atomic t
#endif

struct rtp_header {
    uint8_t payload_type;
    bool marker;
    bool padding;                /* P bit: padding-only probes set it */
    uint16_t seq;
    uint32_t timestamp;
    uint32_t ssrc;
};

/* Parses the fixed RTP header; false unless version 2 and long enough for
 * the header and its CSRC list. */
bool rtp_parse_header(const uint8_t *buf, size_t len, struct rtp_header *h);

/* One stream, 32 bytes: a relay holds two per leg for every session, so
 * every field is as narrow as its range allows. Fields others read are
 * atomics; the rest belongs to the writer. */
struct rtpstats_stream {
    RTPSTATS_ATOMIC(uint32_t) ssrc;
    RTPSTATS_ATOMIC(uint32_t) ext_max;    /* highest extended sequence number */
    RTPSTATS_ATOMIC(uint32_t) received;   /* distinct packets, duplicates excluded */
    RTPSTATS_ATOMIC(uint32_t) jitter_q4;  /* RFC 3550 jitter, timestamp units << 4 */
    RTPSTATS_ATOMIC(uint16_t) base_seq;   /* first sequence number; cycles count from 0 */
    RTPSTATS_ATOMIC(uint16_t) reordered;  /* arrived after a higher number; saturates */
    RTPSTATS_ATOMIC(uint8_t) flags;       /* RTPSTATS_USED | clock-rate index << 1 */
    uint8_t state;               /* estimation phase, pending restart */
    uint16_t bad_seq;            /* next number if the sender restarted */
    union {
        struct {
            uint32_t ts0;        /* first timestamp and its arrival (ms) */
            uint32_t t0_ms;
        } measuring;
        uint32_t last_transit;   /* once the clock rate is known */
    } u;
};

struct rtpstats {
    struct rtpstats_stream stream[QR_SSRC_SLOTS];
};

_Static_assert(sizeof(struct rtpstats_stream) == 32, "a stream slot is 32 bytes");

#ifndef QR_BPF
struct rtpstats_summary {
    uint32_t ssrc;
    uint32_t expected;
    uint32_t received;
    uint32_t lost;
    uint32_t reordered;
    uint32_t clock_rate;
    double loss_ratio;
    double jitter_ms;            /* < 0 while the clock rate is unknown */
};

/* Writer: accounts one packet that arrived at arrival_us (monotonic).
 * Returns false if its SSRC is beyond the slots (the caller counts those). A
 * packet with the padding bit never claims a free slot: Chrome's bandwidth
 * probes would otherwise take it from the audio or video stream. */
bool rtpstats_update(struct rtpstats *st, const struct rtp_header *h, uint64_t arrival_us);

/* Reader: summaries of up to max streams; returns how many were written. */
int rtpstats_read(const struct rtpstats *st, struct rtpstats_summary *out, int max);

/* Copies every stream from src; only when neither has a writer running
 * (the kernel path hands a leg's streams between the program and the
 * worker this way, relay/kfwd.c). */
void rtpstats_copy(struct rtpstats *dst, const struct rtpstats *src);

/* Clears everything; only when no writer runs. */
void rtpstats_reset(struct rtpstats *st);
#endif

#endif
