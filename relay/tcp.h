/* ICE-TCP (RFC 6544): the relay's passive candidates. Each worker has its own
 * SO_REUSEPORT listener per address and owns the connections it accepts;
 * frames (RFC 4571) are cut from them by tcpframe_next and go through the
 * same STUN and forwarding code as datagrams, with a route naming the
 * connection. A connection's first frame must be a valid check for a leg,
 * within QR_TCP_CHECK_TIMEOUT_MS; it then carries that leg only, and waits
 * (counted against QR_TCP_WAITING_MAX) until its leg is bound to it, which
 * must happen within QR_TCP_BIND_TIMEOUT_MS. A connection whose leg is no
 * longer bound to it is closed. Writes go to a bounded buffer per
 * connection: a slow reader loses its own frames, counted, and never blocks
 * the worker. */
#ifndef QUIETROOM_RELAY_TCP_H
#define QUIETROOM_RELAY_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quietroom/base/netaddr.h"

struct worker;
struct worker_now;
struct leg;
struct tcp_worker;

/* A connection's slot, the low 31 bits of its route: a generation that
 * changes whenever the slot is reused, the owning worker, and the index
 * there. */
#define TCP_SLOT_BITS 20
#define TCP_SLOT_GEN_SHIFT 26
#define TCP_SLOT(gen, worker, index)                                                        \
    ((uint32_t)((gen) & 0x1f) << TCP_SLOT_GEN_SHIFT | (uint32_t)(worker) << TCP_SLOT_BITS | \
     (uint32_t)(index))
#define TCP_SLOT_WORKER(slot) (((slot) >> TCP_SLOT_BITS) & 0x3f)
#define TCP_SLOT_INDEX(slot) ((slot) & ((1u << TCP_SLOT_BITS) - 1))

/* Epoll tags of a worker's TCP side: the top byte says TCP (a UDP socket's
 * tag is its index), then the kind and the index. */
enum tcp_event_kind {
    TCP_EV_LISTENER,   /* index: the listener */
    TCP_EV_CONN,       /* index: the connection's index in its worker */
    TCP_EV_INBOX,      /* another worker handed us frames */
};
#define TCP_TAG(kind, index) ((uint64_t)1 << 56 | (uint64_t)(kind) << 32 | (uint32_t)(index))
#define TCP_TAG_IS(tag) (((tag) >> 56) == 1)
#define TCP_TAG_KIND(tag) ((enum tcp_event_kind)((tag) >> 32 & 0xff))
#define TCP_TAG_INDEX(tag) ((uint32_t)(tag))

/* A non-blocking SO_REUSEPORT listening socket bound to addr; the fd or -1
 * with errno set. */
int tcp_listen_socket(const union netaddr *addr);

/* The TCP side of worker w: takes the listening sockets fds (closed on
 * failure too) and registers them and its inbox with epoll epfd. NULL on
 * failure. */
struct tcp_worker *tcp_worker_new(struct worker *w, int epfd, const int *fds, unsigned n_fd);
/* Closes every connection and frees (at shutdown, after the table closed
 * every link). */
void tcp_worker_free(struct worker *w);

/* An epoll event of the TCP side: its tag and the events epoll gave. */
void tcp_event(struct worker *w, uint64_t tag, uint32_t events, const struct worker_now *now);

/* Queues one frame for the connection route names (LEG_ROUTE_TCP | slot)
 * and to (its remote address), whichever worker owns it. from is the leg
 * to credit, NULL for STUN: media goes only to a connection its leg is
 * bound to. */
void tcp_send(struct worker *w, uint32_t route, const union netaddr *to, const uint8_t *buf,
              size_t len, struct leg *from);

/* After each round of events: writes what was queued, wakes the workers
 * this one handed frames to, and closes connections past their deadline. */
void tcp_after(struct worker *w, const struct worker_now *now);

#endif
