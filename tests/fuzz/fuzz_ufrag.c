/* The relay's ufrag decoder and verifier on arbitrary USERNAME bytes, under
 * a fixed keyring, with version 1 accepted and refused. Whatever verifies
 * must re-encode to the same bytes (v2: the MAC is the only way in), and a
 * v1 ufrag must never verify while version 1 is refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quietroom/wire/creds.h"

#define FUZZ_NOW 1800000000u
#define FUZZ_TTL 86400u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct hmac *h;
    static struct keyring kr;
    const char *u = (const char *)data;
    char pwd[CREDS_PWD_LEN + 1], again[CREDS_UFRAG_LEN + 1];
    struct creds_leg leg;
    enum creds_status s;

    if (h == NULL) {
        char err[128];

        if ((h = hmac_new(HMAC_SHA256)) == NULL ||
            keyring_parse("2 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
                          "1 ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n",
                          &kr, err, sizeof(err)) != 0)
            abort();
    }
    if (creds_status_name(creds_decode_ufrag(u, size, &leg)) == NULL)
        abort();
    for (int accept_v1 = 0; accept_v1 <= 1; accept_v1++) {
        s = creds_verify(&kr, u, size, FUZZ_NOW, FUZZ_TTL, accept_v1, h, &leg, pwd);
        if (s != CREDS_OK)
            continue;
        if (leg.version == CREDS_VERSION_V1 && !accept_v1)
            abort();
        if (strlen(pwd) != CREDS_PWD_LEN || size != creds_ufrag_len(leg.version))
            abort();
        if (creds_encode_ufrag(&leg, keyring_find(&kr, leg.kid), h, again) != (int)size ||
            memcmp(again, u, size) != 0)
            abort();
    }
    return 0;
}
