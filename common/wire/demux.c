/* First-byte demultiplexing. Lengths: STUN header 20, DTLS record header 13,
 * RTP fixed header 12, RTCP common header plus SSRC 8. */
#include "quietroom/wire/demux.h"

#define DEMUX_STUN_MIN 20
#define DEMUX_DTLS_MIN 13
#define DEMUX_RTP_MIN 12
#define DEMUX_RTCP_MIN 8

static const char *const demux_names[DEMUX_CLASS_COUNT] = {
    [DEMUX_STUN] = "stun",
    [DEMUX_ZRTP] = "zrtp",
    [DEMUX_DTLS] = "dtls",
    [DEMUX_TURN_CHANNEL] = "turn_channel",
    [DEMUX_RTP] = "rtp",
    [DEMUX_RTCP] = "rtcp",
    [DEMUX_QUIC] = "quic",
    [DEMUX_TOO_SHORT] = "too_short",
    [DEMUX_UNKNOWN] = "unknown",
};

const char *demux_class_name(enum demux_class c)
{
    return (unsigned)c < DEMUX_CLASS_COUNT ? demux_names[c] : "invalid";
}

static enum demux_class demux__need(enum demux_class c, size_t len, size_t min)
{
    return len < min ? DEMUX_TOO_SHORT : c;
}

enum demux_class demux_classify(const uint8_t *buf, size_t len)
{
    uint8_t b;

    if (len == 0)
        return DEMUX_UNKNOWN;
    b = buf[0];
    if (b <= 3)
        return demux__need(DEMUX_STUN, len, DEMUX_STUN_MIN);
    if (b >= 16 && b <= 19)
        return DEMUX_ZRTP;
    if (b >= 20 && b <= 63)
        return demux__need(DEMUX_DTLS, len, DEMUX_DTLS_MIN);
    if (b >= 64 && b <= 79)
        return DEMUX_TURN_CHANNEL;
    if (b >= 128 && b <= 191) {
        uint8_t pt;

        if (len < 2)
            return DEMUX_TOO_SHORT;
        /* RFC 5761 §4: RTCP packet types 192-223 collide with RTP payload
         * types 64-95 once the marker bit is masked off. */
        pt = buf[1] & 0x7F;
        if (pt >= 64 && pt <= 95)
            return demux__need(DEMUX_RTCP, len, DEMUX_RTCP_MIN);
        return demux__need(DEMUX_RTP, len, DEMUX_RTP_MIN);
    }
    if (b >= 80)
        return DEMUX_QUIC;
    return DEMUX_UNKNOWN;
}
