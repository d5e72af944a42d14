/* STUN parser, integrity check and response builders on arbitrary bytes.
 * Whatever parses must survive integrity checking and being answered, and an
 * answer must never exceed the request's length (no amplification). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "quietroom/wire/creds.h"
#include "quietroom/wire/stun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct hmac *h;
    static const uint8_t key[] = "0123456789abcdef0123456789abcdef";
    struct sockaddr_in6 src = {.sin6_family = AF_INET6, .sin6_port = htons(5000)};
    uint8_t out[2048];
    struct stun_msg m;
    struct creds_leg leg;
    size_t n;

    if (h == NULL && (h = hmac_new(HMAC_SHA1)) == NULL)
        abort();
    if (stun_parse(data, size, &m) != STUN_PARSE_OK)
        return 0;
    (void)stun_check_integrity(data, &m, key, 32, h);
    if (m.username != NULL)
        (void)creds_decode_ufrag((const char *)m.username, m.username_len, &leg);
    n = stun_build_success(out, size, &m, (struct sockaddr *)&src, key, 32, h);
    if (n > size)
        abort();
    n = stun_build_error(out, size, &m, STUN_ERROR_UNKNOWN_ATTRIBUTE, key, 32, h);
    if (n > size)
        abort();
    if (n > 0 && stun_parse(out, n, &m) != STUN_PARSE_OK)
        abort(); /* what we build must parse */
    return 0;
}
