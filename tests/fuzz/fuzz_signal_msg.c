/* The signaling message parser on arbitrary bytes: whatever it accepts has
 * exactly the fields its type requires, within their limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "quietroom/base/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct msg *m)
{
    if ((unsigned)m->type >= MSG_TYPE_COUNT)
        abort();
    if (m->type == MSG_AUTH && (m->token == NULL || strlen(m->token) > QR_TOKEN_MAX))
        abort();
    if (m->type == MSG_RESUME && m->resume == NULL)
        abort();
    if ((m->type == MSG_OFFER || m->type == MSG_ANSWER) &&
        (m->to == NULL || m->sdp == NULL || m->sdp_len > QR_SDP_MAX ||
         strlen(m->sdp) != m->sdp_len))
        abort();
    if ((m->type == MSG_ADMIT || m->type == MSG_REMOVE || m->type == MSG_DECLINE) &&
        (m->participant == NULL || strlen(m->participant) > 16))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct msg m;

    if (protocol_parse((const char *)data, size, &m) == PROTO_OK) {
        check(&m);
        msg_free(&m);
    }
    return 0;
}
