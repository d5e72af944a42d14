/* ICE-TCP connections of one worker. A connection lives in a slot of the
 * worker that accepted it and only that worker reads, writes or closes it;
 * other workers hand it frames through the worker's inbox. Frames are
 * handled in place in the read buffer, so the UDP sends they produced are
 * flushed before the buffer moves. */
#include "tcp.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "forward.h"
#include "ice.h"
#include "inbox.h"
#include "quietroom/base/log.h"
#include "quietroom/wire/demux.h"
#include "quietroom/wire/tcpframe.h"
#include "worker.h"

struct tcp_conn {
    int fd;
    uint32_t index;               /* in the worker's slots */
    struct leg_addr key;          /* remote address and route: the leg's map key */
    union netaddr peer;
    uint64_t deadline_ms;         /* no valid check by then: closed */
    struct ice_peer ice;          /* the leg it carries, once known */
    bool out_armed;               /* EPOLLOUT asked for */
    bool queued;                  /* in the worker's flush list */
    uint32_t rx_len;
    uint32_t tx_head, tx_len;     /* ring of framed bytes to write */
    uint8_t *tx;                  /* QR_TCP_WRITE_BUFFER bytes */
    uint8_t rx[QR_TCP_READ_BUFFER];
};

struct tcp_worker {
    int listen_fd[QR_TCP_LISTEN_MAX];
    unsigned n_listen;
    int wake_fd;                  /* eventfd: frames in the inbox */
    struct inbox *inbox;
    uint64_t wake;                /* workers whose inbox we fed this round */
    uint32_t n_slots;
    struct tcp_conn **conn;       /* n_slots, NULL where free */
    uint32_t *free;
    uint32_t n_free;
    uint32_t *flush;              /* indexes of connections with bytes queued */
    uint32_t n_flush;
    uint64_t next_sweep_ms;
};

#define TCP_TAG(kind, index) ((uint64_t)WORKER_TAG_TCP << 56 | (uint64_t)(kind) << 32 | (index))

int tcp_listen_socket(const union netaddr *addr)
{
    int one = 1;
    int fd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        goto fail;
    if (addr->sa.sa_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
        goto fail;
    if (bind(fd, &addr->sa, netaddr_len(addr)) != 0 || listen(fd, QR_TCP_BACKLOG) != 0)
        goto fail;
    return fd;
fail:
    {
        int saved = errno;

        close(fd);
        errno = saved;
    }
    return -1;
}

static int tcp__watch(int epfd, int fd, uint32_t events, uint64_t tag, int op)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};

    return epoll_ctl(epfd, op, fd, &ev);
}

struct tcp_worker *tcp_worker_new(struct worker *w, int epfd, const int *fds, unsigned n_fd)
{
    struct tcp_worker *t = calloc(1, sizeof(*t));
    uint32_t n = w->relay->cfg.max_tcp_conns;

    if (t == NULL) {
        for (unsigned i = 0; i < n_fd; i++)
            close(fds[i]);
        return NULL;
    }
    w->tcp = t;
    t->wake_fd = -1;
    for (unsigned i = 0; i < n_fd; i++)
        t->listen_fd[t->n_listen++] = fds[i];
    t->n_slots = n;
    t->conn = calloc(n, sizeof(*t->conn));
    t->free = calloc(n, sizeof(*t->free));
    t->flush = calloc(n, sizeof(*t->flush));
    t->inbox = malloc(sizeof(*t->inbox));
    if (t->conn == NULL || t->free == NULL || t->flush == NULL || t->inbox == NULL)
        goto fail;
    inbox_init(t->inbox);
    for (uint32_t i = 0; i < n; i++)
        t->free[t->n_free++] = n - 1 - i;
    if ((t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
        tcp__watch(epfd, t->wake_fd, EPOLLIN, TCP_TAG(TCP_EV_INBOX, 0), EPOLL_CTL_ADD) != 0)
        goto fail;
    for (unsigned i = 0; i < t->n_listen; i++) {
        if (tcp__watch(epfd, t->listen_fd[i], EPOLLIN, TCP_TAG(TCP_EV_LISTENER, i),
                       EPOLL_CTL_ADD) != 0)
            goto fail;
    }
    return t;
fail:
    tcp_worker_free(w);
    return NULL;
}

/* Gives the slot back and forgets the connection; its leg, if bound to
 * it, goes down. */
static void tcp__close(struct worker *w, struct tcp_conn *c, enum stat_id why)
{
    struct tcp_worker *t = w->tcp;
    struct relay *r = w->relay;

    stat_add(&w->stats, why, 1);
    if (c->ice.known)
        table_unbind_at(r->table, &c->key, LEG_DOWN_CLOSED);
    else
        atomic_fetch_sub_explicit(&r->tcp_unauth, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&r->tcp_open, 1, memory_order_relaxed);
    close(c->fd); /* also takes it out of the epoll set */
    t->conn[c->index] = NULL;
    t->free[t->n_free++] = c->index;
    free(c->tx);
    free(c);
}

void tcp_worker_free(struct worker *w)
{
    struct tcp_worker *t = w->tcp;

    if (t == NULL)
        return;
    for (uint32_t i = 0; t->conn != NULL && i < t->n_slots; i++) {
        if (t->conn[i] != NULL)
            tcp__close(w, t->conn[i], STAT_TCP_CLOSED_PEER);
    }
    for (unsigned i = 0; i < t->n_listen; i++)
        close(t->listen_fd[i]);
    if (t->wake_fd >= 0)
        close(t->wake_fd);
    free(t->inbox);
    free(t->flush);
    free(t->free);
    free(t->conn);
    free(t);
    w->tcp = NULL;
}

/* The limits every new connection passes: all open, and not yet checked. */
static bool tcp__admit(struct worker *w)
{
    struct relay *r = w->relay;

    if (atomic_fetch_add_explicit(&r->tcp_open, 1, memory_order_relaxed) >=
            r->cfg.max_tcp_conns ||
        w->tcp->n_free == 0) {
        atomic_fetch_sub_explicit(&r->tcp_open, 1, memory_order_relaxed);
        stat_add(&w->stats, STAT_TCP_REFUSED_FULL, 1);
        return false;
    }
    if (atomic_fetch_add_explicit(&r->tcp_unauth, 1, memory_order_relaxed) >=
        QR_TCP_UNAUTH_MAX) {
        atomic_fetch_sub_explicit(&r->tcp_unauth, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&r->tcp_open, 1, memory_order_relaxed);
        stat_add(&w->stats, STAT_TCP_REFUSED_UNAUTH, 1);
        return false;
    }
    return true;
}

/* Takes one accepted socket into a slot; closes it if it cannot. */
static void tcp__adopt(struct worker *w, int fd, const union netaddr *peer, uint64_t now_ms)
{
    struct tcp_worker *t = w->tcp;
    int one = 1, size = QR_TCP_SOCKET_BUFFER;
    struct tcp_conn *c;
    uint32_t index;

    if (!tcp__admit(w)) {
        close(fd);
        return;
    }
    index = t->free[t->n_free - 1];
    if ((c = calloc(1, sizeof(*c))) == NULL ||
        (c->tx = malloc(QR_TCP_WRITE_BUFFER)) == NULL ||
        tcp__watch(w->epfd, fd, EPOLLIN, TCP_TAG(TCP_EV_CONN, index), EPOLL_CTL_ADD) != 0) {
        if (c != NULL)
            free(c->tx);
        free(c);
        close(fd);
        atomic_fetch_sub_explicit(&w->relay->tcp_unauth, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&w->relay->tcp_open, 1, memory_order_relaxed);
        stat_add(&w->stats, STAT_TCP_REFUSED_FULL, 1);
        return;
    }
    /* Media: no Nagle delay. A small kernel buffer: a stalled reader shows
     * up as our drops, not as seconds of stale media queued. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    t->n_free--;
    c->fd = fd;
    c->index = index;
    c->peer = *peer;
    leg_addr_pack(peer, LEG_ROUTE_TCP | TCP_SLOT(w->id, index), &c->key);
    c->deadline_ms = now_ms + QR_TCP_AUTH_TIMEOUT_MS;
    t->conn[index] = c;
    stat_add(&w->stats, STAT_TCP_ACCEPTED, 1);
}

static void tcp__accept(struct worker *w, uint32_t listener, uint64_t now_ms)
{
    /* Bounded, so that one listener cannot keep the worker from its media. */
    for (int i = 0; i < QR_BATCH; i++) {
        union netaddr peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(w->tcp->listen_fd[listener], &peer.sa, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warn("worker %u: accept: %s", w->id, strerror(errno));
            return;
        }
        tcp__adopt(w, fd, &peer, now_ms);
    }
}

static bool tcp__write(struct worker *w, struct tcp_conn *c);

/* Queues a frame on a connection this worker owns; whole or not at all. */
static bool tcp__queue(struct worker *w, struct tcp_conn *c, const uint8_t *buf, size_t len)
{
    struct tcp_worker *t = w->tcp;
    uint8_t hdr[TCPFRAME_HEADER];
    const uint8_t *part[2] = {hdr, buf};
    size_t part_len[2] = {TCPFRAME_HEADER, len};
    uint32_t at;

    if (QR_TCP_WRITE_BUFFER - c->tx_len < TCPFRAME_HEADER + len) {
        stat_add(&w->stats, STAT_TCP_DROP_SLOW, 1);
        return false;
    }
    tcpframe_header(hdr, len);
    at = (c->tx_head + c->tx_len) % QR_TCP_WRITE_BUFFER;
    for (int p = 0; p < 2; p++) {
        size_t first = part_len[p] < QR_TCP_WRITE_BUFFER - at ? part_len[p]
                                                               : QR_TCP_WRITE_BUFFER - at;

        memcpy(c->tx + at, part[p], first);
        memcpy(c->tx, part[p] + first, part_len[p] - first);
        at = (uint32_t)((at + part_len[p]) % QR_TCP_WRITE_BUFFER);
    }
    c->tx_len += (uint32_t)(TCPFRAME_HEADER + len);
    if (c->queued)
        return true;
    /* The list can hold stale entries of connections closed this round;
     * should it fill, this one is written now instead of at the round's end. */
    if (t->n_flush == t->n_slots) {
        if (!tcp__write(w, c))
            c->deadline_ms = 0; /* failed: the sweep closes it */
        return true;
    }
    c->queued = true;
    t->flush[t->n_flush++] = c->index;
    return true;
}

/* The connection a route or an inbox cell names, if it is still the one
 * whose key it carries. */
static struct tcp_conn *tcp__find(struct worker *w, const struct leg_addr *key)
{
    uint32_t index = TCP_SLOT_INDEX(key->scope_id);
    struct tcp_conn *c = index < w->tcp->n_slots ? w->tcp->conn[index] : NULL;

    if (c == NULL || memcmp(&c->key, key, sizeof(*key)) != 0)
        return NULL;
    return c;
}

void tcp_send(struct worker *w, uint32_t route, const union netaddr *to, const uint8_t *buf,
              size_t len, struct leg *from)
{
    uint32_t slot = route & ~LEG_ROUTE_TCP, owner = TCP_SLOT_WORKER(slot);
    struct relay *r = w->relay;
    struct leg_addr key;
    bool queued;

    if (owner >= r->n_workers || r->workers[owner]->tcp == NULL)
        return;
    /* The remote address tells this connection from a later one in the
     * same slot. */
    leg_addr_pack(to, route, &key);
    if (owner == w->id) {
        struct tcp_conn *c = tcp__find(w, &key);

        if (c == NULL) {
            stat_add(&w->stats, STAT_TCP_DROP_GONE, 1);
            return;
        }
        queued = tcp__queue(w, c, buf, len);
    } else {
        queued = inbox_push(r->workers[owner]->tcp->inbox, &key, buf, len);
        if (!queued)
            stat_add(&w->stats, STAT_TCP_DROP_HANDOFF, 1);
        else
            w->tcp->wake |= 1ull << owner;
    }
    if (queued && from != NULL) {
        stat_add(&w->stats, STAT_FWD_PACKETS, 1);
        stat_add(&w->stats, STAT_FWD_BYTES, len);
        stat_add(&w->stats, STAT_TCP_FWD_PACKETS, 1);
        stat_add(&w->stats, STAT_TCP_FWD_BYTES, len);
        link_count32(&from->fwd_packets, 1);
        link_count64(&from->fwd_bytes, len);
    }
}

/* One frame from a connection: its first must be a valid check, which
 * names the leg the connection carries. Returns why to close it, or
 * STAT_COUNT to keep it. */
static enum stat_id tcp__frame(struct worker *w, struct tcp_conn *c, uint8_t *buf, size_t len,
                       const struct worker_now *now)
{
    uint32_t route = leg_addr_route(&c->key);
    bool was_known = c->ice.known;
    enum demux_class cls = demux_classify(buf, len);

    stat_add(&w->stats, STAT_RX_PACKETS, 1);
    stat_add(&w->stats, STAT_RX_BYTES, len);
    stat_add(&w->stats, STAT_TCP_RX_PACKETS, 1);
    stat_add(&w->stats, STAT_TCP_RX_BYTES, len);
    if (!was_known && cls != DEMUX_STUN)
        return STAT_TCP_CLOSED_BAD_FIRST;
    switch (cls) {
    case DEMUX_STUN:
        if (ice_handle(w, route, &c->peer, buf, len, now, &c->ice)) {
            c->deadline_ms = now->mono_ms + (uint64_t)atomic_load_explicit(
                                                &w->relay->live.consent_timeout_s,
                                                memory_order_relaxed) * 1000;
        } else if (!was_known) {
            return STAT_TCP_CLOSED_BAD_FIRST;
        }
        if (!was_known)
            atomic_fetch_sub_explicit(&w->relay->tcp_unauth, 1, memory_order_relaxed);
        break;
    case DEMUX_DTLS:
    case DEMUX_RTP:
    case DEMUX_RTCP:
        forward_packet(w, route, &c->peer, buf, len, cls, now);
        break;
    case DEMUX_TOO_SHORT:
        stat_add(&w->stats, STAT_DROP_MALFORMED, 1);
        break;
    default:
        stat_add(&w->stats, STAT_DROP_PROTOCOL, 1);
        break;
    }
    return STAT_COUNT;
}

/* Sends what the frames just handled queued on UDP sockets: their payloads
 * are in c->rx, which is about to move. */
static void tcp__flush_udp(struct worker *w)
{
    for (unsigned l = 0; l < w->n_fd; l++) {
        if (w->tx[l].n > 0)
            worker_tx_flush(w, l);
    }
}

/* Handles every whole frame in the read buffer. Returns the counter to
 * close the connection with, or STAT_COUNT to keep it. */
static enum stat_id tcp__frames(struct worker *w, struct tcp_conn *c,
                                const struct worker_now *now)
{
    enum stat_id close_why = STAT_COUNT;
    uint32_t off = 0;

    while (close_why == STAT_COUNT) {
        size_t n;
        enum tcpframe_status st = tcpframe_next(c->rx + off, c->rx_len - off, QR_TCP_FRAME_MAX,
                                                &n);

        if (st == TCPFRAME_PARTIAL)
            break;
        if (st != TCPFRAME_OK) {
            close_why = STAT_TCP_CLOSED_BAD_FRAME;
            break;
        }
        close_why = tcp__frame(w, c, c->rx + off + TCPFRAME_HEADER, n, now);
        off += (uint32_t)(TCPFRAME_HEADER + n);
    }
    tcp__flush_udp(w);
    memmove(c->rx, c->rx + off, c->rx_len - off);
    c->rx_len -= off;
    return close_why;
}

/* Reads what the connection has, a bounded amount per wake-up (level-
 * triggered epoll calls again for the rest), and handles its frames. */
static void tcp__read(struct worker *w, struct tcp_conn *c, const struct worker_now *now)
{
    size_t budget = QR_TCP_READ_PER_WAKE;

    while (budget > 0) {
        ssize_t n = recv(c->fd, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len, 0);
        enum stat_id why;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            tcp__close(w, c, STAT_TCP_CLOSED_PEER);
            return;
        }
        c->rx_len += (uint32_t)n;
        budget -= (size_t)n < budget ? (size_t)n : budget;
        if ((why = tcp__frames(w, c, now)) != STAT_COUNT) {
            tcp__close(w, c, why);
            return;
        }
    }
}

/* Writes as much of the ring as the socket takes; asks epoll for
 * writability while some is left. Returns false if the connection failed
 * (the caller closes it). */
static bool tcp__write(struct worker *w, struct tcp_conn *c)
{
    while (c->tx_len > 0) {
        uint32_t first = QR_TCP_WRITE_BUFFER - c->tx_head;
        struct iovec iov[2] = {{c->tx + c->tx_head, first < c->tx_len ? first : c->tx_len},
                               {c->tx, first < c->tx_len ? c->tx_len - first : 0}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = iov[1].iov_len > 0 ? 2 : 1};
        ssize_t n = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0)
            return false;
        c->tx_head = (uint32_t)((c->tx_head + (size_t)n) % QR_TCP_WRITE_BUFFER);
        c->tx_len -= (uint32_t)n;
    }
    if ((c->tx_len > 0) != c->out_armed) {
        c->out_armed = c->tx_len > 0;
        if (tcp__watch(w->epfd, c->fd, c->out_armed ? EPOLLIN | EPOLLOUT : EPOLLIN,
                       TCP_TAG(TCP_EV_CONN, c->index), EPOLL_CTL_MOD) != 0)
            return false;
    }
    return true;
}

/* Frames other workers handed us: each goes to its connection if that is
 * still the one it was meant for. */
static void tcp__drain_inbox(struct worker *w)
{
    struct tcp_worker *t = w->tcp;
    const struct inbox_cell *cell;
    uint64_t ignored;

    if (read(t->wake_fd, &ignored, sizeof(ignored)) < 0 && errno != EAGAIN)
        log_warn("worker %u: inbox eventfd: %s", w->id, strerror(errno));
    for (int i = 0; i < QR_TCP_INBOX && (cell = inbox_peek(t->inbox)) != NULL; i++) {
        struct tcp_conn *c = tcp__find(w, &cell->to);

        if (c == NULL)
            stat_add(&w->stats, STAT_TCP_DROP_GONE, 1);
        else
            tcp__queue(w, c, cell->data, cell->len);
        inbox_pop(t->inbox);
    }
    /* More than one inbox's worth came: the rest is for the next round,
     * whose wake-up is ours to give, as its producers' came before. */
    if (inbox_peek(t->inbox) != NULL) {
        uint64_t one = 1;

        if (write(t->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_warn("worker %u: inbox eventfd: %s", w->id, strerror(errno));
    }
}

void tcp_event(struct worker *w, enum tcp_event_kind kind, uint32_t index, uint32_t events,
               const struct worker_now *now)
{
    struct tcp_worker *t = w->tcp;
    struct tcp_conn *c;

    switch (kind) {
    case TCP_EV_LISTENER:
        if (index < t->n_listen)
            tcp__accept(w, index, now->mono_ms);
        break;
    case TCP_EV_INBOX:
        tcp__drain_inbox(w);
        break;
    case TCP_EV_CONN:
        if (index >= t->n_slots || (c = t->conn[index]) == NULL)
            break;
        if ((events & EPOLLOUT) != 0 && !tcp__write(w, c)) {
            tcp__close(w, c, STAT_TCP_CLOSED_PEER);
            break;
        }
        if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0)
            tcp__read(w, c, now);
        break;
    }
}

/* Connections past their deadline: no first check in time, or no valid
 * check for consent-timeout (RFC 7675 applied to the connection). */
static void tcp__sweep(struct worker *w, uint64_t now_ms)
{
    struct tcp_worker *t = w->tcp;

    if (now_ms < t->next_sweep_ms)
        return;
    t->next_sweep_ms = now_ms + QR_TCP_SWEEP_MS;
    for (uint32_t i = 0; i < t->n_slots; i++) {
        struct tcp_conn *c = t->conn[i];

        if (c != NULL && now_ms >= c->deadline_ms)
            tcp__close(w, c, c->ice.known ? STAT_TCP_CLOSED_CONSENT : STAT_TCP_CLOSED_NO_CHECK);
    }
}

void tcp_after(struct worker *w, const struct worker_now *now)
{
    struct tcp_worker *t = w->tcp;
    struct relay *r = w->relay;

    for (uint32_t i = 0; i < t->n_flush; i++) {
        struct tcp_conn *c = t->conn[t->flush[i]];

        if (c == NULL || !c->queued)
            continue;
        c->queued = false;
        if (!tcp__write(w, c))
            tcp__close(w, c, STAT_TCP_CLOSED_PEER);
    }
    t->n_flush = 0;
    /* One wake-up per worker fed this round, not one per frame. */
    while (t->wake != 0) {
        unsigned owner = (unsigned)__builtin_ctzll(t->wake);
        uint64_t one = 1;

        t->wake &= t->wake - 1;
        if (write(r->workers[owner]->tcp->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_warn("worker %u: inbox eventfd: %s", w->id, strerror(errno));
    }
    tcp__sweep(w, now->mono_ms);
}
