/* TLS to the syslog collector (RFC 5425): TLS 1.2 or later, the collector's
 * certificate must chain to the configured CA and name the configured host
 * (DNS name or IP address), optionally a client certificate. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "audit_ship_internal.h"
#include "quietroom/base/limits.h"

static void ship_tls__why(char *why, size_t len, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[160] = "";

    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    snprintf(why, len, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

SSL_CTX *audit_ship_tls_context(const struct audit_ship_config *c, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        ship_tls__why(err, errlen, "audit-syslog: TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* The shipper reads only to notice the collector's close: a session
     * ticket must not make that read wait for data that never comes. */
    SSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
    if (SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL) != 1) {
        ship_tls__why(err, errlen, "audit-syslog-ca: cannot load the CA file");
        goto fail;
    }
    if (c->cert_file[0] != '\0' &&
        (SSL_CTX_use_certificate_chain_file(ctx, c->cert_file) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, c->key_file, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(ctx) != 1)) {
        ship_tls__why(err, errlen, "audit-syslog-cert/-key: cannot load the client certificate");
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Non-blocking connect bounded by QR_AUDIT_SHIP_CONNECT_MS, then blocking
 * with QR_AUDIT_SHIP_IO_MS timeouts. Returns the socket or -1. */
static int ship_tls__dial(const struct addrinfo *ai)
{
    struct timeval tv = {.tv_sec = QR_AUDIT_SHIP_IO_MS / 1000,
                         .tv_usec = (QR_AUDIT_SHIP_IO_MS % 1000) * 1000};
    struct pollfd p;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    int soerr = 0;
    socklen_t sl = sizeof(soerr);

    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS)
        goto fail;
    p = (struct pollfd){.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, QR_AUDIT_SHIP_CONNECT_MS) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0)
        goto fail;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

static int ship_tls__resolve_and_dial(const struct audit_ship_config *c, char *why, size_t len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res, *ai;
    int rc = getaddrinfo(c->host, c->port, &hints, &res), fd = -1;

    if (rc != 0) {
        snprintf(why, len, "cannot resolve the collector: %s", gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
        fd = ship_tls__dial(ai);
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(why, len, "cannot connect to the collector");
    return fd;
}

/* The name the certificate must hold: an IP address, or a DNS name (also
 * sent as SNI). */
static int ship_tls__expect(SSL *ssl, const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];

    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? 0 : -1;
    if (SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1)
        return -1;
    return 0;
}

enum ship_connect audit_ship_tls_connect(SSL_CTX *ctx, const struct audit_ship_config *c, SSL **ssl,
                                         int *fd, char *why, size_t len)
{
    long vr;

    *ssl = NULL;
    if ((*fd = ship_tls__resolve_and_dial(c, why, len)) < 0)
        return SHIP_FAILED;
    if ((*ssl = SSL_new(ctx)) == NULL || SSL_set_fd(*ssl, *fd) != 1 ||
        ship_tls__expect(*ssl, c->host) != 0) {
        ship_tls__why(why, len, "TLS setup");
        goto fail;
    }
    if (SSL_connect(*ssl) == 1)
        return SHIP_CONNECTED;
    vr = SSL_get_verify_result(*ssl);
    if (vr != X509_V_OK) {
        ERR_clear_error();
        snprintf(why, len, "the collector's certificate was refused: %s",
                 X509_verify_cert_error_string(vr));
        audit_ship_tls_close(ssl, fd);
        return SHIP_REFUSED_CERT;
    }
    ship_tls__why(why, len, "TLS handshake with the collector failed");
fail:
    audit_ship_tls_close(ssl, fd);
    return SHIP_FAILED;
}

void audit_ship_tls_close(SSL **ssl, int *fd)
{
    if (*ssl != NULL) {
        /* Best effort, never waiting on a peer that stopped reading. */
        if (*fd >= 0)
            fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) | O_NONBLOCK);
        SSL_shutdown(*ssl);
        SSL_free(*ssl);
        *ssl = NULL;
    }
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
    ERR_clear_error();
}
