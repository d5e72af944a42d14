/* RFC 4571 framing, as RFC 6544 uses it for ICE-TCP: every STUN, DTLS, RTP
 * or RTCP packet on a TCP connection is preceded by its length in two bytes,
 * network order. A core with no I/O: the reader looks at the bytes a
 * connection has gathered and says what the next frame is. */
#ifndef QUIETROOM_TCPFRAME_H
#define QUIETROOM_TCPFRAME_H

#include <stddef.h>
#include <stdint.h>

#define TCPFRAME_HEADER 2

enum tcpframe_status {
    TCPFRAME_OK,          /* a whole frame: payload at buf + TCPFRAME_HEADER */
    TCPFRAME_PARTIAL,     /* not all of it yet: read more */
    TCPFRAME_EMPTY,       /* a zero length: no packet is empty, the stream is not ours */
    TCPFRAME_TOO_LARGE,   /* a length over the reader's maximum: never read past it */
};

/* Looks at the len bytes gathered at buf. On TCPFRAME_OK, *payload_len is
 * the frame's payload length and the frame takes TCPFRAME_HEADER +
 * *payload_len bytes of buf. A length over max is TCPFRAME_TOO_LARGE as soon
 * as its header is in, without waiting for the payload: a stream that
 * declares one is closed, not buffered. */
enum tcpframe_status tcpframe_next(const uint8_t *buf, size_t len, size_t max,
                                   size_t *payload_len);

/* Writes the header of a payload_len-byte frame (payload_len <= 65535). */
void tcpframe_header(uint8_t out[TCPFRAME_HEADER], size_t payload_len);

const char *tcpframe_status_name(enum tcpframe_status s);

#endif
