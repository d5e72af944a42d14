/* The running relay's ICE-TCP side against raw peers: a TCP leg binds and
 * forwards to a UDP leg and back; a connection must open with a valid check;
 * bad framing closes it; strangers that connect and say nothing, say
 * garbage, announce a 64 KiB frame or never read are refused, timed out or
 * dropped and counted, while everyone else keeps being served. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "quietroom/base/bytes.h"
#include "quietroom/base/hmac.h"
#include "quietroom/base/limits.h"
#include "quietroom/wire/tcpframe.h"
#include "world.h"

#define WAIT_MS 1000
#define SILENCE_MS 300
#define PAYLOAD_MARK "PAYLOAD-SECRET-"

/* A raw ICE-TCP peer: one connection, RFC 4571 frames. */
struct tcp_peer {
    int fd;
    uint8_t buf[4 * (QR_TCP_FRAME_MAX + TCPFRAME_HEADER)];
    size_t have;
};

static int setup(void **state)
{
    static const char *const listen[] = {"127.0.0.1:0", NULL};
    /* Four workers: frames between two TCP legs usually cross from the
     * worker that accepted one connection to the other's (its inbox). */
    static const char *const extra[] = {"--listen-tcp", "127.0.0.1:0", "--workers", "4", NULL};
    struct world_opts o = {.no_signal = true, .listen = listen, .relay_extra = extra};

    return world_setup(state, &o);
}

/* Connects to the relay's listen-tcp address number i. */
static void tcp_open_at(struct tcp_peer *p, const struct world *w, int i)
{
    const union netaddr *a = &w->relay.listen_tcp[i];

    assert_true(i < w->relay.n_listen_tcp);
    p->have = 0;
    p->fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(p->fd >= 0);
    assert_int_equal(connect(p->fd, &a->sa, netaddr_len(a)), 0);
}

static void tcp_open(struct tcp_peer *p, const struct world *w)
{
    tcp_open_at(p, w, 0);
}

static void tcp_close(struct tcp_peer *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

static void tcp_send_raw(struct tcp_peer *p, const void *buf, size_t len)
{
    assert_int_equal(send(p->fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void tcp_send_frame(struct tcp_peer *p, const uint8_t *buf, size_t len)
{
    uint8_t hdr[TCPFRAME_HEADER];

    tcpframe_header(hdr, len);
    tcp_send_raw(p, hdr, sizeof(hdr));
    tcp_send_raw(p, buf, len);
}

/* The next frame within timeout_ms: its length, -1 on timeout, -2 once the
 * relay has closed the connection. */
static int tcp_recv_frame(struct tcp_peer *p, uint8_t *out, size_t cap, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        size_t n;
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        ssize_t got;

        if (tcpframe_next(p->buf, p->have, QR_TCP_FRAME_MAX, &n) == TCPFRAME_OK) {
            assert_true(n <= cap);
            memcpy(out, p->buf + TCPFRAME_HEADER, n);
            p->have -= TCPFRAME_HEADER + n;
            memmove(p->buf, p->buf + TCPFRAME_HEADER + n, p->have);
            return (int)n;
        }
        if (now_ms() >= deadline || poll(&pfd, 1, (int)(deadline - now_ms())) <= 0)
            return -1;
        got = recv(p->fd, p->buf + p->have, sizeof(p->buf) - p->have, 0);
        if (got <= 0)
            return -2;
        p->have += (size_t)got;
    }
}

/* True once the relay has closed the connection (within timeout_ms). */
static bool tcp_closed_by_relay(struct tcp_peer *p, int timeout_ms)
{
    uint8_t junk[2048];
    int r;

    while ((r = tcp_recv_frame(p, junk, sizeof(junk), timeout_ms)) >= 0)
        ;
    return r == -2;
}

/* A nominated check over TCP that must succeed. */
static void tcp_bind(struct tcp_peer *p, const char *ufrag, const char *pwd)
{
    struct check c = {.ufrag = ufrag, .pwd = pwd, .nominate = true};
    uint8_t req[512], resp[2048], txid[STUN_TXID_LEN];
    size_t n = check_request(&c, req, sizeof(req), txid);
    struct hmac *h = hmac_new(HMAC_SHA1);
    struct stun_msg m;
    int got;

    assert_true(n > 0);
    tcp_send_frame(p, req, n);
    got = tcp_recv_frame(p, resp, sizeof(resp), WAIT_MS);
    assert_true(got > 0);
    assert_int_equal(stun_parse(resp, (size_t)got, &m), STUN_PARSE_OK);
    assert_memory_equal(m.txid, txid, STUN_TXID_LEN);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
    assert_true(stun_check_integrity(resp, &m, (const uint8_t *)pwd, strlen(pwd), h));
    hmac_free(h);
}

static void udp_bind(struct udp_peer *p, const union netaddr *relay, const char *ufrag,
                     const char *pwd)
{
    struct check c = {.ufrag = ufrag, .pwd = pwd, .nominate = true};
    uint8_t raw[2048];
    struct stun_msg m;

    assert_int_equal(peer_check(p, relay, &c, &m, raw, WAIT_MS), 1);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
}

static size_t rtp_packet(uint8_t *buf, uint16_t seq, uint32_t ssrc, size_t len)
{
    memset(buf, 0x5a, len);
    buf[0] = 0x80;
    buf[1] = 111;
    bytes_put16(buf + 2, seq);
    bytes_put32(buf + 4, seq * 960u);
    bytes_put32(buf + 8, ssrc);
    memcpy(buf + 12, PAYLOAD_MARK, strlen(PAYLOAD_MARK));
    return len;
}

/* One link: leg a on UDP, leg b on TCP. */
struct mixed {
    json_t *creds;
    struct udp_peer a;
    struct tcp_peer b;
};

static void mixed_open(struct world *w, struct mixed *m, const char *sid)
{
    m->creds = ctl_creds(&w->relay, sid, 1);
    assert_non_null(m->creds);
    assert_int_equal(peer_open(&m->a, "127.0.0.1:0"), 0);
    udp_bind(&m->a, &w->relay.listen[0], creds_ufrag(m->creds, 0, 0), creds_pwd(m->creds, 0, 0));
    tcp_open(&m->b, w);
    tcp_bind(&m->b, creds_ufrag(m->creds, 0, 1), creds_pwd(m->creds, 0, 1));
}

static void mixed_close(struct mixed *m)
{
    peer_close(&m->a);
    tcp_close(&m->b);
    json_decref(m->creds);
}

/* a -> b over UDP then TCP, and b -> a back; asserts both arrive whole. */
static void mixed_exchange(struct world *w, struct mixed *m, uint16_t seq)
{
    uint8_t pkt[1200], got[2048];

    rtp_packet(pkt, seq, 0xA1A1, sizeof(pkt));
    assert_int_equal(peer_send(&m->a, &w->relay.listen[0], pkt, sizeof(pkt)), 0);
    assert_int_equal(tcp_recv_frame(&m->b, got, sizeof(got), WAIT_MS), (int)sizeof(pkt));
    assert_memory_equal(got, pkt, sizeof(pkt));
    rtp_packet(pkt, seq, 0xB1B1, 200);
    tcp_send_frame(&m->b, pkt, 200);
    assert_int_equal(peer_recv(&m->a, got, sizeof(got), WAIT_MS, NULL), 200);
    assert_memory_equal(got, pkt, 200);
}

/* Once every connection closed, the gauges are back to zero: nothing
 * leaked, nothing wrapped. */
static void expect_all_closed(struct world *w)
{
    for (int i = 0; i < 250 && relay_stat(&w->relay, "tcp_connections", "open") != 0; i++)
        usleep(20 * 1000);
    assert_int_equal(relay_stat(&w->relay, "tcp_connections", "open"), 0);
    assert_int_equal(relay_stat(&w->relay, "tcp_connections", "waiting"), 0);
}

/* A check for a leg, nominated or not, on an open connection; returns
 * whether an answer came. */
static bool tcp_check(struct tcp_peer *p, const char *ufrag, const char *pwd, bool nominate)
{
    struct check c = {.ufrag = ufrag, .pwd = pwd, .nominate = nominate};
    uint8_t req[512], resp[2048], txid[STUN_TXID_LEN];
    size_t n = check_request(&c, req, sizeof(req), txid);

    tcp_send_frame(p, req, n);
    return tcp_recv_frame(p, resp, sizeof(resp), SILENCE_MS) > 0;
}

static void test_tcp_leg_forwards_to_udp_leg(void **state)
{
    struct world *w = *state;
    struct mixed m;
    json_t *resp;

    mixed_open(w, &m, "tcp-mixed");
    for (uint16_t s = 0; s < 50; s++)
        mixed_exchange(w, &m, s);
    assert_int_equal(relay_stat(&w->relay, "tcp", "packets_received"), 51); /* + the check */
    assert_int_equal(relay_stat(&w->relay, "tcp", "packets_forwarded"), 50);
    assert_int_equal(relay_stat(&w->relay, "tcp_connections", "accepted"), 1);
    resp = relay_call(&w->relay, "session", "tcp-mixed");
    {
        json_t *legs = json_object_get(json_array_get(json_object_get(resp, "links"), 0), "legs");

        assert_string_equal(json_string_value(json_object_get(json_object_get(legs, "a"),
                                                              "transport")),
                            "udp");
        assert_string_equal(json_string_value(json_object_get(json_object_get(legs, "b"),
                                                              "transport")),
                            "tcp");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(legs, "b"),
                                                            "packets_forwarded")),
                         50);
    }
    json_decref(resp);
    /* The TCP leg's connection closes: its leg goes down at once, audited. */
    tcp_close(&m.b);
    for (int i = 0; i < 250 && relay_stat(&w->relay, "tcp_closed", "peer") != 1; i++)
        usleep(20 * 1000);
    assert_int_equal(relay_stat(&w->relay, "tcp_closed", "peer"), 1);
    {
        /* The audit writer is a thread of its own: the record may follow
         * the counter by a moment. */
        char *audit = NULL;

        for (int i = 0; i < 100; i++) {
            free(audit);
            audit = read_text(w->relay.audit);
            if (audit != NULL && strstr(audit, "connection_closed") != NULL)
                break;
            usleep(20 * 1000);
        }
        assert_non_null(audit);
        assert_non_null(strstr(audit, "\"transport\":\"tcp\""));
        assert_non_null(strstr(audit, "connection_closed"));
        assert_null(strstr(audit, PAYLOAD_MARK));
        free(audit);
    }
    mixed_close(&m);
    expect_all_closed(w);
}

/* Both legs on TCP: frames go from one connection to the other, whichever
 * workers accepted them. */
#define LINKS 8

static void test_tcp_leg_to_tcp_leg(void **state)
{
    struct world *w = *state;
    json_t *creds = ctl_creds(&w->relay, "tcp-both", LINKS);
    struct tcp_peer a[LINKS], b[LINKS];
    uint8_t pkt[1000], got[2048];

    assert_non_null(creds);
    for (int k = 0; k < LINKS; k++) {
        tcp_open(&a[k], w);
        tcp_open(&b[k], w);
        tcp_bind(&a[k], creds_ufrag(creds, k, 0), creds_pwd(creds, k, 0));
        tcp_bind(&b[k], creds_ufrag(creds, k, 1), creds_pwd(creds, k, 1));
    }
    for (uint16_t s = 0; s < 30; s++) {
        for (int k = 0; k < LINKS; k++) {
            rtp_packet(pkt, s, 0xC1C1 + (uint32_t)k, sizeof(pkt));
            tcp_send_frame(&a[k], pkt, sizeof(pkt));
            assert_int_equal(tcp_recv_frame(&b[k], got, sizeof(got), WAIT_MS), (int)sizeof(pkt));
            assert_memory_equal(got, pkt, sizeof(pkt));
            tcp_send_frame(&b[k], pkt, 100);
            assert_int_equal(tcp_recv_frame(&a[k], got, sizeof(got), WAIT_MS), 100);
            assert_memory_equal(got, pkt, 100);
        }
    }
    assert_int_equal(relay_stat(&w->relay, "tcp", "packets_forwarded"), LINKS * 60);
    /* With 4 workers, all 8 pairs on one worker each is a 1 in 65,536
     * chance: the inbox between workers carried some. */
    assert_true(relay_stat(&w->relay, "tcp", "handed_over") > 0);
    for (int k = 0; k < LINKS; k++) {
        tcp_close(&a[k]);
        tcp_close(&b[k]);
    }
    json_decref(creds);
    expect_all_closed(w);
}

/* What a connection must open with, and what framing closes it. */
static void test_tcp_refuses_bad_openings(void **state)
{
    struct world *w = *state;
    static const uint8_t http[] = "GET / HTTP/1.1\r\nHost: relay\r\n\r\n";
    static const uint8_t zero[] = {0, 0};
    static const uint8_t huge[] = {0xff, 0xff};
    json_t *creds = ctl_creds(&w->relay, "tcp-bad", 1);
    struct check forged = {.ufrag = creds_ufrag(creds, 0, 0), .pwd = "not-the-password-at-all",
                           .nominate = true};
    uint8_t pkt[200], txid[STUN_TXID_LEN];
    struct tcp_peer p;
    size_t n;

    /* Media before any check. */
    tcp_open(&p, w);
    tcp_send_frame(&p, pkt, rtp_packet(pkt, 1, 1, sizeof(pkt)));
    assert_true(tcp_closed_by_relay(&p, WAIT_MS));
    tcp_close(&p);
    /* A check whose integrity fails. */
    tcp_open(&p, w);
    n = check_request(&forged, pkt, sizeof(pkt), txid);
    tcp_send_frame(&p, pkt, n);
    assert_true(tcp_closed_by_relay(&p, WAIT_MS));
    tcp_close(&p);
    assert_int_equal(relay_stat(&w->relay, "tcp_closed", "bad_first_frame"), 2);
    /* HTTP, a zero length, a 64 KiB length (closed without waiting for it). */
    tcp_open(&p, w);
    tcp_send_raw(&p, http, sizeof(http) - 1);
    assert_true(tcp_closed_by_relay(&p, WAIT_MS));
    tcp_close(&p);
    tcp_open(&p, w);
    tcp_send_raw(&p, zero, sizeof(zero));
    assert_true(tcp_closed_by_relay(&p, WAIT_MS));
    tcp_close(&p);
    tcp_open(&p, w);
    tcp_send_raw(&p, huge, sizeof(huge));
    assert_true(tcp_closed_by_relay(&p, WAIT_MS));
    tcp_close(&p);
    assert_int_equal(relay_stat(&w->relay, "tcp_closed", "bad_frame"), 3);
    assert_int_equal(relay_stat(&w->relay, "legs", "binds"), 0);
    json_decref(creds);
}

#define SILENT 300

/* Hundreds of connections that say nothing: at most QR_TCP_WAITING_MAX are
 * held, the rest refused; all are closed after QR_TCP_CHECK_TIMEOUT_MS; a
 * call already up keeps flowing all along, and a new one gets in after. */
static void test_tcp_silent_crowd(void **state)
{
    struct world *w = *state;
    static struct tcp_peer crowd[SILENT];
    struct mixed m, late;
    long long refused;
    uint64_t until;
    uint16_t seq = 0;
    int closed = 0;

    mixed_open(w, &m, "tcp-crowd");
    for (int i = 0; i < SILENT; i++)
        tcp_open(&crowd[i], w);
    for (int i = 0; i < 250 && relay_stat(&w->relay, "tcp_connections", "accepted") +
                                          relay_stat(&w->relay, "tcp_connections",
                                                     "refused_waiting") <
                                      SILENT + 1;
         i++)
        usleep(20 * 1000);
    refused = relay_stat(&w->relay, "tcp_connections", "refused_waiting");
    assert_int_equal(refused, SILENT - QR_TCP_WAITING_MAX);
    assert_int_equal(relay_stat(&w->relay, "tcp_connections", "waiting"), QR_TCP_WAITING_MAX);
    until = now_ms() + QR_TCP_CHECK_TIMEOUT_MS + 1000;
    while (now_ms() < until)
        mixed_exchange(w, &m, seq++);
    for (int i = 0; i < SILENT; i++) {
        closed += tcp_closed_by_relay(&crowd[i], WAIT_MS);
        tcp_close(&crowd[i]);
    }
    assert_int_equal(closed, SILENT);
    assert_int_equal(relay_stat(&w->relay, "tcp_closed", "no_check"), QR_TCP_WAITING_MAX);
    mixed_open(w, &late, "tcp-crowd-late");
    mixed_exchange(w, &late, 0);
    mixed_exchange(w, &m, seq);
    mixed_close(&late);
    mixed_close(&m);
    expect_all_closed(w);
}

/* A TCP leg that never reads while media flows to it: its frames are
 * dropped and counted once its buffers fill; another call forwards every
 * packet meanwhile; the worker never blocks. */
static void test_tcp_stalled_reader(void **state)
{
    struct world *w = *state;
    struct mixed stalled, other;
    uint8_t pkt[1200];
    long long slow;

    mixed_open(w, &stalled, "tcp-stalled");
    {
        /* A fixed, small receive window: the client's buffer does not
         * grow to soak up what the relay sends. */
        int size = 64 * 1024;

        setsockopt(stalled.b.fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }
    mixed_open(w, &other, "tcp-flowing");
    for (uint16_t s = 0; s < 2000; s++) {
        rtp_packet(pkt, s, 0xD1D1, sizeof(pkt));
        assert_int_equal(peer_send(&stalled.a, &w->relay.listen[0], pkt, sizeof(pkt)), 0);
        if (s % 20 == 0)
            mixed_exchange(w, &other, s);
    }
    for (int i = 0; i < 250 && relay_stat(&w->relay, "dropped", "tcp_slow_reader") <= 0; i++)
        usleep(20 * 1000);
    slow = relay_stat(&w->relay, "dropped", "tcp_slow_reader");
    /* 2,000 frames of 1,202 bytes: far more than the write buffer and the
     * kernel's buffers on both ends together hold. */
    assert_true(slow > 0);
    assert_true(slow < 2000);
    mixed_exchange(w, &other, 9999);
    /* Reading again: every frame that was kept is whole and in order (the
     * write buffer wrapped many times), and the leg flows again. */
    {
        uint8_t got[2048];
        int n, kept = 0;
        long last = -1;

        while ((n = tcp_recv_frame(&stalled.b, got, sizeof(got), SILENCE_MS)) > 0) {
            assert_int_equal(n, (int)sizeof(pkt));
            assert_int_equal(got[0], 0x80);
            assert_true((long)bytes_get16(got + 2) > last);
            last = bytes_get16(got + 2);
            kept++;
        }
        /* The relay may still have been dropping when slow was first read
         * (ASan makes its worker slower than this sender): count again now
         * that every frame it kept has been read. */
        slow = relay_stat(&w->relay, "dropped", "tcp_slow_reader");
        assert_int_equal(kept + slow, 2000);
        mixed_exchange(w, &stalled, 5000);
    }
    mixed_close(&other);
    mixed_close(&stalled);
    expect_all_closed(w);
}

/* A connection carries the leg its first check named: a check for another
 * leg on it goes unanswered, counted. */
static void test_tcp_other_leg_ignored(void **state)
{
    struct world *w = *state;
    struct mixed m;

    mixed_open(w, &m, "tcp-other");
    assert_false(tcp_check(&m.b, creds_ufrag(m.creds, 0, 0), creds_pwd(m.creds, 0, 0), true));
    assert_int_equal(relay_stat(&w->relay, "stun", "ignored_other_leg"), 1);
    assert_true(tcp_check(&m.b, creds_ufrag(m.creds, 0, 1), creds_pwd(m.creds, 0, 1), false));
    mixed_exchange(w, &m, 1);
    mixed_close(&m);
    expect_all_closed(w);
}

/* The TCP leg moves to UDP (the browser found UDP after all): the relay
 * closes the connection its leg left, and the leg stays up where it went. */
static void test_tcp_leg_moves_to_udp(void **state)
{
    struct world *w = *state;
    struct mixed m;
    struct udp_peer b2;
    uint8_t pkt[300], got[2048];

    mixed_open(w, &m, "tcp-move");
    mixed_exchange(w, &m, 1);
    assert_int_equal(peer_open(&b2, "127.0.0.1:0"), 0);
    udp_bind(&b2, &w->relay.listen[0], creds_ufrag(m.creds, 0, 1), creds_pwd(m.creds, 0, 1));
    assert_true(tcp_closed_by_relay(&m.b, 2 * WAIT_MS));
    assert_int_equal(relay_stat(&w->relay, "tcp_closed", "leg_unbound"), 1);
    assert_int_equal(relay_stat(&w->relay, "legs", "moves"), 1);
    rtp_packet(pkt, 2, 0xE1E1, sizeof(pkt));
    assert_int_equal(peer_send(&m.a, &w->relay.listen[0], pkt, sizeof(pkt)), 0);
    assert_int_equal(peer_recv(&b2, got, sizeof(got), WAIT_MS, NULL), (int)sizeof(pkt));
    {
        char *audit = read_text(w->relay.audit);

        assert_non_null(audit);
        assert_null(strstr(audit, "connection_closed")); /* the leg never went down */
        free(audit);
    }
    peer_close(&b2);
    mixed_close(&m);
    expect_all_closed(w);
}

/* Firefox nominates its TCP pair as well as its UDP one: the leg stays on
 * UDP while UDP carries it, and follows to TCP once UDP went quiet. */
static void test_tcp_nomination_keeps_a_live_udp_leg(void **state)
{
    struct world *w = *state;
    json_t *creds = ctl_creds(&w->relay, "tcp-keep", 1);
    struct udp_peer a, b;
    struct tcp_peer bt;
    uint8_t pkt[300], got[2048];

    assert_non_null(creds);
    assert_int_equal(peer_open(&a, "127.0.0.1:0"), 0);
    assert_int_equal(peer_open(&b, "127.0.0.1:0"), 0);
    udp_bind(&a, &w->relay.listen[0], creds_ufrag(creds, 0, 0), creds_pwd(creds, 0, 0));
    udp_bind(&b, &w->relay.listen[0], creds_ufrag(creds, 0, 1), creds_pwd(creds, 0, 1));
    tcp_open(&bt, w);
    assert_true(tcp_check(&bt, creds_ufrag(creds, 0, 1), creds_pwd(creds, 0, 1), true));
    assert_int_equal(relay_stat(&w->relay, "legs", "kept"), 1);
    assert_int_equal(relay_stat(&w->relay, "legs", "moves"), 0);
    rtp_packet(pkt, 1, 0xF1F1, sizeof(pkt));
    assert_int_equal(peer_send(&a, &w->relay.listen[0], pkt, sizeof(pkt)), 0);
    assert_int_equal(peer_recv(&b, got, sizeof(got), WAIT_MS, NULL), (int)sizeof(pkt));
    /* UDP goes quiet (its network went away): the next nomination moves. */
    usleep((QR_LEG_MOVE_QUIET_MS + 200) * 1000);
    assert_true(tcp_check(&bt, creds_ufrag(creds, 0, 1), creds_pwd(creds, 0, 1), true));
    assert_int_equal(relay_stat(&w->relay, "legs", "moves"), 1);
    assert_int_equal(peer_send(&a, &w->relay.listen[0], pkt, sizeof(pkt)), 0);
    assert_int_equal(tcp_recv_frame(&bt, got, sizeof(got), WAIT_MS), (int)sizeof(pkt));
    tcp_close(&bt);
    peer_close(&a);
    peer_close(&b);
    json_decref(creds);
    expect_all_closed(w);
}

/* One visitor's credentials cannot hold more than the waiting connections
 * strangers can: checks without a nomination never bind, and such
 * connections close QR_TCP_BIND_TIMEOUT_MS after they opened, while a bound
 * call flows throughout. */
static void test_tcp_checked_never_bound(void **state)
{
    struct world *w = *state;
    static struct tcp_peer idle[QR_TCP_WAITING_MAX];
    struct mixed m;
    uint64_t until;
    uint16_t seq = 0;
    int closed = 0;

    mixed_open(w, &m, "tcp-idle");
    for (int i = 0; i < QR_TCP_WAITING_MAX; i++) {
        tcp_open(&idle[i], w);
        assert_true(tcp_check(&idle[i], creds_ufrag(m.creds, 0, 0), creds_pwd(m.creds, 0, 0),
                              false));
    }
    assert_int_equal(relay_stat(&w->relay, "tcp_connections", "waiting"), QR_TCP_WAITING_MAX);
    {
        struct tcp_peer more;

        tcp_open(&more, w);
        /* 3 x: under ASan on a loaded CI machine 1 s was once too short. */
        assert_true(tcp_closed_by_relay(&more, 3 * WAIT_MS));
        tcp_close(&more);
    }
    assert_int_equal(relay_stat(&w->relay, "tcp_connections", "refused_waiting"), 1);
    until = now_ms() + QR_TCP_BIND_TIMEOUT_MS + 1000;
    while (now_ms() < until)
        mixed_exchange(w, &m, seq++);
    for (int i = 0; i < QR_TCP_WAITING_MAX; i++) {
        closed += tcp_closed_by_relay(&idle[i], WAIT_MS);
        tcp_close(&idle[i]);
    }
    assert_int_equal(closed, QR_TCP_WAITING_MAX);
    assert_int_equal(relay_stat(&w->relay, "tcp_closed", "not_bound"), QR_TCP_WAITING_MAX);
    mixed_exchange(w, &m, seq);
    mixed_close(&m);
    expect_all_closed(w);
}

/* A bound TCP leg with no check for consent-timeout: its connection is
 * closed and its leg goes down. */
static void test_tcp_consent_closes(void **state)
{
    static const char *const listen[] = {"127.0.0.1:0", NULL};
    static const char *const extra[] = {"--listen-tcp", "127.0.0.1:0", "--consent-timeout", "1",
                                        NULL};
    struct world_opts o = {.no_signal = true, .listen = listen, .relay_extra = extra};
    struct world quick = {0};
    struct mixed m;

    (void)state;
    assert_int_equal(world_start(&quick, &o), 0);
    mixed_open(&quick, &m, "tcp-consent");
    mixed_exchange(&quick, &m, 1);
    assert_true(tcp_closed_by_relay(&m.b, 3 * WAIT_MS));
    assert_int_equal(relay_stat(&quick.relay, "tcp_closed", "consent"), 1);
    mixed_close(&m);
    expect_all_closed(&quick);
    assert_int_equal(world_stop(&quick), 0);
}

/* Out of file descriptors: accept fails, the listener rests instead of
 * spinning (a few refusals counted, not thousands), calls in progress go
 * on, and new connections get in once descriptors are free again. */
static void test_tcp_out_of_descriptors(void **state)
{
    struct world *w = *state;
    static struct tcp_peer crowd[40];
    char pid[16], limit[32], *out;
    char *argv[] = {"/usr/bin/prlimit", "--pid", pid, limit, NULL};
    struct mixed m, late;
    int status, fds = 0;
    long long failed;

    mixed_open(w, &m, "tcp-fds");
    snprintf(pid, sizeof(pid), "%d", (int)w->relay.pid);
    {
        char dir[64];
        DIR *d;

        snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)w->relay.pid);
        assert_non_null(d = opendir(dir));
        while (readdir(d) != NULL)
            fds++;
        closedir(d);
    }
    snprintf(limit, sizeof(limit), "--nofile=%d:%d", fds + 8, fds + 8);
    out = run_command(argv, &status);
    free(out);
    assert_int_equal(status, 0);
    for (int i = 0; i < 40; i++)
        tcp_open(&crowd[i], w);
    for (uint16_t s = 0; s < 50; s++)
        mixed_exchange(w, &m, s);
    for (int i = 0; i < 40; i++)
        tcp_close(&crowd[i]);
    /* Read once descriptors are free again: the control endpoint needs one. */
    usleep(3 * QR_TCP_SWEEP_MS * 1000);
    failed = relay_stat(&w->relay, "tcp_connections", "refused_error");
    assert_true(failed > 0);
    assert_true(failed < 200); /* one per listener per 250 ms, not a spin */
    mixed_open(w, &late, "tcp-fds-late");
    mixed_exchange(w, &late, 1);
    mixed_close(&late);
    mixed_close(&m);
    expect_all_closed(w);
}

/* IPv6: a leg on ICE-TCP over IPv6 and one on UDP over IPv4, both ways. */
static void test_tcp_ipv6_leg_to_ipv4_udp_leg(void **state)
{
    static const char *const listen[] = {"127.0.0.1:0", NULL};
    static const char *const extra[] = {"--listen-tcp", "127.0.0.1:0", "--listen-tcp", "[::1]:0",
                                        NULL};
    struct world_opts o = {.no_signal = true, .listen = listen, .relay_extra = extra};
    struct world both = {0};
    struct mixed m;

    (void)state;
    assert_int_equal(world_start(&both, &o), 0);
    assert_int_equal(both.relay.n_listen_tcp, 2);
    assert_int_equal(both.relay.listen_tcp[1].sa.sa_family, AF_INET6);
    m.creds = ctl_creds(&both.relay, "tcp-v6", 1);
    assert_non_null(m.creds);
    assert_int_equal(peer_open(&m.a, "127.0.0.1:0"), 0);
    udp_bind(&m.a, &both.relay.listen[0], creds_ufrag(m.creds, 0, 0), creds_pwd(m.creds, 0, 0));
    tcp_open_at(&m.b, &both, 1);
    tcp_bind(&m.b, creds_ufrag(m.creds, 0, 1), creds_pwd(m.creds, 0, 1));
    for (uint16_t s = 0; s < 10; s++)
        mixed_exchange(&both, &m, s);
    assert_int_equal(relay_stat(&both.relay, "tcp", "packets_forwarded"), 10);
    mixed_close(&m);
    expect_all_closed(&both);
    assert_int_equal(world_stop(&both), 0);
}

/* max-tcp-connections: with every connection taken by a call, the next
 * ones are refused and counted, and the calls go on. */
static void test_tcp_connection_limit(void **state)
{
    static const char *const listen[] = {"127.0.0.1:0", NULL};
    static const char *const extra[] = {"--listen-tcp", "127.0.0.1:0", "--max-tcp-connections",
                                        "2", NULL};
    struct world_opts o = {.no_signal = true, .listen = listen, .relay_extra = extra};
    struct world small = {0};
    struct mixed m[2];
    struct tcp_peer extra_conn[3];

    (void)state;
    assert_int_equal(world_start(&small, &o), 0);
    mixed_open(&small, &m[0], "tcp-limit-1");
    mixed_open(&small, &m[1], "tcp-limit-2");
    for (int i = 0; i < 3; i++) {
        tcp_open(&extra_conn[i], &small);
        assert_true(tcp_closed_by_relay(&extra_conn[i], WAIT_MS));
        tcp_close(&extra_conn[i]);
    }
    assert_int_equal(relay_stat(&small.relay, "tcp_connections", "refused_full"), 3);
    assert_int_equal(relay_stat(&small.relay, "tcp_connections", "open"), 2);
    mixed_exchange(&small, &m[0], 1);
    mixed_exchange(&small, &m[1], 1);
    mixed_close(&m[0]);
    mixed_close(&m[1]);
    assert_int_equal(world_stop(&small), 0);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tcp_leg_forwards_to_udp_leg, setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_tcp_leg_to_tcp_leg, setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_tcp_refuses_bad_openings, setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_tcp_silent_crowd, setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_tcp_stalled_reader, setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_tcp_other_leg_ignored, setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_tcp_leg_moves_to_udp, setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_tcp_nomination_keeps_a_live_udp_leg, setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_tcp_checked_never_bound, setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_tcp_out_of_descriptors, setup, world_teardown),
        cmocka_unit_test(test_tcp_consent_closes),   /* its own world */
        cmocka_unit_test(test_tcp_ipv6_leg_to_ipv4_udp_leg), /* its own world */
        cmocka_unit_test(test_tcp_connection_limit), /* its own world */
    };

    return world_run_tests("relay_tcp_limits", tests, sizeof(tests) / sizeof(tests[0]), NULL,
                           NULL);
}
