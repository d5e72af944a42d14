/* Demultiplexer, RTP header parser and RTP statistics on arbitrary bytes;
 * the statistics must stay self-consistent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quietroom/wire/demux.h"
#include "quietroom/wire/rtpstats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rtpstats st;
    struct rtpstats_summary s[QR_SSRC_SLOTS];
    struct rtp_header h;
    uint64_t at = 0;

    if (demux_classify(data, size) >= DEMUX_CLASS_COUNT)
        abort();
    rtpstats_reset(&st);
    /* Treat the input as a sequence of 16-byte pseudo-packets. */
    for (size_t off = 0; off + 16 <= size; off += 16) {
        if (!rtp_parse_header(data + off, 16, &h))
            continue;
        at += data[off + 12] * 1000u;
        rtpstats_update(&st, &h, at);
    }
    for (int i = 0, n = rtpstats_read(&st, s, QR_SSRC_SLOTS); i < n; i++) {
        if (s[i].lost > s[i].expected || s[i].loss_ratio < 0.0 || s[i].loss_ratio > 1.0)
            abort();
    }
    return 0;
}
