/* The RFC 4571 framing reader on arbitrary streams, fed the way the relay
 * feeds it (tcp.c): reads of any size into a buffer of QR_TCP_READ_BUFFER
 * bytes, whole frames cut, the rest moved to the front. Every split of the
 * stream must give the same frames and the same verdict as reading it in
 * one piece, and the buffer must never fill with no frame to cut. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quietroom/base/limits.h"
#include "quietroom/wire/tcpframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The stream in one piece: frame offsets and lengths up to the first
 * non-OK verdict, which is returned. */
static enum tcpframe_status whole(const uint8_t *s, size_t n, size_t *offs, size_t *lens,
                                  size_t *count)
{
    size_t off = 0, len;
    enum tcpframe_status st;

    *count = 0;
    while ((st = tcpframe_next(s + off, n - off, QR_TCP_FRAME_MAX, &len)) == TCPFRAME_OK) {
        if (len == 0 || len > QR_TCP_FRAME_MAX || off + TCPFRAME_HEADER + len > n)
            abort();
        offs[*count] = off + TCPFRAME_HEADER;
        lens[(*count)++] = len;
        off += TCPFRAME_HEADER + len;
    }
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static size_t offs[8192], lens[8192];
    static uint8_t buf[QR_TCP_READ_BUFFER];
    size_t count, have = 0, fed = 0, seen = 0, step;
    enum tcpframe_status want, got = TCPFRAME_PARTIAL;

    if (size < 1 || size > 8192)
        return 0;
    step = data[0] | 1u;
    data++;
    size--;
    want = whole(data, size, offs, lens, &count);
    while (fed < size && got == TCPFRAME_PARTIAL) {
        size_t room = sizeof(buf) - have, n = (step * (fed + 7)) % 3000 + 1, len;

        if (room == 0)
            abort(); /* full with no frame in it: the relay would read 0 bytes */
        n = n < room ? n : room;
        n = n < size - fed ? n : size - fed;
        memcpy(buf + have, data + fed, n);
        have += n;
        fed += n;
        while ((got = tcpframe_next(buf, have, QR_TCP_FRAME_MAX, &len)) == TCPFRAME_OK) {
            if (seen >= count || lens[seen] != len ||
                memcmp(buf + TCPFRAME_HEADER, data + offs[seen], len) != 0)
                abort();
            seen++;
            have -= TCPFRAME_HEADER + len;
            memmove(buf, buf + TCPFRAME_HEADER + len, have);
        }
    }
    if (seen != count || got != want)
        abort();
    return 0;
}
