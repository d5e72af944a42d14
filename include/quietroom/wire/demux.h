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

/* Classifies a datagram; reads at most its first two bytes and its length. */
enum demux_class demux_classify(const uint8_t *buf, size_t len);
const char *demux_class_name(enum demux_class c);

#endif
