/* The shape of a damaged audit line (audit_json) on arbitrary bytes. Beyond
 * not crashing: a fragment's every prefix is a fragment too (a crash can
 * cut anywhere), a fragment is never complete JSON, and a tail seal found
 * is exactly the line's last 44 base64 characters before "}. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "quietroom/audit/audit_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz__fragment(const char *buf, size_t len)
{
    json_t *obj;

    if (!audit_json_is_fragment(buf, len))
        return;
    if (!audit_json_is_fragment(buf, len / 2 > 0 ? len / 2 : 1) ||
        (len > 1 && !audit_json_is_fragment(buf, len - 1)))
        abort();
    obj = json_loadb(buf, len, 0, NULL);
    if (obj != NULL)
        abort();
}

static void fuzz__tail(const char *buf, size_t len)
{
    char mac[AUDIT_MAC_B64];

    memset(mac, 'Z', sizeof(mac));
    if (!audit_json_tail_mac(buf, len, mac))
        return;
    if (len < AUDIT_MAC_B64 + 1 || mac[AUDIT_MAC_B64 - 1] != '\0' ||
        memcmp(mac, buf + len - AUDIT_MAC_B64 - 1, AUDIT_MAC_B64 - 1) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;

    fuzz__fragment(buf, size);
    fuzz__tail(buf, size);
    return 0;
}
