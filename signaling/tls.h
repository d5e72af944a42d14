/* The public listener's TLS certificate. libwebsockets loads the files into
 * the listener's SSL_CTX at start; we also load them ourselves and hand
 * each new connection our copy from OpenSSL's certificate callback, so a
 * reload can replace it: connections made afterwards get the new
 * certificate, open ones keep the one they were made with. */
#ifndef QUIETROOM_SIGNAL_TLS_H
#define QUIETROOM_SIGNAL_TLS_H

#include <stdbool.h>
#include <stddef.h>

/* A certificate chain and its private key, checked to belong together. */
struct tls_cert;

/* Reads a PEM chain (leaf first) and a PEM key (not encrypted). NULL with a
 * reason in err (paths and OpenSSL's reason, never key material). */
struct tls_cert *tls_cert_load(const char *cert_path, const char *key_path, char *err,
                               size_t errlen);
void tls_cert_free(struct tls_cert *c);
/* The leaf's SHA-256 fingerprint, "AB:CD:…" (public; for logs and audit). */
const char *tls_cert_fingerprint(const struct tls_cert *c);
/* True if both hold the same certificates (the keys then match too). */
bool tls_cert_same(const struct tls_cert *a, const struct tls_cert *b);

struct tls_state;

/* Owns cert. */
struct tls_state *tls_new(struct tls_cert *cert);
void tls_free(struct tls_state *t);
/* Hooks the listener's SSL_CTX (an SSL_CTX *, from libwebsockets'
 * LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS). */
void tls_attach(struct tls_state *t, void *ssl_ctx);
/* False if the hook never came: the certificate cannot be reloaded. */
bool tls_attached(const struct tls_state *t);
/* The certificate new connections get (owns cert, frees the old one). */
void tls_replace(struct tls_state *t, struct tls_cert *cert);
const struct tls_cert *tls_current(const struct tls_state *t);

#endif
