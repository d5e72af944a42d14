/* The TLS side of the audit shipper (audit_ship_tls.c), used by its thread
 * (audit_ship.c). Not part of the public interface. */
#ifndef QUIETROOM_AUDIT_SHIP_INTERNAL_H
#define QUIETROOM_AUDIT_SHIP_INTERNAL_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "quietroom/audit/audit_ship.h"

enum ship_connect {
    SHIP_CONNECTED = 0,
    SHIP_FAILED,          /* resolve, connect or handshake failed */
    SHIP_REFUSED_CERT,    /* the collector's certificate did not verify */
};

/* A client context that trusts only c->ca_file, checks the peer's name and
 * presents the client certificate if one is configured. NULL with err. */
SSL_CTX *audit_ship_tls_context(const struct audit_ship_config *c, char *err, size_t errlen);

/* Connects to the collector and completes the handshake within
 * QR_AUDIT_SHIP_CONNECT_MS; the socket then blocks for at most
 * QR_AUDIT_SHIP_IO_MS per call. why says what failed (no secrets). */
enum ship_connect audit_ship_tls_connect(SSL_CTX *ctx, const struct audit_ship_config *c,
                                         SSL **ssl, int *fd, char *why, size_t len);

/* Closes the connection (a close_notify if it can be sent at once). */
void audit_ship_tls_close(SSL **ssl, int *fd);

#endif
