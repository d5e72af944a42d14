/* Reception statistics after RFC 3550 appendix A, adapted to a relay that
 * does not know the SDP: the clock rate is estimated from timestamps. */
#include "quietroom/rtpstats.h"

#include <string.h>

#include "quietroom/bytes.h"

#define RTP_HEADER_LEN 12
#define RTP_MAX_DROPOUT 3000
#define RTP_MAX_MISORDER 100
#define RTP_SEQ_MOD 0x10000u
/* Clock-rate estimation window and give-up point. */
#define RTP_RATE_WINDOW_US 1000000ull
#define RTP_RATE_GIVE_UP_US 10000000ull

enum { RATE_MEASURING = 0, RATE_KNOWN, RATE_GAVE_UP };

static const uint32_t rtp_known_rates[] = {8000, 16000, 24000, 32000, 48000, 90000};

static uint32_t get(const _Atomic uint32_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void set(_Atomic uint32_t *v, uint32_t x)
{
    atomic_store_explicit(v, x, memory_order_relaxed);
}

bool rtp_parse_header(const uint8_t *buf, size_t len, struct rtp_header *h)
{
    if (len < RTP_HEADER_LEN || (buf[0] >> 6) != 2)
        return false;
    if (len < RTP_HEADER_LEN + 4u * (buf[0] & 0x0F))
        return false;
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
    set(&s->ext_base, h->seq);
    set(&s->received, 1);
    set(&s->reordered, 0);
    set(&s->jitter_q4, 0);
    set(&s->clock_rate, 0);
    s->bad_seq = RTP_SEQ_MOD + 1;
    s->ts0 = h->timestamp;
    s->t0_us = arrival_us;
    s->rate_state = RATE_MEASURING;
    atomic_store_explicit(&s->used, 1, memory_order_release);
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
    uint64_t elapsed = arrival_us - s->t0_us;
    uint64_t est;

    if (elapsed < RTP_RATE_WINDOW_US)
        return;
    est = (uint64_t)(uint32_t)(h->timestamp - s->ts0) * 1000000u / elapsed;
    for (size_t i = 0; i < sizeof(rtp_known_rates) / sizeof(rtp_known_rates[0]); i++) {
        uint64_t r = rtp_known_rates[i];

        if (est + r / 4 >= r && est <= r + r / 4) {
            set(&s->clock_rate, (uint32_t)r);
            s->rate_state = RATE_KNOWN;
            s->last_transit = rtpstats__arrival_ts(arrival_us, (uint32_t)r) - h->timestamp;
            return;
        }
    }
    if (elapsed > RTP_RATE_GIVE_UP_US)
        s->rate_state = RATE_GAVE_UP;
}

static void rtpstats__jitter(struct rtpstats_stream *s, const struct rtp_header *h,
                             uint64_t arrival_us)
{
    uint32_t transit, jitter;
    int32_t d;

    if (s->rate_state == RATE_MEASURING) {
        rtpstats__estimate_rate(s, h, arrival_us);
        return;
    }
    if (s->rate_state != RATE_KNOWN)
        return;
    transit = rtpstats__arrival_ts(arrival_us, get(&s->clock_rate)) - h->timestamp;
    d = (int32_t)(transit - s->last_transit);
    s->last_transit = transit;
    if (d < 0)
        d = -d;
    jitter = get(&s->jitter_q4);
    set(&s->jitter_q4, jitter + (uint32_t)d - ((jitter + 8) >> 4));
}

static struct rtpstats_stream *rtpstats__slot(struct rtpstats *st, uint32_t ssrc, bool *fresh)
{
    *fresh = false;
    for (int i = 0; i < QR_SSRC_SLOTS; i++) {
        struct rtpstats_stream *s = &st->stream[i];

        if (!get(&s->used)) {
            *fresh = true;
            return s;
        }
        if (get(&s->ssrc) == ssrc)
            return s;
    }
    return NULL;
}

void rtpstats_update(struct rtpstats *st, const struct rtp_header *h, uint64_t arrival_us)
{
    bool fresh;
    struct rtpstats_stream *s = rtpstats__slot(st, h->ssrc, &fresh);
    uint32_t ext_max, udelta;

    if (s == NULL) {
        set(&st->untracked, get(&st->untracked) + 1);
        return;
    }
    if (fresh) {
        rtpstats__init_stream(s, h, arrival_us);
        return;
    }
    ext_max = get(&s->ext_max);
    udelta = (uint16_t)(h->seq - (uint16_t)ext_max);
    if (udelta == 0)
        return; /* duplicate */
    if (udelta < RTP_MAX_DROPOUT) {
        set(&s->ext_max, ext_max + udelta);
        set(&s->received, get(&s->received) + 1);
        rtpstats__jitter(s, h, arrival_us);
    } else if (udelta >= RTP_SEQ_MOD - RTP_MAX_MISORDER) {
        uint32_t ext = ext_max - (RTP_SEQ_MOD - udelta);

        if (ext < get(&s->ext_base))
            set(&s->ext_base, ext);
        set(&s->received, get(&s->received) + 1);
        set(&s->reordered, get(&s->reordered) + 1);
    } else if (h->seq == s->bad_seq) {
        /* Two packets in a row after a big jump: the sender restarted. */
        rtpstats__init_stream(s, h, arrival_us);
    } else {
        s->bad_seq = (uint32_t)(uint16_t)(h->seq + 1);
    }
}

int rtpstats_read(const struct rtpstats *st, struct rtpstats_summary *out, int max)
{
    int n = 0;

    for (int i = 0; i < QR_SSRC_SLOTS && n < max; i++) {
        const struct rtpstats_stream *s = &st->stream[i];
        struct rtpstats_summary *o = &out[n];

        if (!atomic_load_explicit(&s->used, memory_order_acquire))
            continue;
        o->ssrc = get(&s->ssrc);
        o->expected = get(&s->ext_max) - get(&s->ext_base) + 1;
        o->received = get(&s->received);
        o->lost = o->expected > o->received ? o->expected - o->received : 0;
        o->reordered = get(&s->reordered);
        o->clock_rate = get(&s->clock_rate);
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
