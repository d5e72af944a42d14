/* STUN message parsing and building (RFC 8489), limited to what ICE
 * connectivity checks use. Every length is checked before it is read. */
#include "quietroom/wire/stun.h"

#include <string.h>

#include <netinet/in.h>
#include <zlib.h>

#include "quietroom/base/bytes.h"

#define STUN_ATTR_HEADER_LEN 4
#define STUN_FINGERPRINT_ATTR_LEN 8
#define STUN_INTEGRITY_ATTR_LEN (STUN_ATTR_HEADER_LEN + STUN_INTEGRITY_LEN)

/* Comprehension-required attributes (type < 0x8000) that we understand or
 * knowingly ignore; any other one in a request earns a 420. */
static const uint16_t stun_known_required[] = {
    STUN_ATTR_MAPPED_ADDRESS,
    STUN_ATTR_USERNAME,
    STUN_ATTR_MESSAGE_INTEGRITY,
    STUN_ATTR_ERROR_CODE,
    STUN_ATTR_UNKNOWN_ATTRIBUTES,
    STUN_ATTR_REALM,
    STUN_ATTR_NONCE,
    STUN_ATTR_MESSAGE_INTEGRITY_SHA256,
    STUN_ATTR_PASSWORD_ALGORITHM,
    STUN_ATTR_USERHASH,
    STUN_ATTR_XOR_MAPPED_ADDRESS,
    STUN_ATTR_PRIORITY,
    STUN_ATTR_USE_CANDIDATE,
};

static const char *const stun_parse_names[] = {
    [STUN_PARSE_OK] = "ok",
    [STUN_PARSE_SHORT] = "short",
    [STUN_PARSE_NOT_STUN] = "not_stun",
    [STUN_PARSE_BAD_LENGTH] = "bad_length",
    [STUN_PARSE_BAD_ATTRIBUTE] = "bad_attribute",
    [STUN_PARSE_BAD_FINGERPRINT] = "bad_fingerprint",
    [STUN_PARSE_AFTER_FINGERPRINT] = "after_fingerprint",
};

const char *stun_parse_result_name(enum stun_parse_result r)
{
    if ((size_t)r >= sizeof(stun_parse_names) / sizeof(stun_parse_names[0]))
        return "unknown";
    return stun_parse_names[r];
}

static bool stun__is_known_required(uint16_t type)
{
    for (size_t i = 0; i < sizeof(stun_known_required) / sizeof(stun_known_required[0]); i++) {
        if (stun_known_required[i] == type)
            return true;
    }
    return false;
}

static uint32_t stun__fingerprint(const uint8_t *buf, size_t len)
{
    return (uint32_t)crc32(0L, buf, (uInt)len) ^ STUN_FINGERPRINT_XOR;
}

bool stun_xor_address(const uint8_t *v, size_t len, const uint8_t *txid,
                      struct sockaddr_storage *out)
{
    uint16_t port;

    if (len < 4)
        return false;
    port = bytes_get16(v + 2) ^ (uint16_t)(STUN_MAGIC_COOKIE >> 16);
    memset(out, 0, sizeof(*out));
    if (v[1] == 0x01 && len == 8) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;
        uint32_t a = bytes_get32(v + 4) ^ STUN_MAGIC_COOKIE;

        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        sin->sin_addr.s_addr = htonl(a);
        return true;
    }
    if (v[1] == 0x02 && len == 20) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
        uint8_t mask[16];

        bytes_put32(mask, STUN_MAGIC_COOKIE);
        memcpy(mask + 4, txid, STUN_TXID_LEN);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        for (int i = 0; i < 16; i++)
            sin6->sin6_addr.s6_addr[i] = v[4 + i] ^ mask[i];
        return true;
    }
    return false;
}

/* Reads one attribute's value into msg. Returns false if its size is wrong. */
static bool stun__read_attr(uint16_t type, const uint8_t *v, size_t len, struct stun_msg *msg)
{
    switch (type) {
    case STUN_ATTR_USERNAME:
        if (len > QR_STUN_USERNAME_MAX)
            return false;
        if (msg->username == NULL) {
            msg->username = v;
            msg->username_len = len;
        }
        return true;
    case STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
        if (len < 16 || len > 32 || len % 4 != 0)
            return false;
        msg->has_integrity_sha256 = true;
        return true;
    case STUN_ATTR_PRIORITY:
        if (len != 4)
            return false;
        if (!msg->has_priority) {
            msg->has_priority = true;
            msg->priority = bytes_get32(v);
        }
        return true;
    case STUN_ATTR_USE_CANDIDATE:
        if (len != 0)
            return false;
        msg->use_candidate = true;
        return true;
    case STUN_ATTR_ICE_CONTROLLING:
    case STUN_ATTR_ICE_CONTROLLED:
        if (len != 8)
            return false;
        if (!msg->ice_controlling && !msg->ice_controlled)
            msg->tiebreaker = bytes_get64(v);
        if (type == STUN_ATTR_ICE_CONTROLLING)
            msg->ice_controlling = true;
        else
            msg->ice_controlled = true;
        return true;
    case STUN_ATTR_ERROR_CODE:
        if (len < 4)
            return false;
        if (!msg->has_error) {
            msg->has_error = true;
            msg->error_code = (uint16_t)((v[2] & 0x07) * 100 + v[3]);
        }
        return true;
    case STUN_ATTR_XOR_MAPPED_ADDRESS:
        if (msg->has_mapped)
            return true;
        msg->has_mapped = stun_xor_address(v, len, msg->txid, &msg->mapped);
        return msg->has_mapped;
    default:
        if (type < 0x8000 && !stun__is_known_required(type) &&
            msg->n_unknown < QR_STUN_UNKNOWN_MAX)
            msg->unknown[msg->n_unknown++] = type;
        return true;
    }
}

enum stun_parse_result stun_parse(const uint8_t *buf, size_t len, struct stun_msg *msg)
{
    size_t pos = STUN_HEADER_LEN;
    bool after_integrity = false;
    uint16_t type;

    memset(msg, 0, sizeof(*msg));
    if (len < STUN_HEADER_LEN)
        return STUN_PARSE_SHORT;
    if ((buf[0] & 0xC0) != 0 || bytes_get32(buf + 4) != STUN_MAGIC_COOKIE)
        return STUN_PARSE_NOT_STUN;
    if (bytes_get16(buf + 2) % 4 != 0 || (size_t)bytes_get16(buf + 2) + STUN_HEADER_LEN != len)
        return STUN_PARSE_BAD_LENGTH;

    type = bytes_get16(buf);
    msg->method = (uint16_t)((type & 0x000F) | ((type & 0x00E0) >> 1) | ((type & 0x3E00) >> 2));
    msg->cls = (enum stun_class)(((type >> 4) & 0x1) | ((type >> 7) & 0x2));
    memcpy(msg->txid, buf + 8, STUN_TXID_LEN);
    msg->len = len;

    while (pos < len) {
        uint16_t atype, alen;
        size_t padded;

        if (msg->has_fingerprint)
            return STUN_PARSE_AFTER_FINGERPRINT;
        if (len - pos < STUN_ATTR_HEADER_LEN)
            return STUN_PARSE_BAD_ATTRIBUTE;
        atype = bytes_get16(buf + pos);
        alen = bytes_get16(buf + pos + 2);
        padded = ((size_t)alen + 3) & ~(size_t)3;
        if (len - pos - STUN_ATTR_HEADER_LEN < padded)
            return STUN_PARSE_BAD_ATTRIBUTE;

        if (atype == STUN_ATTR_FINGERPRINT) {
            if (alen != 4)
                return STUN_PARSE_BAD_ATTRIBUTE;
            if (bytes_get32(buf + pos + 4) != stun__fingerprint(buf, pos))
                return STUN_PARSE_BAD_FINGERPRINT;
            msg->has_fingerprint = true;
        } else if (atype == STUN_ATTR_MESSAGE_INTEGRITY && !after_integrity) {
            if (alen != STUN_INTEGRITY_LEN)
                return STUN_PARSE_BAD_ATTRIBUTE;
            msg->integrity_at = pos;
            after_integrity = true;
        } else if (!after_integrity || atype == STUN_ATTR_MESSAGE_INTEGRITY_SHA256) {
            /* RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY, other than
             * the SHA256 variant and FINGERPRINT, are ignored. */
            if (!stun__read_attr(atype, buf + pos + STUN_ATTR_HEADER_LEN, alen, msg))
                return STUN_PARSE_BAD_ATTRIBUTE;
        }
        pos += STUN_ATTR_HEADER_LEN + padded;
    }
    return STUN_PARSE_OK;
}

/* MESSAGE-INTEGRITY covers the message up to the attribute, with the header
 * length rewritten as if MESSAGE-INTEGRITY were the last attribute. */
static int stun__integrity(const uint8_t *buf, size_t at, const uint8_t *key, size_t key_len,
                           struct hmac *h, uint8_t *out)
{
    uint8_t header[STUN_HEADER_LEN];

    memcpy(header, buf, STUN_HEADER_LEN);
    bytes_put16(header + 2, (uint16_t)(at - STUN_HEADER_LEN + STUN_INTEGRITY_ATTR_LEN));
    if (hmac_begin(h, key, key_len) != 0 || hmac_update(h, header, sizeof(header)) != 0 ||
        hmac_update(h, buf + STUN_HEADER_LEN, at - STUN_HEADER_LEN) != 0)
        return -1;
    return hmac_end(h, out);
}

bool stun_check_integrity(const uint8_t *buf, const struct stun_msg *msg, const uint8_t *key,
                          size_t key_len, struct hmac *h)
{
    uint8_t mac[HMAC_SHA1_LEN];

    if (msg->integrity_at == 0 || hmac_size(h) != HMAC_SHA1_LEN)
        return false;
    if (stun__integrity(buf, msg->integrity_at, key, key_len, h, mac) != 0)
        return false;
    return hmac_equal(mac, buf + msg->integrity_at + STUN_ATTR_HEADER_LEN, HMAC_SHA1_LEN);
}

/* --- building ------------------------------------------------------------ */

void stun_writer_begin(struct stun_writer *w, uint8_t *buf, size_t cap, uint16_t method,
                       enum stun_class cls, const uint8_t *txid)
{
    uint16_t type = (uint16_t)((method & 0x000F) | ((method & 0x0070) << 1) |
                               ((method & 0x0F80) << 2) | ((cls & 0x1) << 4) | ((cls & 0x2) << 7));

    w->buf = buf;
    w->cap = cap;
    w->len = STUN_HEADER_LEN;
    w->failed = cap < STUN_HEADER_LEN;
    if (w->failed)
        return;
    bytes_put16(buf, type);
    bytes_put16(buf + 2, 0);
    bytes_put32(buf + 4, STUN_MAGIC_COOKIE);
    memcpy(buf + 8, txid, STUN_TXID_LEN);
}

/* Reserves an attribute of value length len and returns its value pointer. */
static uint8_t *stun__reserve(struct stun_writer *w, uint16_t type, size_t len)
{
    size_t padded = (len + 3) & ~(size_t)3;
    uint8_t *v;

    if (w->failed || len > 0xFFFF || w->cap - w->len < STUN_ATTR_HEADER_LEN + padded) {
        w->failed = true;
        return NULL;
    }
    bytes_put16(w->buf + w->len, type);
    bytes_put16(w->buf + w->len + 2, (uint16_t)len);
    v = w->buf + w->len + STUN_ATTR_HEADER_LEN;
    memset(v + len, 0, padded - len);
    w->len += STUN_ATTR_HEADER_LEN + padded;
    bytes_put16(w->buf + 2, (uint16_t)(w->len - STUN_HEADER_LEN));
    return v;
}

void stun_writer_attr(struct stun_writer *w, uint16_t type, const void *data, size_t len)
{
    uint8_t *v = stun__reserve(w, type, len);

    if (v != NULL && len > 0)
        memcpy(v, data, len);
}

void stun_writer_xor_address(struct stun_writer *w, uint16_t type, const struct sockaddr *sa)
{
    uint8_t *v;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

        if ((v = stun__reserve(w, type, 8)) == NULL)
            return;
        v[0] = 0;
        v[1] = 0x01;
        bytes_put16(v + 2, ntohs(sin->sin_port) ^ (uint16_t)(STUN_MAGIC_COOKIE >> 16));
        bytes_put32(v + 4, ntohl(sin->sin_addr.s_addr) ^ STUN_MAGIC_COOKIE);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        uint8_t mask[16];

        if ((v = stun__reserve(w, type, 20)) == NULL)
            return;
        bytes_put32(mask, STUN_MAGIC_COOKIE);
        memcpy(mask + 4, w->buf + 8, STUN_TXID_LEN);
        v[0] = 0;
        v[1] = 0x02;
        bytes_put16(v + 2, ntohs(sin6->sin6_port) ^ (uint16_t)(STUN_MAGIC_COOKIE >> 16));
        for (int i = 0; i < 16; i++)
            v[4 + i] = sin6->sin6_addr.s6_addr[i] ^ mask[i];
    } else {
        w->failed = true;
    }
}

void stun_writer_integrity(struct stun_writer *w, const uint8_t *key, size_t key_len,
                           struct hmac *h)
{
    size_t at = w->len;
    uint8_t *v = stun__reserve(w, STUN_ATTR_MESSAGE_INTEGRITY, STUN_INTEGRITY_LEN);

    if (v == NULL)
        return;
    if (hmac_size(h) != HMAC_SHA1_LEN || stun__integrity(w->buf, at, key, key_len, h, v) != 0)
        w->failed = true;
}

size_t stun_writer_finish(struct stun_writer *w, bool fingerprint)
{
    size_t at = w->len;
    uint8_t *v;

    if (!fingerprint)
        return w->failed ? 0 : w->len;
    if ((v = stun__reserve(w, STUN_ATTR_FINGERPRINT, 4)) == NULL)
        return 0;
    bytes_put32(v, stun__fingerprint(w->buf, at));
    return w->failed ? 0 : w->len;
}

const uint8_t *stun_find_attr(const uint8_t *buf, size_t len, uint16_t type, size_t *vlen)
{
    size_t pos = STUN_HEADER_LEN;

    while (len >= STUN_HEADER_LEN && len - pos >= STUN_ATTR_HEADER_LEN) {
        uint16_t t = bytes_get16(buf + pos), l = bytes_get16(buf + pos + 2);
        size_t padded = ((size_t)l + 3) & ~(size_t)3;

        if (len - pos - STUN_ATTR_HEADER_LEN < padded)
            return NULL;
        if (t == type) {
            *vlen = l;
            return buf + pos + STUN_ATTR_HEADER_LEN;
        }
        pos += STUN_ATTR_HEADER_LEN + padded;
    }
    return NULL;
}

static const char *stun__reason(enum stun_error_code code)
{
    switch (code) {
    case STUN_ERROR_BAD_REQUEST:
        return "Bad Request";
    case STUN_ERROR_UNAUTHENTICATED:
        return "Unauthenticated";
    case STUN_ERROR_UNKNOWN_ATTRIBUTE:
        return "Unknown Attribute";
    case STUN_ERROR_ROLE_CONFLICT:
        return "Role Conflict";
    }
    return "";
}

size_t stun_build_success(uint8_t *out, size_t cap, const struct stun_msg *req,
                          const struct sockaddr *src, const uint8_t *key, size_t key_len,
                          struct hmac *h)
{
    struct stun_writer w;

    stun_writer_begin(&w, out, cap, req->method, STUN_CLASS_SUCCESS, req->txid);
    stun_writer_xor_address(&w, STUN_ATTR_XOR_MAPPED_ADDRESS, src);
    stun_writer_integrity(&w, key, key_len, h);
    return stun_writer_finish(&w, true);
}

size_t stun_build_error(uint8_t *out, size_t cap, const struct stun_msg *req,
                        enum stun_error_code code, const uint8_t *key, size_t key_len,
                        struct hmac *h)
{
    const char *reason = stun__reason(code);
    size_t reason_len = strlen(reason);
    struct stun_writer w;
    uint8_t *v;

    stun_writer_begin(&w, out, cap, req->method, STUN_CLASS_ERROR, req->txid);
    if ((v = stun__reserve(&w, STUN_ATTR_ERROR_CODE, 4 + reason_len)) != NULL) {
        v[0] = 0;
        v[1] = 0;
        v[2] = (uint8_t)(code / 100);
        v[3] = (uint8_t)(code % 100);
        memcpy(v + 4, reason, reason_len);
    }
    if (code == STUN_ERROR_UNKNOWN_ATTRIBUTE &&
        (v = stun__reserve(&w, STUN_ATTR_UNKNOWN_ATTRIBUTES, 2 * (size_t)req->n_unknown)) != NULL) {
        for (unsigned i = 0; i < req->n_unknown; i++)
            bytes_put16(v + 2 * i, req->unknown[i]);
    }
    if (key != NULL)
        stun_writer_integrity(&w, key, key_len, h);
    return stun_writer_finish(&w, true);
}

size_t stun_build_request(uint8_t *out, size_t cap, const struct stun_request *r, struct hmac *h)
{
    struct stun_writer w;
    uint8_t v[8];

    stun_writer_begin(&w, out, cap, STUN_METHOD_BINDING, STUN_CLASS_REQUEST, r->txid);
    if (r->username != NULL)
        stun_writer_attr(&w, STUN_ATTR_USERNAME, r->username, strlen(r->username));
    if (r->has_priority) {
        bytes_put32(v, r->priority);
        stun_writer_attr(&w, STUN_ATTR_PRIORITY, v, 4);
    }
    if (r->use_candidate)
        stun_writer_attr(&w, STUN_ATTR_USE_CANDIDATE, NULL, 0);
    if (r->ice_controlling || r->ice_controlled) {
        bytes_put64(v, r->tiebreaker);
        stun_writer_attr(&w, r->ice_controlling ? STUN_ATTR_ICE_CONTROLLING : STUN_ATTR_ICE_CONTROLLED,
                  v, 8);
    }
    if (r->key != NULL)
        stun_writer_integrity(&w, r->key, r->key_len, h);
    if (r->fingerprint)
        return stun_writer_finish(&w, true);
    return w.failed ? 0 : w.len;
}
