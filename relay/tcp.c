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

#include "ice.h"
#include "inbox.h"
#include "quietroom/base/log.h"
#include "quietroom/wire/demux.h"
#include "quietroom/wire/tcpframe.h"
#include "worker.h"

enum tcp_state {
    TCP_NEW,          /* no valid check yet */
    TCP_CHECKED,      /* valid checks for its leg, which is not bound to it */
    TCP_BOUND,        /* its leg is bound to it */
};

struct tcp_conn {
    int fd;
    enum tcp_state state;
    bool out_armed;               /* EPOLLOUT asked for */
    bool queued;                  /* in the worker's flush list */
    bool failed;                  /* a write failed outside a round: the sweep closes it */
    uint32_t index;               /* in the worker's slots */
    struct leg_addr key;          /* remote address and route: the leg's map key */
    union netaddr peer;
    uint64_t accepted_ms;
    uint64_t deadline_ms;         /* closed by then unless a check moves it */
    struct ice_peer ice;          /* the leg it carries, once known */
    uint32_t rx_off, rx_len;      /* frames handled up to rx_off, read up to rx_len */
    uint32_t tx_head, tx_len;     /* ring of framed bytes to write */
    uint8_t *tx;                  /* QR_TCP_WRITE_BUFFER bytes, from the first check */
    uint8_t rx[QR_TCP_READ_BUFFER];
};

struct tcp_worker {
    int listen_fd[QR_TCP_LISTEN_MAX];
    unsigned n_listen;
    bool paused;                  /* out of descriptors: listeners disarmed */
    int wake_fd;                  /* eventfd: frames in the inbox */
    struct inbox *inbox;
    uint64_t wake;                /* workers we handed frames to this round */
    uint16_t handed[QR_WORKERS_MAX]; /* frames since each was woken */
    uint32_t n_slots;
    struct tcp_conn **conn;       /* n_slots, NULL where free */
    uint8_t *gen;                 /* per slot: changes with each connection */
    uint32_t *free;               /* ring of free slots: the oldest freed first */
    uint32_t free_head, n_free;
    uint32_t *flush;              /* indexes of connections with bytes queued */
    uint32_t n_flush;
    uint64_t next_sweep_ms;
};

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
    t->gen = calloc(n, sizeof(*t->gen));
    t->free = calloc(n, sizeof(*t->free));
    t->flush = calloc(n, sizeof(*t->flush));
    t->inbox = malloc(sizeof(*t->inbox));
    if (t->conn == NULL || t->gen == NULL || t->free == NULL || t->flush == NULL ||
        t->inbox == NULL)
        goto fail;
    inbox_init(t->inbox);
    for (uint32_t i = 0; i < n; i++)
        t->free[t->n_free++] = i;
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

/* Gives the slot back (to the end of the ring: the oldest freed is reused
 * first) and forgets the connection; the leg bound to it, if any, goes
 * down. why is the counter to count it under, STAT_COUNT for none. */
static void tcp__close(struct worker *w, struct tcp_conn *c, enum stat_id why)
{
    struct tcp_worker *t = w->tcp;
    struct relay *r = w->relay;

    if (why != STAT_COUNT)
        stat_add(&w->stats, why, 1);
    worker_tx_flush_all(w); /* UDP sends may point into c->rx */
    if (c->state == TCP_BOUND)
        table_unbind_at(r->table, &c->key, LEG_DOWN_CLOSED);
    else
        atomic_fetch_sub_explicit(&r->tcp_waiting, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&r->tcp_open, 1, memory_order_relaxed);
    close(c->fd); /* also takes it out of the epoll set */
    t->conn[c->index] = NULL;
    t->free[(t->free_head + t->n_free++) % t->n_slots] = c->index;
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
            tcp__close(w, t->conn[i], STAT_COUNT);
    }
    for (unsigned i = 0; i < t->n_listen; i++)
        close(t->listen_fd[i]);
    if (t->wake_fd >= 0)
        close(t->wake_fd);
    free(t->inbox);
    free(t->flush);
    free(t->free);
    free(t->gen);
    free(t->conn);
    free(t);
    w->tcp = NULL;
}

/* The limits every new connection passes: all open, and waiting. Returns
 * the refusal's counter, or STAT_COUNT once both are taken. */
static enum stat_id tcp__admit(struct worker *w)
{
    struct relay *r = w->relay;

    if (atomic_fetch_add_explicit(&r->tcp_open, 1, memory_order_relaxed) >=
            r->cfg.max_tcp_conns ||
        w->tcp->n_free == 0) {
        atomic_fetch_sub_explicit(&r->tcp_open, 1, memory_order_relaxed);
        return STAT_TCP_REFUSED_FULL;
    }
    if (atomic_fetch_add_explicit(&r->tcp_waiting, 1, memory_order_relaxed) >=
        QR_TCP_WAITING_MAX) {
        atomic_fetch_sub_explicit(&r->tcp_waiting, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&r->tcp_open, 1, memory_order_relaxed);
        return STAT_TCP_REFUSED_WAITING;
    }
    return STAT_COUNT;
}

/* Takes one accepted socket into a slot; closes it if it cannot. */
static void tcp__adopt(struct worker *w, int fd, const union netaddr *peer, uint64_t now_ms)
{
    struct tcp_worker *t = w->tcp;
    int one = 1, size = QR_TCP_SOCKET_BUFFER;
    enum stat_id refused = tcp__admit(w);
    struct tcp_conn *c = NULL;
    uint32_t index;

    if (refused != STAT_COUNT)
        goto refuse;
    index = t->free[t->free_head];
    if ((c = calloc(1, sizeof(*c))) == NULL ||
        tcp__watch(w->epfd, fd, EPOLLIN, TCP_TAG(TCP_EV_CONN, index), EPOLL_CTL_ADD) != 0) {
        atomic_fetch_sub_explicit(&w->relay->tcp_waiting, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&w->relay->tcp_open, 1, memory_order_relaxed);
        refused = STAT_TCP_REFUSED_ERROR;
        goto refuse;
    }
    /* Media: no Nagle delay. A small kernel buffer: a stalled reader shows
     * up as our drops, not as a second of stale media queued. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    t->free_head = (t->free_head + 1) % t->n_slots;
    t->n_free--;
    c->fd = fd;
    c->index = index;
    c->peer = *peer;
    leg_addr_pack(peer, LEG_ROUTE_TCP | TCP_SLOT(++t->gen[index], w->id, index), &c->key);
    c->accepted_ms = now_ms;
    c->deadline_ms = now_ms + QR_TCP_CHECK_TIMEOUT_MS;
    t->conn[index] = c;
    stat_add(&w->stats, STAT_TCP_ACCEPTED, 1);
    return;
refuse:
    free(c);
    close(fd);
    stat_add(&w->stats, refused, 1);
}

/* Out of descriptors or memory: the listener would stay readable and the
 * worker spin on it, so it is disarmed until the next sweep. */
static void tcp__pause(struct worker *w, uint32_t listener)
{
    struct tcp_worker *t = w->tcp;

    if (!t->paused)
        log_warn("worker %u: accept: %s; not accepting ICE-TCP for %d ms", w->id,
                 strerror(errno), QR_TCP_SWEEP_MS);
    stat_add(&w->stats, STAT_TCP_REFUSED_ERROR, 1);
    t->paused = true;
    tcp__watch(w->epfd, t->listen_fd[listener], 0, TCP_TAG(TCP_EV_LISTENER, listener),
               EPOLL_CTL_MOD);
}

static void tcp__accept(struct worker *w, uint32_t listener, uint64_t now_ms)
{
    /* Bounded, so that one listener cannot keep the worker from its media. */
    for (int i = 0; i < QR_BATCH; i++) {
        union netaddr peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(w->tcp->listen_fd[listener], &peer.sa, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            tcp__adopt(w, fd, &peer, now_ms);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            tcp__pause(w, listener);
        else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            log_warn("worker %u: accept: %s", w->id, strerror(errno));
        return;
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

/* Copies len bytes into the ring at its end (the caller checked room). */
static void tcp__ring_put(struct tcp_conn *c, const uint8_t *buf, size_t len)
{
    uint32_t at = (c->tx_head + c->tx_len) % QR_TCP_WRITE_BUFFER;
    size_t first = len < QR_TCP_WRITE_BUFFER - at ? len : QR_TCP_WRITE_BUFFER - at;

    memcpy(c->tx + at, buf, first);
    memcpy(c->tx, buf + first, len - first);
    c->tx_len += (uint32_t)len;
}

/* Queues a frame on a connection this worker owns; whole or not at all.
 * Media goes only to a connection its leg is bound to. */
static bool tcp__queue(struct worker *w, struct tcp_conn *c, const uint8_t *buf, size_t len,
                       bool media)
{
    struct tcp_worker *t = w->tcp;
    uint8_t hdr[TCPFRAME_HEADER];

    if (media && c->state != TCP_BOUND) {
        stat_add(&w->stats, STAT_TCP_DROP_GONE, 1);
        return false;
    }
    if (c->tx == NULL || QR_TCP_WRITE_BUFFER - c->tx_len < TCPFRAME_HEADER + len) {
        stat_add(&w->stats, STAT_TCP_DROP_SLOW, 1);
        return false;
    }
    tcpframe_header(hdr, len);
    tcp__ring_put(c, hdr, sizeof(hdr));
    tcp__ring_put(c, buf, len);
    if (c->queued)
        return true;
    /* The list can hold stale entries of connections closed this round;
     * should it fill, this one is written now instead of at the round's end. */
    if (t->n_flush == t->n_slots) {
        c->failed = c->failed || !tcp__write(w, c);
        return true;
    }
    c->queued = true;
    t->flush[t->n_flush++] = c->index;
    return true;
}

/* The connection a key names (route and remote address), if it is still
 * the one the key was made for. */
static struct tcp_conn *tcp__find(struct worker *w, const struct leg_addr *key)
{
    uint32_t index = TCP_SLOT_INDEX(key->scope_id);
    struct tcp_conn *c = index < w->tcp->n_slots ? w->tcp->conn[index] : NULL;

    if (c == NULL || memcmp(&c->key, key, sizeof(*key)) != 0)
        return NULL;
    return c;
}

static void tcp__wake(struct worker *w, unsigned owner)
{
    uint64_t one = 1;

    w->tcp->wake &= ~(1ull << owner);
    w->tcp->handed[owner] = 0;
    if (write(w->relay->workers[owner]->tcp->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("worker %u: inbox eventfd: %s", w->id, strerror(errno));
}

/* Hands a frame to the worker owning its connection; the owner is woken
 * every QR_TCP_WAKE_EVERY frames, and at the end of our round. */
static bool tcp__hand_over(struct worker *w, unsigned owner, const struct leg_addr *key,
                           const uint8_t *buf, size_t len, bool media)
{
    struct tcp_worker *t = w->tcp;

    if (!inbox_push(w->relay->workers[owner]->tcp->inbox, key, buf, len, media)) {
        stat_add(&w->stats, STAT_TCP_DROP_HANDOFF, 1);
        return false;
    }
    stat_add(&w->stats, STAT_TCP_HANDED_OVER, 1);
    t->wake |= 1ull << owner;
    if (++t->handed[owner] >= QR_TCP_WAKE_EVERY)
        tcp__wake(w, owner);
    return true;
}

void tcp_send(struct worker *w, uint32_t route, const union netaddr *to, const uint8_t *buf,
              size_t len, struct leg *from)
{
    uint32_t owner = TCP_SLOT_WORKER(route & ~LEG_ROUTE_TCP);
    struct relay *r = w->relay;
    struct leg_addr key;
    bool queued;

    if (owner >= r->n_workers || r->workers[owner]->tcp == NULL)
        return;
    /* The remote address and the slot's generation tell this connection
     * from a later one in the same slot. */
    leg_addr_pack(to, route, &key);
    if (owner == w->id) {
        struct tcp_conn *c = tcp__find(w, &key);

        if (c == NULL)
            stat_add(&w->stats, STAT_TCP_DROP_GONE, 1);
        queued = c != NULL && tcp__queue(w, c, buf, len, from != NULL);
    } else {
        /* Counted as forwarded once handed over: the owner counts what it
         * then drops. */
        queued = tcp__hand_over(w, owner, &key, buf, len, from != NULL);
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

/* A valid check came on a connection; its state moves on if its leg is
 * now bound to it. */
static void tcp__checked(struct worker *w, struct tcp_conn *c, uint64_t now_ms)
{
    struct relay *r = w->relay;

    if (c->state == TCP_NEW) {
        c->state = TCP_CHECKED;
        c->deadline_ms = c->accepted_ms + QR_TCP_BIND_TIMEOUT_MS;
    }
    if (c->state == TCP_CHECKED && addrmap_lookup(w->map, &c->key) != ADDRMAP_NONE) {
        c->state = TCP_BOUND;
        atomic_fetch_sub_explicit(&r->tcp_waiting, 1, memory_order_relaxed);
    }
    if (c->state == TCP_BOUND)
        c->deadline_ms = now_ms + (uint64_t)atomic_load_explicit(&r->live.consent_timeout_s,
                                                                  memory_order_relaxed) *
                                      1000;
}

/* One frame from a connection: its first must be a valid check, which
 * names the leg the connection carries. Returns why to close it, or
 * STAT_COUNT to keep it. */
static enum stat_id tcp__frame(struct worker *w, struct tcp_conn *c, uint8_t *buf, size_t len,
                               const struct worker_now *now)
{
    if (c->state == TCP_NEW && demux_classify(buf, len) != DEMUX_STUN)
        return STAT_TCP_CLOSED_BAD_FIRST;
    /* The write buffer comes with the first check: its response needs it. */
    if (c->tx == NULL && (c->tx = malloc(QR_TCP_WRITE_BUFFER)) == NULL)
        return STAT_TCP_CLOSED_ERROR;
    /* Counted here, with the packet counters worker_handle_from adds to. */
    stat_add(&w->stats, STAT_TCP_RX_PACKETS, 1);
    stat_add(&w->stats, STAT_TCP_RX_BYTES, len);
    if (worker_handle_from(w, leg_addr_route(&c->key), &c->peer, buf, len, now, &c->ice))
        tcp__checked(w, c, now->mono_ms);
    else if (c->state == TCP_NEW)
        return STAT_TCP_CLOSED_BAD_FIRST;
    return STAT_COUNT;
}

/* Handles every whole frame in the read buffer from c->rx_off on. Returns
 * the counter to close the connection with, or STAT_COUNT to keep it. The
 * frames stay where they are: UDP sends queued this round point into them
 * (sent at the round's end, tcp_after). */
static enum stat_id tcp__frames(struct worker *w, struct tcp_conn *c,
                                const struct worker_now *now)
{
    enum stat_id close_why = STAT_COUNT;

    while (close_why == STAT_COUNT) {
        size_t n;
        enum tcpframe_status st = tcpframe_next(c->rx + c->rx_off, c->rx_len - c->rx_off,
                                                QR_TCP_FRAME_MAX, &n);

        if (st == TCPFRAME_PARTIAL)
            break;
        if (st != TCPFRAME_OK)
            return STAT_TCP_CLOSED_BAD_FRAME;
        close_why = tcp__frame(w, c, c->rx + c->rx_off + TCPFRAME_HEADER, n, now);
        c->rx_off += (uint32_t)(TCPFRAME_HEADER + n);
    }
    return close_why;
}

/* Moves the partial frame at the end of the read buffer to its start.
 * Sends first what points into the buffer, unless nothing can (a new round:
 * the last one sent everything). */
static void tcp__compact(struct worker *w, struct tcp_conn *c, bool sends_pending)
{
    if (c->rx_off == 0)
        return;
    if (sends_pending)
        worker_tx_flush_all(w);
    memmove(c->rx, c->rx + c->rx_off, c->rx_len - c->rx_off);
    c->rx_len -= c->rx_off;
    c->rx_off = 0;
}

/* Reads what the connection has, a bounded amount per wake-up (level-
 * triggered epoll calls again for the rest), and handles its frames. A
 * short read means the socket is drained: no second call to hear EAGAIN. */
static void tcp__read(struct worker *w, struct tcp_conn *c, const struct worker_now *now)
{
    size_t budget = QR_TCP_READ_PER_WAKE;
    bool sends_pending = false;

    tcp__compact(w, c, false);
    while (budget > 0) {
        size_t room;
        ssize_t n;
        enum stat_id why;

        if (sizeof(c->rx) - c->rx_len < QR_TCP_FRAME_MAX + TCPFRAME_HEADER) {
            tcp__compact(w, c, sends_pending);
            sends_pending = false;
        }
        room = sizeof(c->rx) - c->rx_len;
        n = recv(c->fd, c->rx + c->rx_len, room, 0);
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
        sends_pending = true;
        if ((why = tcp__frames(w, c, now)) != STAT_COUNT) {
            tcp__close(w, c, why);
            return;
        }
        if ((size_t)n < room)
            return;
    }
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
            tcp__queue(w, c, cell->data, cell->len, cell->media);
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

void tcp_event(struct worker *w, uint64_t tag, uint32_t events, const struct worker_now *now)
{
    struct tcp_worker *t = w->tcp;
    uint32_t index = TCP_TAG_INDEX(tag);
    struct tcp_conn *c;

    switch (TCP_TAG_KIND(tag)) {
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
            tcp__close(w, c, STAT_TCP_CLOSED_ERROR);
            break;
        }
        if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0)
            tcp__read(w, c, now);
        break;
    }
}

/* Why a connection must close now, or STAT_COUNT: past its deadline (no
 * first check in time, its leg not bound in time, no check for
 * consent-timeout: RFC 7675 applied to the connection), or its leg no
 * longer bound to it (moved elsewhere, or down). */
static enum stat_id tcp__expired(struct worker *w, const struct tcp_conn *c, uint64_t now_ms)
{
    static const enum stat_id late[] = {
        [TCP_NEW] = STAT_TCP_CLOSED_NO_CHECK,
        [TCP_CHECKED] = STAT_TCP_CLOSED_NOT_BOUND,
        [TCP_BOUND] = STAT_TCP_CLOSED_CONSENT,
    };

    if (c->failed)
        return STAT_TCP_CLOSED_ERROR;
    if (now_ms >= c->deadline_ms)
        return late[c->state];
    if (c->state == TCP_BOUND && addrmap_lookup(w->map, &c->key) == ADDRMAP_NONE)
        return STAT_TCP_CLOSED_UNBOUND;
    return STAT_COUNT;
}

/* Every QR_TCP_SWEEP_MS: closes what tcp__expired says, and listens again
 * if descriptors ran out. */
static void tcp__sweep(struct worker *w, uint64_t now_ms)
{
    struct tcp_worker *t = w->tcp;

    if (now_ms < t->next_sweep_ms)
        return;
    t->next_sweep_ms = now_ms + QR_TCP_SWEEP_MS;
    for (uint32_t i = 0; i < t->n_slots; i++) {
        struct tcp_conn *c = t->conn[i];
        enum stat_id why = c != NULL ? tcp__expired(w, c, now_ms) : STAT_COUNT;

        if (why != STAT_COUNT)
            tcp__close(w, c, why);
    }
    for (unsigned l = 0; t->paused && l < t->n_listen; l++)
        tcp__watch(w->epfd, t->listen_fd[l], EPOLLIN, TCP_TAG(TCP_EV_LISTENER, l),
                   EPOLL_CTL_MOD);
    t->paused = false;
}

void tcp_after(struct worker *w, const struct worker_now *now)
{
    struct tcp_worker *t = w->tcp;

    worker_tx_flush_all(w); /* before any read buffer moves (tcp__compact) */
    for (uint32_t i = 0; i < t->n_flush; i++) {
        struct tcp_conn *c = t->conn[t->flush[i]];

        if (c == NULL || !c->queued)
            continue;
        c->queued = false;
        if (!tcp__write(w, c))
            tcp__close(w, c, STAT_TCP_CLOSED_ERROR);
    }
    t->n_flush = 0;
    while (t->wake != 0)
        tcp__wake(w, (unsigned)__builtin_ctzll(t->wake));
    tcp__sweep(w, now->mono_ms);
}
