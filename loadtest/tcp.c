/* ICE-TCP legs (RFC 6544 against the relay's passive candidate): each leg
 * is its own TCP connection from its loopback address (127.T.x.y, any
 * port) to the relay's TCP address, and every packet on it, STUN or SRTP,
 * goes with the 2-byte length of RFC 4571 (quietroom/wire/tcpframe.h, the
 * relay's own reader). The thread's fd is an epoll set of its legs' sockets,
 * so the code that waits on it does not know which transport it waits for.
 * Nothing blocks: a frame that does not fit the socket now is kept (one per
 * leg, sent when the socket has room); a packet due while one is kept is
 * counted as a send error, as a full UDP socket buffer would be. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lt.h"
#include "quietroom/wire/tcpframe.h"

#define LT_TCP_EVENTS 64
/* Reads per readable leg per pass: a leg the relay floods must not keep the
 * thread from the others or from its own sending schedule. */
#define LT_TCP_READS 4

struct lt_tcp {
    uint8_t rx[LT_TCP_RX];         /* bytes received, not yet a whole frame */
    size_t rx_len;
    uint8_t tx[TCPFRAME_HEADER + LT_PACKET_MAX]; /* a frame the socket had no room for */
    size_t tx_off, tx_len;
};

int lt_tcp_init(struct lt_thread *t)
{
    t->fd = epoll_create1(EPOLL_CLOEXEC);
    return t->fd < 0 ? -1 : 0;
}

static int lt__tcp_watch(struct lt_thread *t, struct lt_leg *l, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = l};

    return epoll_ctl(t->fd, op, l->tcp_fd, &ev);
}

/* Drops a connection the relay closed or broke framing on: the leg is gone
 * (its packets count as lost from then on). */
static void lt__tcp_close(struct lt_thread *t, struct lt_leg *l)
{
    if (l->tcp_fd < 0)
        return;
    epoll_ctl(t->fd, EPOLL_CTL_DEL, l->tcp_fd, NULL);
    close(l->tcp_fd);
    l->tcp_fd = -1;
    l->ready = false;
    t->tcp_closed++;
}

int lt_tcp_adopt(struct lt_thread *t, struct lt_leg *l, int fd)
{
    if (l->tcp == NULL && (l->tcp = calloc(1, sizeof(*l->tcp))) == NULL)
        return -1;
    l->tcp_fd = fd;
    l->tcp->rx_len = l->tcp->tx_len = l->tcp->tx_off = 0;
    if (lt__tcp_watch(t, l, EPOLL_CTL_ADD, EPOLLIN) != 0) {
        l->tcp_fd = -1;
        return -1;
    }
    return 0;
}

int lt_tcp_open(struct lt_thread *t, struct lt_leg *l)
{
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_addr = l->ip};
    int one = 1, fd;

    if (l->tcp_fd >= 0)
        return 0;
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    /* Small packets go out when sent, as a browser's do (Nagle would hold
     * an audio packet back for the previous one's ACK). */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* The port is picked at connect, per destination: thousands of legs do
     * not each hold an ephemeral port of their own from bind on. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&from, sizeof(from)) != 0 ||
        (connect(fd, &t->opt->server.sa, netaddr_len(&t->opt->server)) != 0 &&
         errno != EINPROGRESS) ||
        lt_tcp_adopt(t, l, fd) != 0) {
        close(fd);
        return -1;
    }
    return 0;
}

/* Sends what is kept; 0 once nothing is, -1 if the socket is full again
 * (EPOLLOUT then says when to try) or broken. */
static int lt__tcp_flush(struct lt_thread *t, struct lt_leg *l)
{
    struct lt_tcp *c = l->tcp;

    while (c->tx_off < c->tx_len) {
        ssize_t n = send(l->tcp_fd, c->tx + c->tx_off, c->tx_len - c->tx_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == ENOTCONN)) {
            lt__tcp_watch(t, l, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
            return -1;
        }
        if (n < 0) {
            lt__tcp_close(t, l);
            return -1;
        }
        c->tx_off += (size_t)n;
    }
    c->tx_off = c->tx_len = 0;
    lt__tcp_watch(t, l, EPOLL_CTL_MOD, EPOLLIN);
    return 0;
}

/* Keeps the unsent rest of a frame (header + payload, sent bytes already). */
static void lt__tcp_keep(struct lt_thread *t, struct lt_leg *l, const uint8_t *hdr,
                         const void *buf, size_t len, size_t sent)
{
    struct lt_tcp *c = l->tcp;

    memcpy(c->tx, hdr, TCPFRAME_HEADER);
    memcpy(c->tx + TCPFRAME_HEADER, buf, len);
    c->tx_off = sent;
    c->tx_len = TCPFRAME_HEADER + len;
    lt__tcp_watch(t, l, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
}

int lt_tcp_send(struct lt_thread *t, struct lt_leg *l, const void *buf, size_t len)
{
    uint8_t hdr[TCPFRAME_HEADER];
    struct iovec iov[2] = {{.iov_base = hdr, .iov_len = sizeof(hdr)},
                           {.iov_base = (void *)buf, .iov_len = len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t n;

    if (l->tcp_fd < 0 || len == 0 || len > LT_PACKET_MAX)
        return -1;
    if (l->tcp->tx_len > 0 && lt__tcp_flush(t, l) != 0)
        return -1;
    tcpframe_header(hdr, len);
    do
        n = sendmsg(l->tcp_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == ENOTCONN)) {
        /* Not connected yet, or no room: a whole frame is dropped, never part of one. */
        if (errno == EAGAIN)
            lt__tcp_watch(t, l, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
        return -1;
    }
    if (n < 0) {
        lt__tcp_close(t, l);
        return -1;
    }
    if ((size_t)n < sizeof(hdr) + len)
        lt__tcp_keep(t, l, hdr, buf, len, (size_t)n); /* counts as sent: it will be */
    return 0;
}

/* Hands every whole frame gathered on l to fn; closes the connection on a
 * frame no packet can be. */
static unsigned lt__tcp_frames(struct lt_thread *t, struct lt_leg *l, lt_frame_fn fn, void *ctx)
{
    struct lt_tcp *c = l->tcp;
    size_t off = 0, n = 0;
    unsigned frames = 0;
    enum tcpframe_status s;

    while ((s = tcpframe_next(c->rx + off, c->rx_len - off, LT_PACKET_MAX, &n)) ==
           TCPFRAME_OK) {
        fn(t, l, c->rx + off + TCPFRAME_HEADER, n, ctx);
        off += TCPFRAME_HEADER + n;
        frames++;
    }
    if (s != TCPFRAME_PARTIAL) {
        t->corrupt++;
        lt__tcp_close(t, l);
        return frames;
    }
    memmove(c->rx, c->rx + off, c->rx_len - off);
    c->rx_len -= off;
    return frames;
}

static unsigned lt__tcp_read(struct lt_thread *t, struct lt_leg *l, lt_frame_fn fn, void *ctx)
{
    unsigned frames = 0;

    for (int i = 0; i < LT_TCP_READS && l->tcp_fd >= 0; i++) {
        struct lt_tcp *c = l->tcp;
        ssize_t n = recv(l->tcp_fd, c->rx + c->rx_len, sizeof(c->rx) - c->rx_len, MSG_DONTWAIT);

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0) {
            lt__tcp_close(t, l);
            break;
        }
        c->rx_len += (size_t)n;
        frames += lt__tcp_frames(t, l, fn, ctx);
    }
    return frames;
}

unsigned lt_tcp_receive(struct lt_thread *t, int timeout_ms, lt_frame_fn fn, void *ctx)
{
    struct epoll_event ev[LT_TCP_EVENTS];
    unsigned frames = 0;
    int n;

    while ((n = epoll_wait(t->fd, ev, LT_TCP_EVENTS, timeout_ms)) > 0) {
        for (int i = 0; i < n; i++) {
            struct lt_leg *l = ev[i].data.ptr;

            if (l->tcp_fd < 0)
                continue; /* closed by an earlier event of this batch */
            if ((ev[i].events & EPOLLOUT) && l->tcp->tx_len > 0)
                lt__tcp_flush(t, l);
            else if (ev[i].events & EPOLLOUT)
                lt__tcp_watch(t, l, EPOLL_CTL_MOD, EPOLLIN); /* connected; nothing kept */
            if (l->tcp_fd >= 0 && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                frames += lt__tcp_read(t, l, fn, ctx);
        }
        timeout_ms = 0; /* what came while we read, but wait only once */
        if (n < LT_TCP_EVENTS)
            break;
    }
    return frames;
}

void lt_tcp_free(struct lt_thread *t)
{
    for (unsigned i = 0; t->legs != NULL && i < t->n_legs; i++) {
        struct lt_leg *l = &t->legs[i];

        if (l->tcp_fd >= 0)
            close(l->tcp_fd);
        l->tcp_fd = -1;
        free(l->tcp);
        l->tcp = NULL;
    }
}
