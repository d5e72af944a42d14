/* Reception statistics after RFC 3550 appendix A, adapted to a relay that
 * does not know the SDP: the clock rate is estimated from timestamps. The
 * writer is rtpstats_core.h, shared with the kernel path's program. */
#include "quietroom/wire/rtpstats.h"

#include <string.h>

#include "quietroom/wire/rtpstats_core.h"

bool rtp_parse_header(const uint8_t *buf, size_t len, struct rtp_header *h)
{
    if (len < RTP_HEADER_LEN || !rtp_header_fits(buf[0], len))
        return false;
    rtp_header_decode(buf, h);
    return true;
}

bool rtpstats_update(struct rtpstats *st, const struct rtp_header *h, uint64_t arrival_us)
{
    return rtpstats_core_update(st, h, arrival_us);
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
        base = RTPSTATS_LOAD(&s->base_seq);
        o->ssrc = RTPSTATS_LOAD(&s->ssrc);
        o->expected = RTPSTATS_LOAD(&s->ext_max) - base + 1;
        o->received = RTPSTATS_LOAD(&s->received);
        o->lost = o->expected > o->received ? o->expected - o->received : 0;
        o->reordered = RTPSTATS_LOAD(&s->reordered);
        o->clock_rate = rtpstats__rate(s);
        o->loss_ratio = o->expected ? (double)o->lost / o->expected : 0.0;
        o->jitter_ms = o->clock_rate ? (RTPSTATS_LOAD(&s->jitter_q4) / 16.0) * 1000.0 / o->clock_rate
                                     : -1.0;
        n++;
    }
    return n;
}

void rtpstats_copy(struct rtpstats *dst, const struct rtpstats *src)
{
    memcpy(dst, src, sizeof(*dst));
}

void rtpstats_reset(struct rtpstats *st)
{
    memset(st, 0, sizeof(*st));
}
