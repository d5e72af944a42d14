/* A forwarding worker: one thread, one epoll loop, its own SO_REUSEPORT
 * socket per listen address (and listener per listen-tcp address), batched
 * recvmmsg/sendmmsg, its own counters. Fields are shared with ice.c,
 * forward.c and tcp.c only. */
#ifndef QUIETROOM_RELAY_WORKER_H
#define QUIETROOM_RELAY_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "addrmap.h"
#include "ice.h"
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

/* The time of the batch being handled, read once per recvmmsg and passed
 * down the packet path, so that tests can choose it. */
struct worker_now {
    uint64_t mono_ms;
    uint64_t mono_us;
    uint64_t wall_ms;
};

/* Hands n queued datagrams of socket listen to the network; returns how
 * many were taken, or -1 with errno set, as sendmmsg does. A worker with
 * sockets uses sendmmsg; a detached one (tests) whatever it was given. */
typedef int (*worker_send_fn)(void *ctx, uint32_t listen, struct mmsghdr *msg, unsigned n);

struct tcp_worker;
struct ice_peer;

struct worker {
    struct relay *relay;
    unsigned id;
    pthread_t thread;
    int epfd;
    int fd[QR_LISTEN_MAX];        /* -1 in a detached worker */
    unsigned n_fd;
    worker_send_fn send;          /* how worker_tx_flush sends */
    void *send_ctx;
    const struct addrmap *map;    /* the table's, read without a lock */
    struct hmac *sha1;
    struct hmac *sha256;
    _Atomic uint64_t quiescent;   /* bumped between batches (reclamation) */
    struct ice_limiter errors;    /* unauthenticated error responses per source */
    struct stat_counters stats;
    struct tcp_worker *tcp;       /* NULL without listen-tcp */

    struct mmsghdr rx_msg[QR_BATCH];
    struct iovec rx_iov[QR_BATCH];
    union netaddr rx_addr[QR_BATCH];
    uint8_t rx_buf[QR_BATCH][QR_PACKET_MAX];
    struct worker_tx tx[QR_LISTEN_MAX];

    /* Early DTLS handed over when a leg binds. */
    uint8_t early_buf[QR_EARLY_PER_LINK][QR_PACKET_MAX];
    size_t early_len[QR_EARLY_PER_LINK];
};

/* Creates worker id with already bound sockets fds (one per listen address)
 * and listening TCP sockets tcp_fds (one per listen-tcp address). Ownership
 * of both passes to it even on failure (they are closed then). Returns NULL
 * on failure; worker_free. */
struct worker *worker_new(struct relay *r, unsigned id, const int *fds, unsigned n_fd,
                          const int *tcp_fds, unsigned n_tcp);
/* A worker without sockets or thread, for driving worker_handle in one
 * process: what it sends goes to send(ctx, ...). Never worker_start it. */
struct worker *worker_new_detached(struct relay *r, unsigned id, unsigned n_listen,
                                   worker_send_fn send, void *ctx);
int worker_start(struct worker *w);
/* Waits for the thread to end (after relay->stopping was set). */
void worker_join(struct worker *w);
void worker_free(struct worker *w);

/* Handles one datagram received on socket listen from src at time now:
 * answers STUN, forwards DTLS/RTP/RTCP, counts the rest. Whatever it
 * produces joins the send batches (worker_tx_flush sends them); buf must
 * stay untouched until then, as responses are built over it. */
void worker_handle(struct worker *w, uint32_t listen, const union netaddr *src, uint8_t *buf,
                   size_t len, const struct worker_now *now);
/* The same for a packet that came by any route (an ICE-TCP frame: peer is
 * its connection's leg, ice.h). Returns true if it was a valid check. */
bool worker_handle_from(struct worker *w, uint32_t route, const union netaddr *src,
                        uint8_t *buf, size_t len, const struct worker_now *now,
                        struct ice_peer *peer);

/* One of the worker's counters (the relay sums them over workers). */
uint64_t worker_counter(const struct worker *w, enum stat_id id);

/* Queues a datagram for socket listen, or a frame for the TCP connection
 * that route names (link.h); sends the batch if it is full. */
void worker_tx_add(struct worker *w, uint32_t listen, const union netaddr *to, uint8_t *buf,
                   size_t len, struct leg *from);

/* Sends what is queued for socket listen now (TCP: at the round's end). */
void worker_tx_flush(struct worker *w, uint32_t listen);
/* Sends what is queued for every UDP socket. */
void worker_tx_flush_all(struct worker *w);

/* Creates a non-blocking SO_REUSEPORT UDP socket bound to addr. Returns the
 * fd or -1 with errno set. */
int worker_socket(const union netaddr *addr);

#endif
