/* The writer side of rtpstats (RFC 3550 A.1, A.8), as static inline code
 * shared by common/wire/rtpstats.c and the kernel path's program
 * (relay/bpf/kfwd.bpf.c), so that a leg's streams are kept by the same code
 * whichever path forwards it. Uses no libc: it must compile for -target bpf.
 * Not for other callers: use rtpstats.h. */
#ifndef QUIETROOM_RTPSTATS_CORE_H
#define QUIETROOM_RTPSTATS_CORE_H

#include "quietroom/wire/rtpstats.h"

#ifdef QR_BPF
#define RTPSTATS_LOAD(p) (*(p))
#define RTPSTATS_STORE(p, v) (*(p) = (v))
#define RTPSTATS_PUBLISH(p, v) (*(p) = (v))
#else
#define RTPSTATS_LOAD(p) atomic_load_explicit((p), memory_order_relaxed)
#define RTPSTATS_STORE(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define RTPSTATS_PUBLISH(p, v) atomic_store_explicit((p), (v), memory_order_release)
#endif

#define RTP_HEADER_LEN 12
#define RTP_MAX_DROPOUT 3000
#define RTP_MAX_MISORDER 100
#define RTP_SEQ_MOD 0x10000u
/* Clock-rate estimation window and give-up point. */
#define RTP_RATE_WINDOW_MS 1000u
#define RTP_RATE_GIVE_UP_MS 10000u
/* A transit change beyond 2^26 timestamp units (23 minutes at 48 kHz) is a
 * timestamp jump, not jitter; clamping keeps jitter_q4 (16 x the estimate)
 * inside 32 bits. */
#define RTP_JITTER_MAX_DELTA (1u << 26)

#define RTPSTATS_USED 0x01u

/* stream.state */
enum {
    RATE_MEASURING = 0,
    RATE_KNOWN = 1,
    RATE_GAVE_UP = 2,
    RATE_MASK = 0x03,
    BAD_SEQ_SET = 0x04,
};

/* Index 0 is "unknown"; flags keep the index, not the rate. A switch, not a
 * table: a BPF program has no read-only data section to index. */
#define RTP_N_RATES 7u
static inline uint32_t rtpstats__rate_at(unsigned i)
{
    switch (i) {
    case 1: return 8000;
    case 2: return 16000;
    case 3: return 24000;
    case 4: return 32000;
    case 5: return 48000;
    case 6: return 90000;
    default: return 0;
    }
}

static inline uint32_t rtpstats__rate(const struct rtpstats_stream *s)
{
    return rtpstats__rate_at(RTPSTATS_LOAD(&s->flags) >> 1);
}

/* The fixed header from its first 12 bytes (the caller checked the length
 * and the CSRC list). */
static inline void rtp_header_decode(const uint8_t *b, struct rtp_header *h)
{
    h->padding = (b[0] & 0x20) != 0;
    h->marker = (b[1] & 0x80) != 0;
    h->payload_type = b[1] & 0x7F;
    h->seq = (uint16_t)(b[2] << 8 | b[3]);
    h->timestamp = (uint32_t)b[4] << 24 | (uint32_t)b[5] << 16 | (uint32_t)b[6] << 8 | b[7];
    h->ssrc = (uint32_t)b[8] << 24 | (uint32_t)b[9] << 16 | (uint32_t)b[10] << 8 | b[11];
}

/* True if len bytes starting with b0 can hold a version 2 header and the
 * CSRC list it announces. */
static inline bool rtp_header_fits(uint8_t b0, size_t len)
{
    return len >= RTP_HEADER_LEN && (b0 >> 6) == 2 && len >= RTP_HEADER_LEN + 4u * (b0 & 0x0F);
}

static inline void rtpstats__init_stream(struct rtpstats_stream *s, const struct rtp_header *h,
                                         uint64_t arrival_us)
{
    RTPSTATS_STORE(&s->ssrc, h->ssrc);
    RTPSTATS_STORE(&s->ext_max, h->seq);
    RTPSTATS_STORE(&s->received, 1);
    RTPSTATS_STORE(&s->jitter_q4, 0);
    RTPSTATS_STORE(&s->base_seq, h->seq);
    RTPSTATS_STORE(&s->reordered, 0);
    s->state = RATE_MEASURING;
    s->bad_seq = 0;
    s->u.measuring.ts0 = h->timestamp;
    s->u.measuring.t0_ms = (uint32_t)(arrival_us / 1000);
    RTPSTATS_PUBLISH(&s->flags, RTPSTATS_USED);
}

static inline uint32_t rtpstats__arrival_ts(uint64_t arrival_us, uint32_t rate)
{
    return (uint32_t)(arrival_us * rate / 1000000u);
}

/* Snaps the observed timestamp rate to a common RTP clock once a second of
 * media has been seen. */
static inline void rtpstats__estimate_rate(struct rtpstats_stream *s, const struct rtp_header *h,
                                           uint64_t arrival_us)
{
    uint32_t elapsed = (uint32_t)(arrival_us / 1000) - s->u.measuring.t0_ms;
    uint64_t est;

    if (elapsed < RTP_RATE_WINDOW_MS)
        return;
    est = (uint64_t)(uint32_t)(h->timestamp - s->u.measuring.ts0) * 1000u / elapsed;
    for (unsigned i = 1; i < RTP_N_RATES; i++) {
        uint64_t r = rtpstats__rate_at(i);

        if (est + r / 4 >= r && est <= r + r / 4) {
            RTPSTATS_STORE(&s->flags, (uint8_t)(RTPSTATS_USED | i << 1));
            s->state = (uint8_t)((s->state & ~RATE_MASK) | RATE_KNOWN);
            s->u.last_transit = rtpstats__arrival_ts(arrival_us, (uint32_t)r) - h->timestamp;
            return;
        }
    }
    if (elapsed > RTP_RATE_GIVE_UP_MS)
        s->state = (uint8_t)((s->state & ~RATE_MASK) | RATE_GAVE_UP);
}

static inline void rtpstats__jitter(struct rtpstats_stream *s, const struct rtp_header *h,
                                    uint64_t arrival_us)
{
    uint32_t transit, jitter, d;

    if ((s->state & RATE_MASK) == RATE_MEASURING) {
        rtpstats__estimate_rate(s, h, arrival_us);
        return;
    }
    if ((s->state & RATE_MASK) != RATE_KNOWN)
        return;
    transit = rtpstats__arrival_ts(arrival_us, rtpstats__rate(s)) - h->timestamp;
    /* |transit difference| in modular arithmetic: negating a signed
     * INT32_MIN would overflow. */
    d = transit - s->u.last_transit;
    if (d > INT32_MAX)
        d = 0u - d;
    if (d > RTP_JITTER_MAX_DELTA)
        d = RTP_JITTER_MAX_DELTA;
    s->u.last_transit = transit;
    jitter = RTPSTATS_LOAD(&s->jitter_q4);
    RTPSTATS_STORE(&s->jitter_q4, jitter + d - ((jitter + 8) >> 4));
}

static inline struct rtpstats_stream *rtpstats__slot(struct rtpstats *st, uint32_t ssrc,
                                                     bool *fresh)
{
    *fresh = false;
    for (int i = 0; i < QR_SSRC_SLOTS; i++) {
        struct rtpstats_stream *s = &st->stream[i];

        if (!(RTPSTATS_LOAD(&s->flags) & RTPSTATS_USED)) {
            *fresh = true;
            return s;
        }
        if (RTPSTATS_LOAD(&s->ssrc) == ssrc)
            return s;
    }
    return NULL;
}

static inline void rtpstats__reordered(struct rtpstats_stream *s)
{
    uint16_t n = RTPSTATS_LOAD(&s->reordered);

    if (n < UINT16_MAX)
        RTPSTATS_STORE(&s->reordered, (uint16_t)(n + 1));
}

/* rtpstats_update (rtpstats.h). */
static inline bool rtpstats_core_update(struct rtpstats *st, const struct rtp_header *h,
                                        uint64_t arrival_us)
{
    bool fresh;
    struct rtpstats_stream *s = rtpstats__slot(st, h->ssrc, &fresh);
    uint32_t ext_max, udelta;

    if (s == NULL || (fresh && h->padding))
        return false;
    if (fresh) {
        rtpstats__init_stream(s, h, arrival_us);
        return true;
    }
    ext_max = RTPSTATS_LOAD(&s->ext_max);
    udelta = (uint16_t)(h->seq - (uint16_t)ext_max);
    if (udelta == 0)
        return true; /* duplicate */
    if (udelta < RTP_MAX_DROPOUT) {
        RTPSTATS_STORE(&s->ext_max, ext_max + udelta);
        RTPSTATS_STORE(&s->received, RTPSTATS_LOAD(&s->received) + 1);
        rtpstats__jitter(s, h, arrival_us);
    } else if (udelta >= RTP_SEQ_MOD - RTP_MAX_MISORDER) {
        RTPSTATS_STORE(&s->received, RTPSTATS_LOAD(&s->received) + 1);
        rtpstats__reordered(s);
    } else if ((s->state & BAD_SEQ_SET) && h->seq == s->bad_seq) {
        /* Two packets in a row after a big jump: the sender restarted. */
        rtpstats__init_stream(s, h, arrival_us);
    } else {
        s->bad_seq = (uint16_t)(h->seq + 1);
        s->state |= BAD_SEQ_SET;
    }
    return true;
}

#endif
