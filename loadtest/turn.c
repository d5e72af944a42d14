/* A TURN client (RFC 8656) for the coturn arm of the benchmark: each leg
 * allocates a relayed address with long-term credentials, permits its
 * peer's relayed address, binds a channel to it and then sends ChannelData.
 * Legs go through each step together, retrying what goes unanswered. */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "lt.h"
#include "quietroom/base/bytes.h"
#include "quietroom/wire/stun.h"

#define TURN_ALLOCATE 0x003
#define TURN_CREATE_PERMISSION 0x008
#define TURN_CHANNEL_BIND 0x009
#define TURN_ATTR_CHANNEL_NUMBER 0x000C
#define TURN_ATTR_LIFETIME 0x000D
#define TURN_ATTR_XOR_PEER_ADDRESS 0x0012
#define TURN_ATTR_XOR_RELAYED_ADDRESS 0x0016
#define TURN_ATTR_REQUESTED_TRANSPORT 0x0019
#define TURN_CHANNEL_FIRST 0x4000
#define TURN_TRIES 20
#define TURN_WAIT_MS 200
#define TURN_LIFETIME_S 3600

enum turn_step { STEP_CHALLENGE, STEP_ALLOCATE, STEP_PERMIT, STEP_BIND, STEP_DONE };

struct turn_ctx {
    struct lt_thread *t;
    struct hmac *sha1;
    uint8_t key[16];            /* MD5(user:realm:pass), once the realm is known */
    bool have_key;
};

static void turn__key(struct turn_ctx *c, const char *realm)
{
    char text[512];

    snprintf(text, sizeof(text), "%s:%s:%s", c->t->opt->turn_user, realm, c->t->opt->turn_pass);
    EVP_Digest(text, strlen(text), c->key, NULL, EVP_md5(), NULL);
    c->have_key = true;
}

/* Builds the request for the leg's current step. */
static size_t turn__request(struct turn_ctx *c, struct lt_leg *l, enum turn_step step,
                            uint8_t *buf, size_t cap)
{
    static const uint8_t udp[4] = {17, 0, 0, 0};
    uint16_t method = step <= STEP_ALLOCATE ? TURN_ALLOCATE
                      : step == STEP_PERMIT ? TURN_CREATE_PERMISSION
                                            : TURN_CHANNEL_BIND;
    struct stun_writer w;
    uint8_t v[4];

    RAND_bytes(l->txid, sizeof(l->txid));
    stun_writer_begin(&w, buf, cap, method, STUN_CLASS_REQUEST, l->txid);
    if (method == TURN_ALLOCATE) {
        stun_writer_attr(&w, TURN_ATTR_REQUESTED_TRANSPORT, udp, sizeof(udp));
        bytes_put32(v, TURN_LIFETIME_S);
        stun_writer_attr(&w, TURN_ATTR_LIFETIME, v, 4);
    }
    if (step == STEP_BIND) {
        bytes_put16(v, l->channel);
        bytes_put16(v + 2, 0);
        stun_writer_attr(&w, TURN_ATTR_CHANNEL_NUMBER, v, 4);
    }
    if (step >= STEP_PERMIT)
        stun_writer_xor_address(&w, TURN_ATTR_XOR_PEER_ADDRESS, &l->peer->relayed.sa);
    if (step != STEP_CHALLENGE) {
        stun_writer_attr(&w, STUN_ATTR_USERNAME, c->t->opt->turn_user,
                         strlen(c->t->opt->turn_user));
        stun_writer_attr(&w, STUN_ATTR_REALM, l->realm, strlen(l->realm));
        stun_writer_attr(&w, STUN_ATTR_NONCE, l->nonce, strlen(l->nonce));
        stun_writer_integrity(&w, c->key, sizeof(c->key), c->sha1);
    }
    return stun_writer_finish(&w, true);
}

static void turn__copy_attr(const uint8_t *buf, size_t len, uint16_t type, char *out, size_t cap)
{
    size_t vlen;
    const uint8_t *v = stun_find_attr(buf, len, type, &vlen);

    if (v != NULL && vlen < cap) {
        memcpy(out, v, vlen);
        out[vlen] = '\0';
    }
}

/* Handles an answer for leg l; returns true when its step is done. */
static bool turn__answer(struct turn_ctx *c, struct lt_leg *l, enum turn_step step,
                         const uint8_t *buf, size_t len)
{
    struct sockaddr_storage ss;
    struct stun_msg m;
    size_t vlen;
    const uint8_t *v;

    if (stun_parse(buf, len, &m) != STUN_PARSE_OK || memcmp(m.txid, l->txid, 12) != 0)
        return false;
    if (m.cls == STUN_CLASS_ERROR && (m.error_code == 401 || m.error_code == 438)) {
        /* A challenge, or a stale nonce: take the realm and nonce, retry. */
        turn__copy_attr(buf, len, STUN_ATTR_REALM, l->realm, sizeof(l->realm));
        turn__copy_attr(buf, len, STUN_ATTR_NONCE, l->nonce, sizeof(l->nonce));
        if (!c->have_key && l->realm[0] != '\0')
            turn__key(c, l->realm);
        return step == STEP_CHALLENGE;
    }
    if (m.cls != STUN_CLASS_SUCCESS ||
        !stun_check_integrity(buf, &m, c->key, sizeof(c->key), c->sha1))
        return false;
    if (step == STEP_ALLOCATE) {
        v = stun_find_attr(buf, len, TURN_ATTR_XOR_RELAYED_ADDRESS, &vlen);
        if (v == NULL || !stun_xor_address(v, vlen, m.txid, &ss))
            return false;
        memcpy(&l->relayed, &ss, sizeof(l->relayed));
    }
    return true;
}

/* Runs one step for every leg; returns the number left undone. */
static unsigned turn__step(struct turn_ctx *c, enum turn_step step)
{
    struct lt_thread *t = c->t;
    unsigned pending = t->n_legs;

    for (unsigned i = 0; i < t->n_legs; i++)
        t->legs[i].turn_state = (uint8_t)step;
    for (int attempt = 0; attempt < TURN_TRIES && pending > 0; attempt++) {
        uint64_t until = lt_now_ns() + TURN_WAIT_MS * 1000000ull;

        for (unsigned i = 0; i < t->n_legs; i++) {
            struct lt_leg *l = &t->legs[i];
            uint8_t buf[512];
            size_t n;

            if (l->turn_state == step && (n = turn__request(c, l, step, buf, sizeof(buf))) > 0)
                lt_send_from(t, l, &t->opt->server, buf, n);
        }
        while (pending > 0 && lt_now_ns() < until) {
            uint8_t buf[LT_PACKET_MAX];
            union netaddr from;
            struct lt_leg *l;
            int n = lt_recv_one(t, buf, sizeof(buf), 10, &l, &from);

            if (n <= 0 || l == NULL || l->turn_state != step)
                continue;
            if (turn__answer(c, l, step, buf, (size_t)n)) {
                l->turn_state = (uint8_t)(step + 1);
                pending--;
            }
        }
    }
    return pending;
}

int lt_turn_setup(struct lt_thread *t)
{
    struct turn_ctx c = {.t = t, .sha1 = hmac_new(HMAC_SHA1)};
    unsigned left = 0;

    if (c.sha1 == NULL)
        return -1;
    /* Channel numbers belong to an allocation: every leg may use the first. */
    for (unsigned i = 0; i < t->n_legs; i++)
        t->legs[i].channel = TURN_CHANNEL_FIRST;
    for (enum turn_step step = STEP_CHALLENGE; step < STEP_DONE && left == 0; step++)
        left = turn__step(&c, step);
    for (unsigned i = 0; i < t->n_legs; i++)
        t->legs[i].ready = left == 0;
    t->setup_failed = left;
    hmac_free(c.sha1);
    return left == 0 ? 0 : -1;
}
