/* Reception statistics after RFC 3550 appendix A, adapted to a relay that
 * does not know the SDP: the clock rate is estimated from timestamps. */
#include "quietroom/wire/rtpstats.h"

#include <string.h>

#include "quietroom/base/bytes.h"

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

_Static_assert(sizeof(struct rtpstats_stream) == 32, "a stream slot is 32 bytes");

/* stream.state */
enum {
    RATE_MEASURING = 0,
    RATE_KNOWN = 1,
    RATE_GAVE_UP = 2,
    RATE_MASK = 0x03,
    BAD_SEQ_SET = 0x04,
};

/* Index 0 is "unknown"; flags keep the index, not the rate. */
static const uint32_t rtp_known_rates[] = {0, 8000, 16000, 24000, 32000, 48000, 90000};
#define RTP_N_RATES (sizeof(rtp_known_rates) / sizeof(rtp_known_rates[0]))

static uint32_t get(const _Atomic uint32_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void set(_Atomic uint32_t *v, uint32_t x)
{
    atomic_store_explicit(v, x, memory_order_relaxed);
}

static uint32_t rtpstats__rate(const struct rtpstats_stream *s)
{
    unsigned i = atomic_load_explicit(&s->flags, memory_order_relaxed) >> 1;

    return i < RTP_N_RATES ? rtp_known_rates[i] : 0;
}

bool rtp_parse_header(const uint8_t *buf, size_t len, struct rtp_header *h)
{
    if (len < RTP_HEADER_LEN || (buf[0] >> 6) != 2)
        return false;
    if (len < RTP_HEADER_LEN + 4u * (buf[0] & 0x0F))
        return false;
    h->padding = (buf[0] & 0x20) != 0;
    h->marker = (buf[1] & 0x80) != 0;
    h->payload_type = buf[1] & 0x7F;
    h->seq = bytes_get16(buf + 2);
    h->timestamp = bytes_get32(buf + 4);
    h->ssrc = bytes_get32(buf + 8);
    return true;
}

static void rtpstats__init_stream(struct rtpstats_stream *s, const struct rtp_header *h,
                                  uint64_t arrival_us)
{
    set(&s->ssrc, h->ssrc);
    set(&s->ext_max, h->seq);
    set(&s->received, 1);
    set(&s->jitter_q4, 0);
    atomic_store_explicit(&s->base_seq, h->seq, memory_order_relaxed);
    atomic_store_explicit(&s->reordered, 0, memory_order_relaxed);
    s->state = RATE_MEASURING;
    s->bad_seq = 0;
    s->u.measuring.ts0 = h->timestamp;
    s->u.measuring.t0_ms = (uint32_t)(arrival_us / 1000);
    atomic_store_explicit(&s->flags, RTPSTATS_USED, memory_order_release);
}

static uint32_t rtpstats__arrival_ts(uint64_t arrival_us, uint32_t rate)
{
    return (uint32_t)(arrival_us * rate / 1000000u);
}

/* Snaps the observed timestamp rate to a common RTP clock once a second of
 * media has been seen. */
static void rtpstats__estimate_rate(struct rtpstats_stream *s, const struct rtp_header *h,
                                    uint64_t arrival_us)
{
    uint32_t elapsed = (uint32_t)(arrival_us / 1000) - s->u.measuring.t0_ms;
    uint64_t est;

    if (elapsed < RTP_RATE_WINDOW_MS)
        return;
    est = (uint64_t)(uint32_t)(h->timestamp - s->u.measuring.ts0) * 1000u / elapsed;
    for (unsigned i = 1; i < RTP_N_RATES; i++) {
        uint64_t r = rtp_known_rates[i];

        if (est + r / 4 >= r && est <= r + r / 4) {
            atomic_store_explicit(&s->flags, (uint8_t)(RTPSTATS_USED | i << 1),
                                  memory_order_relaxed);
            s->state = (uint8_t)((s->state & ~RATE_MASK) | RATE_KNOWN);
            s->u.last_transit = rtpstats__arrival_ts(arrival_us, (uint32_t)r) - h->timestamp;
            return;
        }
    }
    if (elapsed > RTP_RATE_GIVE_UP_MS)
        s->state = (uint8_t)((s->state & ~RATE_MASK) | RATE_GAVE_UP);
}

static void rtpstats__jitter(struct rtpstats_stream *s, const struct rtp_header *h,
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
    jitter = get(&s->jitter_q4);
    set(&s->jitter_q4, jitter + d - ((jitter + 8) >> 4));
}

static struct rtpstats_stream *rtpstats__slot(struct rtpstats *st, uint32_t ssrc, bool *fresh)
{
    *fresh = false;
    for (int i = 0; i < QR_SSRC_SLOTS; i++) {
        struct rtpstats_stream *s = &st->stream[i];

        if (!(atomic_load_explicit(&s->flags, memory_order_relaxed) & RTPSTATS_USED)) {
            *fresh = true;
            return s;
        }
        if (get(&s->ssrc) == ssrc)
            return s;
    }
    return NULL;
}

static void rtpstats__reordered(struct rtpstats_stream *s)
{
    uint16_t n = atomic_load_explicit(&s->reordered, memory_order_relaxed);

    if (n < UINT16_MAX)
        atomic_store_explicit(&s->reordered, (uint16_t)(n + 1), memory_order_relaxed);
}

bool rtpstats_update(struct rtpstats *st, const struct rtp_header *h, uint64_t arrival_us)
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
    ext_max = get(&s->ext_max);
    udelta = (uint16_t)(h->seq - (uint16_t)ext_max);
    if (udelta == 0)
        return true; /* duplicate */
    if (udelta < RTP_MAX_DROPOUT) {
        set(&s->ext_max, ext_max + udelta);
        set(&s->received, get(&s->received) + 1);
        rtpstats__jitter(s, h, arrival_us);
    } else if (udelta >= RTP_SEQ_MOD - RTP_MAX_MISORDER) {
        set(&s->received, get(&s->received) + 1);
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

int rtpstats_read(const struct rtpstats *st, struct rtpstats_summary *out, int max)
{
    int n = 0;

    for (int i = 0; i < QR_SSRC_SLOTS && n < max; i++) {
        const struct rtpstats_stream *s = &st->stream[i];
        struct rtpstats_summary *o = &out[n];
        uint32_t base;

        if (!(atomic_load_explicit(&s->flags, memory_order_acquire) & RTPSTATS_USED))
            continue;
        base = atomic_load_explicit(&s->base_seq, memory_order_relaxed);
        o->ssrc = get(&s->ssrc);
        o->expected = get(&s->ext_max) - base + 1;
        o->received = get(&s->received);
        o->lost = o->expected > o->received ? o->expected - o->received : 0;
        o->reordered = atomic_load_explicit(&s->reordered, memory_order_relaxed);
        o->clock_rate = rtpstats__rate(s);
        o->loss_ratio = o->expected ? (double)o->lost / o->expected : 0.0;
        o->jitter_ms = o->clock_rate ? (get(&s->jitter_q4) / 16.0) * 1000.0 / o->clock_rate : -1.0;
        n++;
    }
    return n;
}

void rtpstats_reset(struct rtpstats *st)
{
    memset(st, 0, sizeof(*st));
}
