/* Certificate loading and the per-connection certificate callback. The
 * callback clears whatever the SSL_CTX gave the connection and installs our
 * current chain and key: replacing the SSL_CTX's own certificate instead
 * would leave the old one in place whenever the key type changes (OpenSSL
 * keeps one certificate per key type). Everything runs on the event-loop
 * thread, as libwebsockets does its handshakes there. */
#include "tls.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define TLS_CHAIN_MAX 10
#define TLS_FINGERPRINT_LEN (32 * 3 + 1)

struct tls_cert {
    X509 *leaf;
    STACK_OF(X509) *chain;          /* intermediates, may be empty */
    EVP_PKEY *key;
    char fingerprint[TLS_FINGERPRINT_LEN];
    uint8_t digest[32];             /* over every certificate of the chain */
};

struct tls_state {
    struct tls_cert *cur;
    SSL_CTX *ctx;                   /* the listener's; owned by libwebsockets */
};

/* No passphrase prompts on a daemon's terminal: an encrypted key fails. */
static int tls__no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static void tls__reason(char *err, size_t errlen, const char *what, const char *path)
{
    char why[160];
    unsigned long e = ERR_peek_last_error();

    ERR_error_string_n(e, why, sizeof(why));
    ERR_clear_error();
    snprintf(err, errlen, "%s %s: %s", what, path, e != 0 ? why : "nothing usable in it");
}

void tls_cert_free(struct tls_cert *c)
{
    if (c == NULL)
        return;
    X509_free(c->leaf);
    sk_X509_pop_free(c->chain, X509_free);
    EVP_PKEY_free(c->key);
    free(c);
}

static int tls__read_chain(struct tls_cert *c, const char *path, char *err, size_t errlen)
{
    BIO *in = BIO_new_file(path, "r");
    X509 *x;
    int rc = -1;

    if (in == NULL) {
        tls__reason(err, errlen, "certificate", path);
        return -1;
    }
    if ((c->leaf = PEM_read_bio_X509_AUX(in, NULL, tls__no_passphrase, NULL)) == NULL) {
        tls__reason(err, errlen, "certificate", path);
        goto out;
    }
    while ((x = PEM_read_bio_X509(in, NULL, tls__no_passphrase, NULL)) != NULL) {
        if (sk_X509_num(c->chain) == TLS_CHAIN_MAX || !sk_X509_push(c->chain, x)) {
            X509_free(x);
            snprintf(err, errlen, "certificate %s: more than %d certificates", path,
                     TLS_CHAIN_MAX + 1);
            goto out;
        }
    }
    /* The end of the file is not an error; anything else is. */
    if (ERR_GET_LIB(ERR_peek_last_error()) != ERR_LIB_PEM ||
        ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
        tls__reason(err, errlen, "certificate", path);
        goto out;
    }
    ERR_clear_error();
    rc = 0;
out:
    BIO_free(in);
    return rc;
}

/* SHA-256 over the DER of the leaf and every intermediate. */
static int tls__chain_digest(struct tls_cert *c)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -1;

    for (int i = -1; rc == 0 && i < sk_X509_num(c->chain); i++) {
        unsigned char *der = NULL;
        int n = i2d_X509(i < 0 ? c->leaf : sk_X509_value(c->chain, i), &der);

        if (n <= 0 || EVP_DigestUpdate(md, der, (size_t)n) != 1)
            rc = -1;
        OPENSSL_free(der);
    }
    if (rc == 0 && EVP_DigestFinal_ex(md, c->digest, NULL) != 1)
        rc = -1;
    EVP_MD_CTX_free(md);
    return rc;
}

struct tls_cert *tls_cert_load(const char *cert_path, const char *key_path, char *err,
                               size_t errlen)
{
    struct tls_cert *c = calloc(1, sizeof(*c));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    BIO *in = NULL;

    if (c == NULL || (c->chain = sk_X509_new_null()) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (tls__read_chain(c, cert_path, err, errlen) != 0)
        goto fail;
    if ((in = BIO_new_file(key_path, "r")) == NULL ||
        (c->key = PEM_read_bio_PrivateKey(in, NULL, tls__no_passphrase, NULL)) == NULL) {
        tls__reason(err, errlen, "private key", key_path);
        goto fail;
    }
    if (X509_check_private_key(c->leaf, c->key) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "private key %s does not belong to certificate %s", key_path,
                 cert_path);
        goto fail;
    }
    if (X509_digest(c->leaf, EVP_sha256(), md, &md_len) != 1 || tls__chain_digest(c) != 0) {
        snprintf(err, errlen, "certificate %s: cannot hash it", cert_path);
        goto fail;
    }
    for (unsigned i = 0; i < md_len && i < 32; i++)
        snprintf(c->fingerprint + 3 * i, 4, i + 1 < md_len ? "%02X:" : "%02X", md[i]);
    BIO_free(in);
    return c;
fail:
    BIO_free(in);
    tls_cert_free(c);
    return NULL;
}

const char *tls_cert_fingerprint(const struct tls_cert *c)
{
    return c->fingerprint;
}

bool tls_cert_same(const struct tls_cert *a, const struct tls_cert *b)
{
    return memcmp(a->digest, b->digest, sizeof(a->digest)) == 0;
}

/* OpenSSL calls this once the ClientHello is read, before it picks the
 * certificate; the connection keeps references to what it is given. */
static int tls__cert_cb(SSL *ssl, void *arg)
{
    const struct tls_state *t = arg;

    if (t->cur == NULL)
        return 1;
    SSL_certs_clear(ssl);
    return SSL_use_cert_and_key(ssl, t->cur->leaf, t->cur->key, t->cur->chain, 1) == 1 ? 1 : 0;
}

struct tls_state *tls_new(struct tls_cert *cert)
{
    struct tls_state *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        tls_cert_free(cert);
        return NULL;
    }
    t->cur = cert;
    return t;
}

void tls_free(struct tls_state *t)
{
    if (t == NULL)
        return;
    tls_cert_free(t->cur);
    free(t);
}

void tls_attach(struct tls_state *t, void *ssl_ctx)
{
    t->ctx = ssl_ctx;
    SSL_CTX_set_cert_cb(t->ctx, tls__cert_cb, t);
}

bool tls_attached(const struct tls_state *t)
{
    return t->ctx != NULL;
}

void tls_replace(struct tls_state *t, struct tls_cert *cert)
{
    tls_cert_free(t->cur);
    t->cur = cert;
}

const struct tls_cert *tls_current(const struct tls_state *t)
{
    return t->cur;
}
