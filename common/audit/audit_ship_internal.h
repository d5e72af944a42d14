/* The TLS side of the audit shipper (audit_ship_tls.c), used by its thread
 * (audit_ship.c). Not part of the public interface. */
#ifndef QUIETROOM_AUDIT_SHIP_INTERNAL_H
#define QUIETROOM_AUDIT_SHIP_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "quietroom/audit/audit_ship.h"

enum ship_connect {
    SHIP_CONNECTED = 0,
    SHIP_FAILED,          /* resolve, connect or handshake failed */
    SHIP_REFUSED_CERT,    /* the collector's certificate did not verify */
};

/* --- reading the files back (audit_ship_reader.c) --- */

struct ship_reader {
    char path[PATH_MAX];
    char dir[PATH_MAX];
    char base[NAME_MAX + 1];
    int fd;
    ino_t ino;       /* of fd */
    uint64_t off;    /* file offset of buf[0] */
    char *buf;
    size_t cap, len, pos;
    bool skipping;   /* inside a line too long to ship */
};

/* Reads path from byte offset from on. Returns 0 or -1 with err. */
int ship_reader_init(struct ship_reader *r, const char *path, uint64_t from, char *err,
                     size_t errlen);

/* The next complete line, without its '\n' (borrowed until the next call):
 * 1, 0 if there is none yet, -1 on a read error. In the file the writer
 * has published (pub_ino), only below pub_size; a file rotated away is
 * read to its end, then the next one in the chain. */
int ship_reader_line(struct ship_reader *r, ino_t pub_ino, uint64_t pub_size, const char **line,
                     size_t *len);

/* Gives back the line of len bytes just returned (it is returned again). */
void ship_reader_unread(struct ship_reader *r, size_t len);

/* Moves to the first record with a seq above `after`, looking through the
 * rotated files too (the chain's order); at the end of what is published
 * if every record is at or below it. 0, or -1 if the files cannot be read
 * (the position is then undefined: start again). */
int ship_reader_resume(struct ship_reader *r, uint64_t after, ino_t pub_ino, uint64_t pub_size);

/* True if everything published has been read. */
bool ship_reader_caught_up(const struct ship_reader *r, ino_t pub_ino, uint64_t pub_size);

void ship_reader_free(struct ship_reader *r);

/* --- TLS (audit_ship_tls.c) --- */

/* A client context that trusts only c->ca_file, checks the peer's name and
 * presents the client certificate if one is configured. NULL with err. */
SSL_CTX *audit_ship_tls_context(const struct audit_ship_config *c, char *err, size_t errlen);

/* Connects to the collector and completes the handshake, each within
 * timeout_ms; the socket then blocks for at most that long per call, and
 * TCP gives up on a collector that acknowledges nothing for
 * QR_AUDIT_SHIP_USER_TIMEOUT_MS (keepalive probes find a silent one). why
 * says what failed (no secrets). */
enum ship_connect audit_ship_tls_connect(SSL_CTX *ctx, const struct audit_ship_config *c,
                                         int timeout_ms, SSL **ssl, int *fd, char *why,
                                         size_t len);

/* Closes the connection (a close_notify if it can be sent at once). */
void audit_ship_tls_close(SSL **ssl, int *fd);

#endif
