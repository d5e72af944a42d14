/* DTLS 1.2 with the use_srtp extension, done by OpenSSL over libnice.
 *
 * OpenSSL talks to a small datagram BIO: every record write becomes exactly
 * one nice_agent_send() and every read returns exactly one received datagram,
 * so record boundaries survive (a memory BIO would merge a whole flight into
 * one read). Certificates are self-signed and accepted only if their SHA-256
 * fingerprint is the one signalled for the peer, as WebRTC does. */
#include "refclient_internal.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DTLS_DEFAULT_PROFILES "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"
#define DTLS_FP_PREFIX "sha-256 "
#define DTLS_FP_HEX_LEN (32 * 3 - 1)
#define DTLS_CERT_DAYS 30

static void dtls__ossl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();

    if (e == 0)
        snprintf(buf, len, "no OpenSSL error queued");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
}

/* ---- the datagram BIO -------------------------------------------------- */

static int dtls__bio_write(BIO *b, const char *data, int len)
{
    struct refclient *rc = BIO_get_data(b);

    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    /* A datagram libnice cannot send is a datagram lost on the wire: report
     * success and let DTLS retransmit, rather than failing the handshake. */
    if (refclient__ice_send(rc, data, (size_t)len) == 0)
        refclient__count(rc, &rc->stats.dtls_packets_sent, 1);
    return len;
}

static int dtls__bio_read(BIO *b, char *out, int outl)
{
    struct refclient *rc = BIO_get_data(b);
    struct refclient__dtls *d = &rc->dtls;
    struct refclient__dgram *g;
    size_t n;

    BIO_clear_retry_flags(b);
    if (d->q_count == 0 || outl <= 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    g = &d->queue[d->q_head];
    n = g->len < (size_t)outl ? g->len : (size_t)outl;
    memcpy(out, g->data, n);
    d->q_head = (d->q_head + 1) % REFCLIENT__DTLS_QUEUE;
    d->q_count--;
    return (int)n;
}

static long dtls__bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_DGRAM_QUERY_MTU:
        return REFCLIENT__DTLS_MTU;
    default:
        /* includes BIO_CTRL_DGRAM_GET_MTU_OVERHEAD: 0, the MTU we set is
         * already what one datagram may carry */
        return 0;
    }
}

static int dtls__bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* One method per client, so that no process-wide state is needed. It takes
 * no type index from BIO_get_new_index: OpenSSL has few of them, and a
 * source/sink BIO nobody looks up by type does not need one. */
static BIO_METHOD *dtls__method_new(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "refclient-ice");

    if (m == NULL)
        return NULL;
    if (!BIO_meth_set_write(m, dtls__bio_write) || !BIO_meth_set_read(m, dtls__bio_read) ||
        !BIO_meth_set_ctrl(m, dtls__bio_ctrl) || !BIO_meth_set_create(m, dtls__bio_create)) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

/* ---- certificate and fingerprint --------------------------------------- */

static int dtls__fingerprint(X509 *cert, char *out, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    size_t pos;

    if (!X509_digest(cert, EVP_sha256(), md, &md_len) || md_len != 32 ||
        len < sizeof(DTLS_FP_PREFIX) + DTLS_FP_HEX_LEN)
        return -1;
    pos = (size_t)snprintf(out, len, "%s", DTLS_FP_PREFIX);
    for (unsigned int i = 0; i < md_len; i++)
        pos += (size_t)snprintf(out + pos, len - pos, i ? ":%02X" : "%02X", md[i]);
    return 0;
}

static X509 *dtls__self_signed(EVP_PKEY *key)
{
    X509 *x = X509_new();
    X509_NAME *name;
    uint64_t serial;

    if (x == NULL)
        return NULL;
    if (RAND_bytes((unsigned char *)&serial, sizeof(serial)) != 1)
        goto fail;
    name = X509_get_subject_name(x);
    /* notBefore a day back tolerates a peer whose clock is behind. */
    if (!X509_set_version(x, X509_VERSION_3) ||
        !ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial >> 1) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -86400L) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 86400L * DTLS_CERT_DAYS) ||
        !X509_set_pubkey(x, key) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                    (const unsigned char *)"quietroom-refclient", -1, -1, 0) ||
        !X509_set_issuer_name(x, name) || X509_sign(x, key, EVP_sha256()) <= 0)
        goto fail;
    return x;

fail:
    X509_free(x);
    return NULL;
}

/* Loads a fresh ECDSA P-256 key and certificate into ctx and records the
 * fingerprint we announce. */
static int dtls__load_identity(struct refclient__dtls *d)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = NULL;
    int ret = -1;

    if (key == NULL)
        goto out;
    cert = dtls__self_signed(key);
    if (cert == NULL)
        goto out;
    if (SSL_CTX_use_certificate(d->ctx, cert) != 1 || SSL_CTX_use_PrivateKey(d->ctx, key) != 1 ||
        SSL_CTX_check_private_key(d->ctx) != 1)
        goto out;
    if (dtls__fingerprint(cert, d->fingerprint, sizeof(d->fingerprint)) != 0)
        goto out;
    ret = 0;

out:
    X509_free(cert); /* the SSL_CTX keeps its own references */
    EVP_PKEY_free(key);
    return ret;
}

/* Replaces chain verification: any certificate is acceptable whose
 * fingerprint is the one signalled for the peer. Returning 0 makes OpenSSL
 * abort the handshake with an alert, so the peer learns of it too. */
static int dtls__verify(X509_STORE_CTX *store, void *arg)
{
    struct refclient__dtls *d = &((struct refclient *)arg)->dtls;
    X509 *cert = X509_STORE_CTX_get0_cert(store);
    char fp[REFCLIENT__FP_LEN];

    if (cert != NULL && d->expected[0] != '\0' &&
        dtls__fingerprint(cert, fp, sizeof(fp)) == 0 && strcasecmp(fp, d->expected) == 0) {
        d->verified = true;
        return 1;
    }
    d->mismatch = true;
    X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
    return 0;
}

/* ---- setup ------------------------------------------------------------- */

static int dtls__new_ctx(struct refclient *rc, const char *profiles, char *err, size_t errlen)
{
    struct refclient__dtls *d = &rc->dtls;

    d->ctx = SSL_CTX_new(DTLS_method());
    if (d->ctx == NULL || SSL_CTX_set_min_proto_version(d->ctx, DTLS1_2_VERSION) != 1) {
        refclient__errf(err, errlen, "cannot create a DTLS context");
        return -1;
    }
    if (dtls__load_identity(d) != 0) {
        refclient__errf(err, errlen, "cannot create the certificate");
        return -1;
    }
    SSL_CTX_set_verify(d->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_cert_verify_callback(d->ctx, dtls__verify, rc);
    /* Unlike most of OpenSSL this one returns 0 on success. */
    if (SSL_CTX_set_tlsext_use_srtp(d->ctx, profiles ? profiles : DTLS_DEFAULT_PROFILES) != 0) {
        refclient__errf(err, errlen, "bad SRTP profile list");
        return -1;
    }
    return 0;
}

static int dtls__new_ssl(struct refclient *rc, char *err, size_t errlen)
{
    struct refclient__dtls *d = &rc->dtls;
    BIO *bio;

    d->ssl = SSL_new(d->ctx);
    if (d->ssl == NULL) {
        refclient__errf(err, errlen, "SSL_new failed");
        return -1;
    }
    bio = BIO_new(d->method);
    if (bio == NULL) {
        refclient__errf(err, errlen, "cannot create the datagram BIO");
        return -1;
    }
    BIO_set_data(bio, rc);
    SSL_set_bio(d->ssl, bio, bio); /* one reference, now owned by ssl */
    /* Our BIO knows no path MTU; without this OpenSSL would ask it and fall
     * back to a tiny minimum. */
    SSL_set_options(d->ssl, SSL_OP_NO_QUERY_MTU);
    if (!DTLS_set_link_mtu(d->ssl, REFCLIENT__DTLS_MTU)) {
        refclient__errf(err, errlen, "DTLS_set_link_mtu failed");
        return -1;
    }
    if (d->is_client)
        SSL_set_connect_state(d->ssl);
    else
        SSL_set_accept_state(d->ssl);
    return 0;
}

int refclient__dtls_init(struct refclient *rc, bool is_client, const char *profiles, char *err, size_t errlen)
{
    if ((rc->dtls.method = dtls__method_new()) == NULL) {
        refclient__errf(err, errlen, "cannot create the BIO method");
        return -1;
    }
    rc->dtls.is_client = is_client;
    if (dtls__new_ctx(rc, profiles, err, errlen) != 0 || dtls__new_ssl(rc, err, errlen) != 0) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

static void dtls__cancel_timer(struct refclient__dtls *d)
{
    if (d->timer == NULL)
        return;
    g_source_destroy(d->timer);
    g_source_unref(d->timer);
    d->timer = NULL;
}

void refclient__dtls_free(struct refclient__dtls *d)
{
    dtls__cancel_timer(d);
    SSL_free(d->ssl); /* frees the BIO */
    SSL_CTX_free(d->ctx);
    BIO_meth_free(d->method); /* after the BIO that used it */
    d->ssl = NULL;
    d->ctx = NULL;
    d->method = NULL;
}

int refclient__dtls_set_expected(struct refclient *rc, const char *fp)
{
    size_t plen = strlen(DTLS_FP_PREFIX);

    if (strncasecmp(fp, DTLS_FP_PREFIX, plen) != 0 || strlen(fp) != plen + DTLS_FP_HEX_LEN)
        return -1;
    for (size_t i = 0; i < DTLS_FP_HEX_LEN; i++) {
        char c = fp[plen + i];

        if (i % 3 == 2 ? c != ':' : !g_ascii_isxdigit(c))
            return -1;
    }
    snprintf(rc->dtls.expected, sizeof(rc->dtls.expected), "%s", fp);
    return 0;
}

/* ---- the handshake ----------------------------------------------------- */

static void dtls__fail(struct refclient *rc, const char *what)
{
    struct refclient__dtls *d = &rc->dtls;
    char reason[160];

    d->failed = true;
    dtls__cancel_timer(d);
    if (d->mismatch) {
        ERR_clear_error();
        refclient__fail(rc, "peer DTLS certificate does not match the expected fingerprint");
        return;
    }
    dtls__ossl_reason(reason, sizeof(reason));
    refclient__fail(rc, "%s: %s", what, reason);
}

static int dtls__finish(struct refclient *rc)
{
    struct refclient__dtls *d = &rc->dtls;
    char profile[sizeof(rc->stats.srtp_profile)], err[160];

    if (!d->verified) {
        dtls__fail(rc, "handshake finished without a verified peer certificate");
        return -1;
    }
    if (refclient__srtp_start(&rc->srtp, d->ssl, d->is_client, profile, sizeof(profile), err,
                              sizeof(err)) != 0) {
        d->failed = true;
        refclient__fail(rc, "%s", err);
        return -1;
    }
    d->done = true;
    refclient__lock(rc);
    rc->stats.dtls_done = true;
    rc->stats.peer_verified = true;
    memcpy(rc->stats.srtp_profile, profile, sizeof(profile));
    rc->srtp_keyed = true;
    refclient__unlock_notify(rc);
    return 0;
}

/* After the handshake OpenSSL must still see what arrives: a retransmitted
 * last flight from the peer makes it resend ours, and alerts end the
 * association. No application data is expected on DTLS-SRTP. */
static void dtls__drain(struct refclient *rc)
{
    struct refclient__dtls *d = &rc->dtls;
    unsigned char buf[REFCLIENT__DGRAM_MAX];

    for (;;) {
        int r = SSL_read(d->ssl, buf, sizeof(buf));
        int e;

        if (r > 0)
            continue;
        e = SSL_get_error(d->ssl, r);
        if (e == SSL_ERROR_WANT_READ)
            return;
        if (e == SSL_ERROR_ZERO_RETURN) {
            d->failed = true;
            refclient__fail(rc, "peer closed the DTLS association");
            return;
        }
        dtls__fail(rc, "DTLS read failed");
        return;
    }
}

static gboolean dtls__on_timer(gpointer data);

/* Follows OpenSSL's own retransmission schedule (1 s, doubling). */
static void dtls__arm_timer(struct refclient *rc)
{
    struct refclient__dtls *d = &rc->dtls;
    struct timeval tv;
    guint ms;

    dtls__cancel_timer(d);
    if (d->failed || !DTLSv1_get_timeout(d->ssl, &tv))
        return;
    ms = (guint)tv.tv_sec * 1000u + (guint)(tv.tv_usec + 999) / 1000u;
    d->timer = g_timeout_source_new(ms);
    g_source_set_callback(d->timer, dtls__on_timer, rc, NULL);
    g_source_attach(d->timer, rc->ctx);
}

static void dtls__drive(struct refclient *rc)
{
    struct refclient__dtls *d = &rc->dtls;

    if (d->failed || !d->started)
        return;
    ERR_clear_error();
    if (!d->done) {
        int r = SSL_do_handshake(d->ssl);

        if (r == 1) {
            if (dtls__finish(rc) != 0)
                return;
        } else if (SSL_get_error(d->ssl, r) != SSL_ERROR_WANT_READ) {
            dtls__fail(rc, "DTLS handshake failed");
            return;
        }
    }
    if (d->done)
        dtls__drain(rc);
    dtls__arm_timer(rc);
}

static gboolean dtls__on_timer(gpointer data)
{
    struct refclient *rc = data;
    struct refclient__dtls *d = &rc->dtls;

    g_source_unref(d->timer); /* the context keeps it alive until we return */
    d->timer = NULL;
    ERR_clear_error();
    if (DTLSv1_handle_timeout(d->ssl) < 0) {
        dtls__fail(rc, "DTLS retransmission failed");
        return G_SOURCE_REMOVE;
    }
    dtls__drive(rc);
    return G_SOURCE_REMOVE;
}

void refclient__dtls_start(struct refclient *rc)
{
    if (rc->dtls.started)
        return;
    rc->dtls.started = true;
    dtls__drive(rc); /* the client sends its ClientHello; the server reads what queued up */
}

void refclient__dtls_receive(struct refclient *rc, const unsigned char *buf, size_t len)
{
    struct refclient__dtls *d = &rc->dtls;
    struct refclient__dgram *g;

    refclient__count(rc, &rc->stats.dtls_packets_received, 1);
    /* A full queue drops: the peer retransmits its flight. */
    if (d->failed || len > REFCLIENT__DGRAM_MAX || d->q_count == REFCLIENT__DTLS_QUEUE)
        return;
    g = &d->queue[(d->q_head + d->q_count) % REFCLIENT__DTLS_QUEUE];
    memcpy(g->data, buf, len);
    g->len = len;
    d->q_count++;
    dtls__drive(rc); /* before ICE is READY this only queues */
}

int refclient__dtls_set_role(struct refclient *rc, bool is_client)
{
    struct refclient__dtls *d = &rc->dtls;

    if (d->started || d->ssl == NULL)
        return -1;
    d->is_client = is_client;
    if (is_client)
        SSL_set_connect_state(d->ssl);
    else
        SSL_set_accept_state(d->ssl);
    return 0;
}

void refclient__dtls_stop(struct refclient *rc)
{
    dtls__cancel_timer(&rc->dtls);
}
