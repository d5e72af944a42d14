/* RFC 4571 framing reader and writer. */
#include "quietroom/wire/tcpframe.h"

enum tcpframe_status tcpframe_next(const uint8_t *buf, size_t len, size_t max,
                                   size_t *payload_len)
{
    size_t n;

    if (len < TCPFRAME_HEADER)
        return TCPFRAME_PARTIAL;
    n = (size_t)buf[0] << 8 | buf[1];
    if (n == 0)
        return TCPFRAME_EMPTY;
    if (n > max)
        return TCPFRAME_TOO_LARGE;
    if (len - TCPFRAME_HEADER < n)
        return TCPFRAME_PARTIAL;
    *payload_len = n;
    return TCPFRAME_OK;
}

void tcpframe_header(uint8_t out[TCPFRAME_HEADER], size_t payload_len)
{
    out[0] = (uint8_t)(payload_len >> 8);
    out[1] = (uint8_t)payload_len;
}

const char *tcpframe_status_name(enum tcpframe_status s)
{
    switch (s) {
    case TCPFRAME_OK:
        return "ok";
    case TCPFRAME_PARTIAL:
        return "partial";
    case TCPFRAME_EMPTY:
        return "empty";
    case TCPFRAME_TOO_LARGE:
        return "too_large";
    }
    return "unknown";
}
