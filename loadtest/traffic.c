/* Media: every leg sends its frames on schedule (open loop: late frames are
 * counted, never skipped), SRTP-protected with its send time and sequence
 * number inside; whatever arrives is unprotected (so intact), checked for
 * order and timed. Sends and receives go in batches of LT_BATCH. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "lt.h"
#include "quietroom/base/bytes.h"
#include "quietroom/wire/tcpframe.h"

#define LT_HEADER 12
#define LT_TAG 16
#define LT_CHANNEL_HEADER 4
#define LT_DRAIN_MS 300

struct lt_tx {
    struct mmsghdr msg[LT_BATCH];
    struct iovec iov[LT_BATCH];
    union netaddr to[LT_BATCH];
    char control[LT_BATCH][CMSG_SPACE(sizeof(struct in_pktinfo))];
    uint8_t buf[LT_BATCH][LT_PACKET_MAX + LT_CHANNEL_HEADER];
    unsigned n;
};

struct lt_rx {
    struct mmsghdr msg[LT_BATCH];
    struct iovec iov[LT_BATCH];
    union netaddr from[LT_BATCH];
    char control[LT_BATCH][CMSG_SPACE(sizeof(struct in_pktinfo))];
    uint8_t buf[LT_BATCH][LT_PACKET_MAX + LT_CHANNEL_HEADER];
};

static void lt__flush(struct lt_thread *t, struct lt_tx *tx)
{
    unsigned i = 0;

    while (i < tx->n) {
        int n = sendmmsg(t->fd, tx->msg + i, tx->n - i, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            t->send_errors += tx->n - i;
            break;
        }
        i += (unsigned)n;
    }
    tx->n = 0;
}

/* Builds one protected packet from leg into the next batch slot. */
static void lt__packet(struct lt_thread *t, struct lt_tx *tx, struct lt_leg *l, bool last,
                       bool audio, uint64_t now)
{
    const struct lt_profile *p = &t->opt->profile;
    unsigned slot = tx->n, lo = audio ? p->audio_min : p->size_min;
    unsigned hi = audio ? p->audio_max : p->size_max, size = lo;
    bool turn = l->channel != 0;
    uint8_t *pkt = tx->buf[slot] + (turn ? LT_CHANNEL_HEADER : 0);
    struct in_pktinfo pi = {.ipi_spec_dst = l->ip};
    struct cmsghdr *c;
    int len;

    if (hi > lo)
        size += (unsigned)(l->sent * 2654435761u) % (hi - lo + 1);
    pkt[0] = 0x80;
    pkt[1] = (uint8_t)((audio ? 111 : p->payload_type) | (last ? 0x80 : 0));
    bytes_put16(pkt + 2, ++l->seq);
    bytes_put32(pkt + 4, (uint32_t)(now / 11111u)); /* 90 kHz */
    bytes_put32(pkt + 8, l->ssrc);
    bytes_put64(pkt + LT_HEADER, now);
    bytes_put32(pkt + LT_HEADER + 8, l->sent);
    memset(pkt + LT_HEADER + 12, 0, size - LT_HEADER - LT_TAG - 12);
    len = (int)(size - LT_TAG);
    if (srtp_protect(l->tx, pkt, &len) != srtp_err_status_ok)
        return;
    if (t->opt->transport == LT_TRANSPORT_TCP) {
        /* A connection per leg: nothing to batch (tcp.c frames it). A
         * packet it had to drop counts as sent and lost, as a UDP one the
         * socket refused does. */
        t->send_errors += lt_tcp_send(t, l, pkt, (size_t)len) != 0;
        l->sent++;
        t->sent++;
        t->bytes_sent += (uint64_t)len + TCPFRAME_HEADER; /* on the wire too */
        return;
    }
    if (turn) {
        bytes_put16(tx->buf[slot], l->channel);
        bytes_put16(tx->buf[slot] + 2, (uint16_t)len);
        len += LT_CHANNEL_HEADER;
    }
    tx->to[slot] = l->to;
    tx->iov[slot] = (struct iovec){.iov_base = tx->buf[slot], .iov_len = (size_t)len};
    tx->msg[slot].msg_hdr = (struct msghdr){
        .msg_name = &tx->to[slot].sa,
        .msg_namelen = netaddr_len(&tx->to[slot]),
        .msg_iov = &tx->iov[slot],
        .msg_iovlen = 1,
        .msg_control = tx->control[slot],
        .msg_controllen = sizeof(tx->control[slot]),
    };
    c = CMSG_FIRSTHDR(&tx->msg[slot].msg_hdr);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(pi));
    memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    l->sent++;
    t->sent++;
    t->bytes_sent += (uint64_t)len;
    if (++tx->n == LT_BATCH)
        lt__flush(t, tx);
}

/* Sends every frame due by now; returns the earliest next due time. */
static uint64_t lt__send_due(struct lt_thread *t, struct lt_tx *tx, uint64_t now)
{
    const struct lt_profile *p = &t->opt->profile;
    uint64_t next = UINT64_MAX;

    for (unsigned i = 0; i < t->n_legs; i++) {
        struct lt_leg *l = &t->legs[i];

        /* A generator that fell a whole frame behind is saturated: count it
         * and skip ahead rather than replay the backlog. */
        if (l->next_ns + p->frame_ns < now) {
            t->late_frames += (now - l->next_ns) / p->frame_ns;
            l->next_ns = now;
        }
        if (p->audio_ns != 0 && l->next_audio_ns + p->audio_ns < now) {
            t->late_frames += (now - l->next_audio_ns) / p->audio_ns;
            l->next_audio_ns = now;
        }
        while (l->next_ns <= now) {
            for (unsigned k = 0; k < p->packets_per_frame; k++)
                lt__packet(t, tx, l, k + 1 == p->packets_per_frame, false, now);
            l->next_ns += p->frame_ns;
        }
        while (p->audio_ns != 0 && l->next_audio_ns <= now) {
            lt__packet(t, tx, l, true, true, now);
            l->next_audio_ns += p->audio_ns;
        }
        if (l->next_ns < next)
            next = l->next_ns;
        if (p->audio_ns != 0 && l->next_audio_ns < next)
            next = l->next_audio_ns;
    }
    lt__flush(t, tx);
    return next;
}

static struct lt_leg *lt__dest(struct lt_thread *t, struct msghdr *mh)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;

            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            return lt_leg_by_ip(t, pi.ipi_addr);
        }
    }
    return NULL;
}

static void lt__account(struct lt_thread *t, struct lt_leg *l, uint8_t *pkt, int len,
                        uint64_t now)
{
    srtp_err_status_t e;
    uint64_t sent_ns, us;
    uint32_t seq32;

    if (len < LT_HEADER + LT_TAG + 12 || (pkt[0] & 0xC0) != 0x80 || (pkt[1] & 0x7f) == 0x7f)
        return; /* not our media (a late setup answer, a hello) */
    if ((e = srtp_unprotect(l->rx, pkt, &len)) != srtp_err_status_ok) {
        if (e == srtp_err_status_replay_fail || e == srtp_err_status_replay_old) {
            l->dup++;
        } else {
            l->corrupt++;
            t->corrupt++;
        }
        return;
    }
    sent_ns = bytes_get64(pkt + LT_HEADER);
    seq32 = bytes_get32(pkt + LT_HEADER + 8);
    if (l->received > 0 && seq32 < l->max_seq32)
        l->reordered++;
    else
        l->max_seq32 = seq32;
    l->received++;
    t->received++;
    us = now > sent_ns ? (now - sent_ns) / 1000u : 0;
    if (us < LT_LAT_BUCKETS)
        t->lat[us]++;
    else
        t->lat_overflow++;
    t->lat_count++;
}

/* One packet off a leg's TCP connection: a consent answer or media. */
static void lt__tcp_packet(struct lt_thread *t, struct lt_leg *l, uint8_t *pkt, size_t len,
                           void *ctx)
{
    (void)ctx;
    if (pkt[0] < 0x40)
        t->consent_answered++;
    else
        lt__account(t, l, pkt, (int)len, lt_now_ns());
}

/* Receives everything waiting; returns how many datagrams (or frames). */
static int lt__receive(struct lt_thread *t, struct lt_rx *rx)
{
    int total = 0;

    if (t->opt->transport == LT_TRANSPORT_TCP)
        return (int)lt_tcp_receive(t, 0, lt__tcp_packet, NULL);
    for (;;) {
        uint64_t now;
        int n;

        for (unsigned i = 0; i < LT_BATCH; i++) {
            rx->iov[i] = (struct iovec){.iov_base = rx->buf[i], .iov_len = sizeof(rx->buf[i])};
            rx->msg[i].msg_hdr = (struct msghdr){
                .msg_name = &rx->from[i].sa,
                .msg_namelen = sizeof(rx->from[i]),
                .msg_iov = &rx->iov[i],
                .msg_iovlen = 1,
                .msg_control = rx->control[i],
                .msg_controllen = sizeof(rx->control[i]),
            };
        }
        if ((n = recvmmsg(t->fd, rx->msg, LT_BATCH, MSG_DONTWAIT, NULL)) <= 0)
            return total;
        now = lt_now_ns();
        for (int i = 0; i < n; i++) {
            struct lt_leg *l = lt__dest(t, &rx->msg[i].msg_hdr);
            uint8_t *pkt = rx->buf[i];
            int len = (int)rx->msg[i].msg_len;

            if (l == NULL)
                continue;
            /* A STUN answer (first two bits 0; media starts 0b10): a
             * consent check answered, not media. */
            if (t->opt->mode == LT_MODE_RELAY && len > 0 && pkt[0] < 0x40) {
                t->consent_answered++;
                continue;
            }
            if (t->opt->mode == LT_MODE_TURN) {
                /* ChannelData: 0x4000-0x7FFF channel, length, data. */
                if (len < LT_CHANNEL_HEADER || pkt[0] < 0x40 || pkt[0] > 0x7f)
                    continue;
                len = bytes_get16(pkt + 2) <= len - LT_CHANNEL_HEADER ? bytes_get16(pkt + 2) : -1;
                pkt += LT_CHANNEL_HEADER;
                if (len < 0)
                    continue;
            }
            lt__account(t, l, pkt, len, now);
        }
        total += n;
        if (n < LT_BATCH)
            return total;
    }
}

static void lt__wait(struct lt_thread *t, uint64_t until_ns)
{
    uint64_t now = lt_now_ns();
    struct pollfd p = {.fd = t->fd, .events = POLLIN};
    struct timespec ts;

    if (until_ns <= now)
        return;
    ts.tv_sec = (time_t)((until_ns - now) / 1000000000u);
    ts.tv_nsec = (long)((until_ns - now) % 1000000000u);
    ppoll(&p, 1, &ts, NULL);
}

/* Relay mode: the consent checks that are due, each leg every consent_ms
 * +-20 % as a browser would (LT_CONSENT_MS); without them the relay would close every leg after its
 * consent-timeout and a long run would measure that as loss. */
static uint64_t lt__consent_due(struct lt_thread *t, struct hmac *sha1, uint64_t now)
{
    uint64_t next = UINT64_MAX, every = (uint64_t)t->opt->consent_ms * 1000000ull;

    for (unsigned i = 0; i < t->n_legs; i++) {
        struct lt_leg *l = &t->legs[i];

        if (l->next_consent_ns <= now) {
            lt_legs_check(t, l, sha1);
            t->consent_sent++;
            l->next_consent_ns = now + every * 4 / 5 +
                                 (uint64_t)((l->ssrc ^ (uint32_t)(now >> 20)) % 1000) *
                                     (every * 2 / 5) / 1000;
        }
        if (l->next_consent_ns < next)
            next = l->next_consent_ns;
    }
    return next;
}

void lt_traffic_run(struct lt_thread *t, uint64_t start_ns, uint64_t deadline_ns)
{
    struct lt_tx *tx = calloc(1, sizeof(*tx));
    struct lt_rx *rx = calloc(1, sizeof(*rx));
    bool consent = t->opt->mode == LT_MODE_RELAY;
    struct hmac *sha1 = consent ? hmac_new(HMAC_SHA1) : NULL;
    uint64_t drain_until, next_consent = start_ns;

    if (tx == NULL || rx == NULL || (consent && sha1 == NULL))
        goto out;
    /* Spread the legs over one frame so that they do not all burst at once. */
    for (unsigned i = 0; i < t->n_legs; i++) {
        t->legs[i].next_ns = start_ns + (uint64_t)i * t->opt->profile.frame_ns / t->n_legs;
        t->legs[i].next_audio_ns = start_ns + (uint64_t)i * t->opt->profile.audio_ns / t->n_legs;
        t->legs[i].next_consent_ns =
            start_ns + (uint64_t)i * t->opt->consent_ms * 1000000ull / t->n_legs;
    }
    for (uint64_t now = lt_now_ns(); now < deadline_ns; now = lt_now_ns()) {
        uint64_t next = lt__send_due(t, tx, now);

        if (consent && now >= next_consent)
            next_consent = lt__consent_due(t, sha1, now);
        if (next_consent < next)
            next = next_consent;

        if (lt__receive(t, rx) == 0)
            lt__wait(t, next < deadline_ns ? next : deadline_ns);
    }
    drain_until = lt_now_ns() + LT_DRAIN_MS * 1000000ull;
    while (lt_now_ns() < drain_until) {
        if (lt__receive(t, rx) == 0)
            lt__wait(t, drain_until);
    }
out:
    hmac_free(sha1);
    free(tx);
    free(rx);
}
