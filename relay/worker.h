/* A forwarding worker: one thread, one epoll loop, its own SO_REUSEPORT
 * socket per listen address, batched recvmmsg/sendmmsg, its own counters. Fields are shared with ice.c and forward.c only. */
#ifndef QUIETROOM_RELAY_WORKER_H
#define QUIETROOM_RELAY_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "addrmap.h"
#include "link.h"
#include "quietroom/base/hmac.h"
#include "quietroom/base/limits.h"
#include "quietroom/base/netaddr.h"
#include "relay.h"
#include "stats.h"

/* Datagrams queued for one socket, sent with one sendmmsg. Payloads point
 * into the receive buffers, which stay untouched until the batch is sent. */
struct worker_tx {
    struct mmsghdr msg[QR_BATCH];
    struct iovec iov[QR_BATCH];
    union netaddr addr[QR_BATCH];
    struct leg *from[QR_BATCH];   /* leg to credit when sent; NULL for STUN */
    unsigned n;
};

/* The time of the batch being handled, read once per recvmmsg. */
struct worker_now {
    uint64_t mono_ms;
    uint64_t mono_us;
    uint64_t wall_ms;
};

struct worker {
    struct relay *relay;
    unsigned id;
    pthread_t thread;
    int epfd;
    int fd[QR_LISTEN_MAX];
    unsigned n_fd;
    const struct addrmap *map;    /* the table's, read without a lock */
    struct hmac *sha1;
    struct hmac *sha256;
    _Atomic uint64_t quiescent;   /* bumped between batches (reclamation) */
    struct stat_counters stats;
    struct worker_now now;

    struct mmsghdr rx_msg[QR_BATCH];
    struct iovec rx_iov[QR_BATCH];
    union netaddr rx_addr[QR_BATCH];
    uint8_t rx_buf[QR_BATCH][QR_PACKET_MAX];
    struct worker_tx tx[QR_LISTEN_MAX];

    /* Early DTLS handed over when a leg binds. */
    uint8_t early_buf[QR_EARLY_PER_LINK][QR_PACKET_MAX];
    size_t early_len[QR_EARLY_PER_LINK];
};

/* Creates worker id with already bound sockets fds (one per listen address,
 * ownership passes to the worker). Returns NULL on failure; worker_free. */
struct worker *worker_new(struct relay *r, unsigned id, const int *fds, unsigned n_fd);
int worker_start(struct worker *w);
/* Waits for the thread to end (after relay->stopping was set). */
void worker_join(struct worker *w);
void worker_free(struct worker *w);

/* Queues a datagram for socket listen; sends the batch if it is full. */
void worker_tx_add(struct worker *w, uint32_t listen, const union netaddr *to, uint8_t *buf,
                   size_t len, struct leg *from);

/* Sends what is queued for socket listen now. */
void worker_tx_flush(struct worker *w, uint32_t listen);

/* Creates a non-blocking SO_REUSEPORT UDP socket bound to addr. Returns the
 * fd or -1 with errno set. */
int worker_socket(const union netaddr *addr);

#endif
