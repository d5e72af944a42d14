/* STUN (RFC 8489) codec for ICE connectivity checks (RFC 8445): parses and
 * builds messages in caller-owned buffers; no I/O and no allocation. */
#ifndef QUIETROOM_STUN_H
#define QUIETROOM_STUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "quietroom/base/hmac.h"
#include "quietroom/base/limits.h"

#define STUN_HEADER_LEN 20
#define STUN_TXID_LEN 12
#define STUN_MAGIC_COOKIE 0x2112A442u
#define STUN_FINGERPRINT_XOR 0x5354554eu
#define STUN_INTEGRITY_LEN 20

#define STUN_METHOD_BINDING 0x001

enum stun_class {
    STUN_CLASS_REQUEST = 0,
    STUN_CLASS_INDICATION = 1,
    STUN_CLASS_SUCCESS = 2,
    STUN_CLASS_ERROR = 3,
};

enum stun_attr_type {
    STUN_ATTR_MAPPED_ADDRESS = 0x0001,
    STUN_ATTR_USERNAME = 0x0006,
    STUN_ATTR_MESSAGE_INTEGRITY = 0x0008,
    STUN_ATTR_ERROR_CODE = 0x0009,
    STUN_ATTR_UNKNOWN_ATTRIBUTES = 0x000A,
    STUN_ATTR_REALM = 0x0014,
    STUN_ATTR_NONCE = 0x0015,
    STUN_ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C,
    STUN_ATTR_PASSWORD_ALGORITHM = 0x001D,
    STUN_ATTR_USERHASH = 0x001E,
    STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020,
    STUN_ATTR_PRIORITY = 0x0024,
    STUN_ATTR_USE_CANDIDATE = 0x0025,
    STUN_ATTR_SOFTWARE = 0x8022,
    STUN_ATTR_FINGERPRINT = 0x8028,
    STUN_ATTR_ICE_CONTROLLED = 0x8029,
    STUN_ATTR_ICE_CONTROLLING = 0x802A,
};

enum stun_error_code {
    STUN_ERROR_BAD_REQUEST = 400,
    STUN_ERROR_UNAUTHENTICATED = 401,
    STUN_ERROR_UNKNOWN_ATTRIBUTE = 420,
    STUN_ERROR_ROLE_CONFLICT = 487,
};

/* Why a datagram is not an acceptable STUN message. */
enum stun_parse_result {
    STUN_PARSE_OK = 0,
    STUN_PARSE_SHORT,             /* shorter than a header */
    STUN_PARSE_NOT_STUN,          /* top bits or magic cookie wrong */
    STUN_PARSE_BAD_LENGTH,        /* length field disagrees with datagram */
    STUN_PARSE_BAD_ATTRIBUTE,     /* attribute overruns or has a wrong size */
    STUN_PARSE_BAD_FINGERPRINT,   /* FINGERPRINT present but wrong */
    STUN_PARSE_AFTER_FINGERPRINT, /* an attribute follows FINGERPRINT */
};

/* A parsed message. Pointers point into the parsed buffer. */
struct stun_msg {
    uint16_t method;
    enum stun_class cls;
    uint8_t txid[STUN_TXID_LEN];
    size_t len;

    const uint8_t *username;
    size_t username_len;
    size_t integrity_at;        /* offset of MESSAGE-INTEGRITY, 0 if absent */
    bool has_integrity_sha256;
    bool has_fingerprint;
    bool use_candidate;
    bool has_priority;
    uint32_t priority;
    bool ice_controlling;
    bool ice_controlled;
    uint64_t tiebreaker;
    uint16_t unknown[QR_STUN_UNKNOWN_MAX]; /* comprehension-required, not understood */
    unsigned n_unknown;

    /* responses (read by clients) */
    bool has_error;
    uint16_t error_code;
    bool has_mapped;
    struct sockaddr_storage mapped;
};

/* Parses one datagram that must be exactly one STUN message. A present
 * FINGERPRINT is verified here (cheap, and RFC 7983 demux depends on it). */
enum stun_parse_result stun_parse(const uint8_t *buf, size_t len, struct stun_msg *msg);
const char *stun_parse_result_name(enum stun_parse_result r);

/* Checks MESSAGE-INTEGRITY (HMAC-SHA1, short-term key) of a parsed message;
 * h must be an HMAC_SHA1 context. Returns true if present and correct. */
bool stun_check_integrity(const uint8_t *buf, const struct stun_msg *msg, const uint8_t *key,
                          size_t key_len, struct hmac *h);

/* Binding success response to req: XOR-MAPPED-ADDRESS of src,
 * MESSAGE-INTEGRITY under key, FINGERPRINT. Returns its length, 0 if cap is
 * too small or hashing failed. */
size_t stun_build_success(uint8_t *out, size_t cap, const struct stun_msg *req,
                          const struct sockaddr *src, const uint8_t *key, size_t key_len,
                          struct hmac *h);

/* Error response to req with code (and UNKNOWN-ATTRIBUTES for 420). Adds
 * MESSAGE-INTEGRITY when key is not NULL, then FINGERPRINT. Returns its
 * length or 0. */
size_t stun_build_error(uint8_t *out, size_t cap, const struct stun_msg *req,
                        enum stun_error_code code, const uint8_t *key, size_t key_len,
                        struct hmac *h);

/* What a client puts in a Binding request (tests, load tester, prober). */
struct stun_request {
    uint8_t txid[STUN_TXID_LEN];
    const char *username;       /* "RELAYUFRAG:LOCALUFRAG"; NULL to omit */
    const uint8_t *key;         /* NULL to omit MESSAGE-INTEGRITY */
    size_t key_len;
    bool has_priority;
    uint32_t priority;
    bool use_candidate;
    bool ice_controlling;
    bool ice_controlled;
    uint64_t tiebreaker;
    bool fingerprint;
};

/* Builds a Binding request. Returns its length or 0. */
size_t stun_build_request(uint8_t *out, size_t cap, const struct stun_request *r, struct hmac *h);

/* --- generic messages (TURN clients in the load tester) ---------------------
 * A writer appends attributes to a message in a caller-owned buffer; any
 * overflow sticks and stun_writer_finish then returns 0. */
struct stun_writer {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool failed;
};

void stun_writer_begin(struct stun_writer *w, uint8_t *buf, size_t cap, uint16_t method,
                       enum stun_class cls, const uint8_t *txid);
void stun_writer_attr(struct stun_writer *w, uint16_t type, const void *data, size_t len);
void stun_writer_xor_address(struct stun_writer *w, uint16_t type, const struct sockaddr *sa);
void stun_writer_integrity(struct stun_writer *w, const uint8_t *key, size_t key_len,
                           struct hmac *h);
/* Adds FINGERPRINT if asked; returns the message length or 0. */
size_t stun_writer_finish(struct stun_writer *w, bool fingerprint);

/* Finds the first attribute of type in a message that stun_parse accepted;
 * returns its value and length, or NULL. */
const uint8_t *stun_find_attr(const uint8_t *buf, size_t len, uint16_t type, size_t *vlen);
/* Decodes an XOR-*-ADDRESS value (txid from the message). */
bool stun_xor_address(const uint8_t *v, size_t len, const uint8_t *txid,
                      struct sockaddr_storage *out);

#endif
