/* Sealing and checking audit lines. The MAC covers the exact bytes written,
 * so verification needs no canonical JSON: the line minus its trailing
 * ,"mac":"..." member, closed again with '}', is what was sealed. */
#include "quietroom/audit/audit_record.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define AUDIT_LABEL "quietroom audit v1\n"
#define AUDIT_MAC_MEMBER ",\"mac\":\""

static int audit_record__mac(const struct keyring_key *key, const char *text, size_t len,
                             struct hmac *h, char *out)
{
    uint8_t mac[HMAC_SHA256_LEN];

    if (hmac_begin(h, key->secret, key->len) != 0 ||
        hmac_update(h, AUDIT_LABEL, strlen(AUDIT_LABEL)) != 0 || hmac_update(h, text, len) != 0 ||
        hmac_end(h, mac) != 0)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, mac, sizeof(mac));
    return 0;
}

char *audit_record_seal(json_t *ev, uint64_t seq, const struct keyring_key *key,
                        const char *prev, struct hmac *h, char *mac, size_t *len)
{
    char *text, *line;
    size_t n;

    json_object_set_new(ev, "seq", json_integer((json_int_t)seq));
    json_object_set_new(ev, "kid", json_integer(key->id));
    json_object_set_new(ev, "prev", json_string(prev));
    if ((text = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
        return NULL;
    n = strlen(text);
    if (audit_record__mac(key, text, n, h, mac) != 0 ||
        (line = malloc(n + strlen(AUDIT_MAC_MEMBER) + AUDIT_MAC_B64 + 4)) == NULL) {
        free(text);
        return NULL;
    }
    /* text ends in '}': replace it with the mac member. */
    memcpy(line, text, n - 1);
    *len = (size_t)sprintf(line + n - 1, "%s%s\"}\n", AUDIT_MAC_MEMBER, mac) + n - 1;
    free(text);
    return line;
}

/* Reads the members the seal depends on; false if any is missing. */
static bool audit_record__fields(struct audit_line *out)
{
    json_t *seq = json_object_get(out->obj, "seq"), *kid = json_object_get(out->obj, "kid");
    const char *prev = json_string_value(json_object_get(out->obj, "prev"));
    const char *mac = json_string_value(json_object_get(out->obj, "mac"));

    out->type = json_string_value(json_object_get(out->obj, "type"));
    if (!json_is_integer(seq) || json_integer_value(seq) < 1 || !json_is_integer(kid) ||
        prev == NULL || strlen(prev) != AUDIT_MAC_B64 - 1 || mac == NULL ||
        strlen(mac) != AUDIT_MAC_B64 - 1)
        return false;
    out->seq = (uint64_t)json_integer_value(seq);
    out->kid = (int)json_integer_value(kid);
    memcpy(out->prev, prev, AUDIT_MAC_B64);
    memcpy(out->mac, mac, AUDIT_MAC_B64);
    return true;
}

enum audit_line_status audit_record_open(const char *line, size_t len, const struct keyring *kr,
                                         struct hmac *h, struct audit_line *out)
{
    size_t tail = strlen(AUDIT_MAC_MEMBER) + AUDIT_MAC_B64 - 1 + 2;
    const struct keyring_key *key;
    char expect[AUDIT_MAC_B64], *text;
    json_error_t jerr;
    bool match;

    memset(out, 0, sizeof(*out));
    out->kid = -1;
    out->obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (out->obj == NULL || !json_is_object(out->obj)) {
        json_decref(out->obj);
        out->obj = NULL;
        return AUDIT_LINE_NOT_JSON;
    }
    /* The mac member must be the last thing on the line, as written. */
    if (!audit_record__fields(out) || len < tail + 2 ||
        memcmp(line + len - tail, AUDIT_MAC_MEMBER, strlen(AUDIT_MAC_MEMBER)) != 0)
        return AUDIT_LINE_NO_SEAL;
    if (out->kid < 0 || out->kid > 255 || (key = keyring_find(kr, (uint8_t)out->kid)) == NULL)
        return AUDIT_LINE_UNKNOWN_KEY;
    if ((text = malloc(len - tail + 2)) == NULL)
        return AUDIT_LINE_BAD_MAC;
    memcpy(text, line, len - tail);
    text[len - tail] = '}';
    match = audit_record__mac(key, text, len - tail + 1, h, expect) == 0 &&
            hmac_equal((const uint8_t *)expect, (const uint8_t *)out->mac, AUDIT_MAC_B64 - 1);
    free(text);
    return match ? AUDIT_LINE_OK : AUDIT_LINE_BAD_MAC;
}

void audit_line_free(struct audit_line *l)
{
    json_decref(l->obj);
    l->obj = NULL;
}
