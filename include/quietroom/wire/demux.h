/* RFC 7983 (with RFC 9443) demultiplexing of one UDP port by first byte,
 * plus the minimum length each protocol needs to be worth looking at. */
#ifndef QUIETROOM_DEMUX_H
#define QUIETROOM_DEMUX_H

#include <stddef.h>
#include <stdint.h>

enum demux_class {
    DEMUX_STUN,           /* 0-3 */
    DEMUX_ZRTP,           /* 16-19 */
    DEMUX_DTLS,           /* 20-63 */
    DEMUX_TURN_CHANNEL,   /* 64-79 */
    DEMUX_RTP,            /* 128-191, RTP payload type */
    DEMUX_RTCP,           /* 128-191, RTCP packet type 192-223 (RFC 5761) */
    DEMUX_QUIC,           /* 80-127 and 192-255 (RFC 9443) */
    DEMUX_TOO_SHORT,      /* right first byte, too short for its protocol */
    DEMUX_UNKNOWN,        /* unassigned first byte or empty datagram */
    DEMUX_CLASS_COUNT
};

/* Lengths: STUN header 20, DTLS record header 13, RTP fixed header 12, RTCP
 * common header plus SSRC 8. */
#define DEMUX_STUN_MIN 20
#define DEMUX_DTLS_MIN 13
#define DEMUX_RTP_MIN 12
#define DEMUX_RTCP_MIN 8

static inline enum demux_class demux__need(enum demux_class c, size_t len, size_t min)
{
    return len < min ? DEMUX_TOO_SHORT : c;
}

/* Classifies a datagram; reads at most its first two bytes and its length.
 * Inline: the kernel path's program (relay/bpf) classifies with it too. */
static inline enum demux_class demux_classify(const uint8_t *buf, size_t len)
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

#ifndef QR_BPF
const char *demux_class_name(enum demux_class c);
#endif

#endif
