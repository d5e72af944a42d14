/* Names of the first-byte classes (demux_classify is inline in demux.h). */
#include "quietroom/wire/demux.h"

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
