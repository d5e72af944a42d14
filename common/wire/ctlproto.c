/* Control protocol helpers and the blocking client. Both sides prove the
 * secret over fresh nonces, so neither a replayed session nor an impostor
 * relay reporting fake load is accepted. */
#include "quietroom/wire/ctlproto.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "quietroom/base/clock.h"
#include "quietroom/base/limits.h"
#include "quietroom/base/netaddr.h"

static const char *const ctlproto_labels[] = {
    [CTLPROTO_CLIENT] = "quietroom control v1 client",
    [CTLPROTO_SERVER] = "quietroom control v1 server",
};

int ctlproto_proof(const struct keyring_key *key, enum ctlproto_role role,
                   const uint8_t *server_nonce, const uint8_t *client_nonce, struct hmac *h,
                   char *out)
{
    uint8_t mac[HMAC_SHA256_LEN];
    const char *label = ctlproto_labels[role];

    if (hmac_size(h) != HMAC_SHA256_LEN || hmac_begin(h, key->secret, key->len) != 0 ||
        hmac_update(h, label, strlen(label) + 1) != 0 ||
        hmac_update(h, server_nonce, CTLPROTO_NONCE_LEN) != 0 ||
        hmac_update(h, client_nonce, CTLPROTO_NONCE_LEN) != 0 || hmac_end(h, mac) != 0)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, mac, sizeof(mac));
    return 0;
}

int ctlproto_nonce(uint8_t *raw, char *b64)
{
    if (RAND_bytes(raw, CTLPROTO_NONCE_LEN) != 1)
        return -1;
    EVP_EncodeBlock((unsigned char *)b64, raw, CTLPROTO_NONCE_LEN);
    return 0;
}

int ctlproto_nonce_decode(const char *b64, uint8_t *raw)
{
    uint8_t tmp[CTLPROTO_NONCE_LEN + 3];

    /* 32 bytes encode to 44 characters ending in one '='. */
    if (b64 == NULL || strlen(b64) != CTLPROTO_B64_LEN - 1 || b64[43] != '=' || b64[42] == '=')
        return -1;
    if (EVP_DecodeBlock(tmp, (const unsigned char *)b64, CTLPROTO_B64_LEN - 1) !=
        CTLPROTO_NONCE_LEN + 1)
        return -1;
    memcpy(raw, tmp, CTLPROTO_NONCE_LEN);
    return 0;
}

/* --- client ---------------------------------------------------------------- */

struct ctlclient {
    int fd;
    json_int_t next_id;
    char buf[QR_CONTROL_OUT_MAX];
    size_t len;
};

static int ctlclient__connect_fd(const char *addr, int timeout_ms, char *err, size_t errlen)
{
    union netaddr a;
    struct pollfd p;
    int fd, soerr = 0;
    socklen_t sl = sizeof(soerr);

    if (netaddr_parse(addr, &a) != 0) {
        snprintf(err, errlen, "control address \"%s\" is not ADDR:PORT", addr);
        return -1;
    }
    if ((fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        goto fail;
    if (connect(fd, &a.sa, netaddr_len(&a)) != 0 && errno != EINPROGRESS)
        goto fail;
    p = (struct pollfd){.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, timeout_ms) != 1) {
        errno = ETIMEDOUT;
        goto fail;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
        errno = soerr ? soerr : errno;
        goto fail;
    }
    return fd;
fail:
    snprintf(err, errlen, "connect %s: %s", addr, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

static int ctlclient__send(struct ctlclient *c, json_t *msg, char *err, size_t errlen)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    size_t len, off = 0;
    int rc = -1;

    if (text == NULL) {
        snprintf(err, errlen, "cannot encode request");
        return -1;
    }
    len = strlen(text);
    text[len] = '\n'; /* replaces the NUL; length known */
    while (off < len + 1) {
        ssize_t n = send(c->fd, text + off, len + 1 - off, MSG_NOSIGNAL);

        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd p = {.fd = c->fd, .events = POLLOUT};

            poll(&p, 1, 1000);
            continue;
        }
        if (n <= 0) {
            snprintf(err, errlen, "send: %s", strerror(errno));
            goto out;
        }
        off += (size_t)n;
    }
    rc = 0;
out:
    free(text);
    return rc;
}

/* Reads one line and parses it as a JSON object. */
static json_t *ctlclient__recv(struct ctlclient *c, int timeout_ms, char *err, size_t errlen)
{
    uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;

    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        uint64_t now;
        ssize_t n;

        if (nl != NULL) {
            json_error_t jerr;
            size_t line = (size_t)(nl - c->buf);
            json_t *msg = json_loadb(c->buf, line, JSON_REJECT_DUPLICATES, &jerr);

            memmove(c->buf, nl + 1, c->len - line - 1);
            c->len -= line + 1;
            if (msg == NULL || !json_is_object(msg)) {
                snprintf(err, errlen, "relay sent invalid JSON");
                json_decref(msg);
                return NULL;
            }
            return msg;
        }
        if (c->len == sizeof(c->buf)) {
            snprintf(err, errlen, "relay response too large");
            return NULL;
        }
        if ((now = clock_mono_ms()) >= deadline || poll(&p, 1, (int)(deadline - now)) != 1) {
            snprintf(err, errlen, "timed out waiting for the relay");
            return NULL;
        }
        n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "relay closed the control connection");
            return NULL;
        }
        c->len += (size_t)n;
    }
}

static int ctlclient__auth(struct ctlclient *c, const struct keyring_key *key, int timeout_ms,
                           char *err, size_t errlen)
{
    uint8_t snonce[CTLPROTO_NONCE_LEN], cnonce[CTLPROTO_NONCE_LEN];
    char cnonce_b64[CTLPROTO_B64_LEN], proof[CTLPROTO_B64_LEN], expect[CTLPROTO_B64_LEN];
    struct hmac *h = hmac_new(HMAC_SHA256);
    json_t *hello = NULL, *auth = NULL, *reply = NULL;
    const char *server_proof;
    int rc = -1;

    if (h == NULL || (hello = ctlclient__recv(c, timeout_ms, err, errlen)) == NULL)
        goto out;
    if (ctlproto_nonce_decode(json_string_value(json_object_get(hello, "nonce")), snonce) != 0) {
        snprintf(err, errlen, "relay hello carries no valid nonce");
        goto out;
    }
    if (ctlproto_nonce(cnonce, cnonce_b64) != 0 ||
        ctlproto_proof(key, CTLPROTO_CLIENT, snonce, cnonce, h, proof) != 0 ||
        ctlproto_proof(key, CTLPROTO_SERVER, snonce, cnonce, h, expect) != 0) {
        snprintf(err, errlen, "cannot compute proof");
        goto out;
    }
    auth = json_pack("{s:s,s:i,s:s,s:s}", "type", "auth", "kid", key->id, "nonce", cnonce_b64,
                     "proof", proof);
    if (auth == NULL || ctlclient__send(c, auth, err, errlen) != 0 ||
        (reply = ctlclient__recv(c, timeout_ms, err, errlen)) == NULL)
        goto out;
    server_proof = json_string_value(json_object_get(reply, "proof"));
    if (server_proof == NULL || strlen(server_proof) != CTLPROTO_B64_LEN - 1 ||
        !hmac_equal((const uint8_t *)server_proof, (const uint8_t *)expect,
                    CTLPROTO_B64_LEN - 1)) {
        const char *why = json_string_value(json_object_get(reply, "error"));

        snprintf(err, errlen, "relay authentication failed (%s)", why ? why : "bad server proof");
        goto out;
    }
    rc = 0;
out:
    json_decref(reply);
    json_decref(auth);
    json_decref(hello);
    hmac_free(h);
    return rc;
}

struct ctlclient *ctlclient_connect(const char *addr, const struct keyring *kr, int timeout_ms,
                                    char *err, size_t errlen)
{
    const struct keyring_key *key = keyring_active(kr);
    struct ctlclient *c = calloc(1, sizeof(*c));

    if (c == NULL || key == NULL) {
        snprintf(err, errlen, c ? "no key" : "out of memory");
        free(c);
        return NULL;
    }
    c->next_id = 1;
    if ((c->fd = ctlclient__connect_fd(addr, timeout_ms, err, errlen)) < 0) {
        free(c);
        return NULL;
    }
    if (ctlclient__auth(c, key, timeout_ms, err, errlen) != 0) {
        ctlclient_close(c);
        return NULL;
    }
    return c;
}

json_t *ctlclient_call(struct ctlclient *c, json_t *request, int timeout_ms, char *err,
                       size_t errlen)
{
    json_int_t id = c->next_id++;

    json_object_set_new(request, "id", json_integer(id));
    if (ctlclient__send(c, request, err, errlen) != 0)
        return NULL;
    for (;;) {
        json_t *resp = ctlclient__recv(c, timeout_ms, err, errlen);

        if (resp == NULL || json_integer_value(json_object_get(resp, "id")) == id)
            return resp;
        json_decref(resp); /* a late answer to an earlier, timed-out call */
    }
}

void ctlclient_close(struct ctlclient *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    free(c);
}
