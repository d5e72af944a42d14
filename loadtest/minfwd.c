/* quietroom-minfwd: the least a forwarder can do, as the benchmark's
 * measure of the limit. One socket, recvmmsg, a direct-indexed table from
 * the RTP SSRC (link << 1 | side) to the sender's address, sendmmsg to the
 * other side. No STUN, no authentication, no statistics.
 *
 *   quietroom-minfwd --listen 127.0.0.1:PORT [--max-legs N]               */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "quietroom/base/netaddr.h"

#define MINFWD_BATCH 64
#define MINFWD_PACKET 2048

struct minfwd {
    int fd;
    uint32_t max_legs;
    union netaddr *legs;        /* by SSRC; family 0 until heard from */
    struct mmsghdr rx[MINFWD_BATCH], tx[MINFWD_BATCH];
    struct iovec rx_iov[MINFWD_BATCH], tx_iov[MINFWD_BATCH];
    union netaddr from[MINFWD_BATCH];
    uint8_t buf[MINFWD_BATCH][MINFWD_PACKET];
};

static volatile sig_atomic_t minfwd_stop;

static void minfwd__on_signal(int sig)
{
    (void)sig;
    minfwd_stop = 1;
}

static void minfwd__batch(struct minfwd *m, int n)
{
    unsigned out = 0;

    for (int i = 0; i < n; i++) {
        const uint8_t *p = m->buf[i];
        uint32_t ssrc;

        if (m->rx[i].msg_len < 12)
            continue;
        ssrc = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
        if (ssrc >= m->max_legs)
            continue;
        m->legs[ssrc] = m->from[i];
        if (m->legs[ssrc ^ 1].sa.sa_family == 0)
            continue;
        m->tx_iov[out] = (struct iovec){.iov_base = m->buf[i], .iov_len = m->rx[i].msg_len};
        m->tx[out].msg_hdr = (struct msghdr){.msg_name = &m->legs[ssrc ^ 1].sa,
                                             .msg_namelen = sizeof(struct sockaddr_in),
                                             .msg_iov = &m->tx_iov[out],
                                             .msg_iovlen = 1};
        out++;
    }
    for (unsigned sent = 0; sent < out;) {
        int k = sendmmsg(m->fd, m->tx + sent, out - sent, 0);

        if (k <= 0)
            break;
        sent += (unsigned)k;
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"max-legs", required_argument, NULL, 'n'},
        {0, 0, 0, 0},
    };
    static struct minfwd m;
    struct sigaction sa = {.sa_handler = minfwd__on_signal};
    union netaddr addr = {0};
    int c, size = 8 * 1024 * 1024;

    m.max_legs = 1u << 20;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'l' && (netaddr_parse(optarg, &addr) != 0 || !netaddr_is_loopback(&addr) ||
                         addr.sa.sa_family != AF_INET))
            return 2;
        if (c == 'n')
            m.max_legs = (uint32_t)strtoul(optarg, NULL, 10);
        if (c == '?')
            return 2;
    }
    if (addr.sa.sa_family == 0 || (m.legs = calloc(m.max_legs, sizeof(*m.legs))) == NULL) {
        fprintf(stderr, "usage: quietroom-minfwd --listen 127.0.0.1:PORT [--max-legs N]\n");
        return 2;
    }
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if ((m.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(m.fd, &addr.sa, sizeof(struct sockaddr_in)) != 0) {
        perror("minfwd");
        return 1;
    }
    setsockopt(m.fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
    setsockopt(m.fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size));
    for (int i = 0; i < MINFWD_BATCH; i++) {
        m.rx_iov[i] = (struct iovec){.iov_base = m.buf[i], .iov_len = MINFWD_PACKET};
        m.rx[i].msg_hdr.msg_iov = &m.rx_iov[i];
        m.rx[i].msg_hdr.msg_iovlen = 1;
        m.rx[i].msg_hdr.msg_name = &m.from[i];
    }
    while (!minfwd_stop) {
        int n;

        for (int i = 0; i < MINFWD_BATCH; i++)
            m.rx[i].msg_hdr.msg_namelen = sizeof(m.from[i]);
        n = recvmmsg(m.fd, m.rx, MINFWD_BATCH, MSG_WAITFORONE, NULL);
        if (n < 0 && errno != EINTR) {
            perror("minfwd");
            return 1;
        }
        if (n > 0)
            minfwd__batch(&m, n);
    }
    free(m.legs);
    return 0;
}
