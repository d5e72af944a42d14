/* The load tester's ICE-TCP legs (loadtest/tcp.c) on one end of a
 * socketpair, the test playing the relay on the other: frames cut out of
 * whatever the stream delivers, however split; a stream that breaks
 * framing or ends takes the leg down; what the leg sends is framed, and a
 * socket without room never gets part of a frame. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "lt.h"
#include "quietroom/wire/tcpframe.h"

struct fixture {
    struct lt_thread t;
    struct lt_leg leg;
    int relay;                     /* the test's end */
};

struct seen {
    unsigned n;
    size_t len[8];
    uint8_t first[8];
};

static void on_frame(struct lt_thread *t, struct lt_leg *l, uint8_t *pkt, size_t len, void *ctx)
{
    struct seen *s = ctx;

    (void)t;
    (void)l;
    if (s->n < 8) {
        s->len[s->n] = len;
        s->first[s->n] = pkt[0];
    }
    s->n++;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    int sv[2];

    if (f == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        return -1;
    f->t.legs = &f->leg;
    f->t.n_legs = 1;
    f->leg.tcp_fd = -1;
    if (lt_tcp_init(&f->t) != 0 || lt_tcp_adopt(&f->t, &f->leg, sv[0]) != 0)
        return -1;
    f->relay = sv[1];
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    lt_tcp_free(&f->t);
    close(f->t.fd);
    close(f->relay);
    free(f);
    return 0;
}

/* One frame of len bytes, each byte `fill`, into out; returns its size. */
static size_t frame(uint8_t *out, size_t len, uint8_t fill)
{
    tcpframe_header(out, len);
    memset(out + TCPFRAME_HEADER, fill, len);
    return TCPFRAME_HEADER + len;
}

static void put(int fd, const uint8_t *buf, size_t len)
{
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

static void test_frames_however_split(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[3 * (TCPFRAME_HEADER + 1200)];
    size_t n = 0, third;
    struct seen s = {0};

    n += frame(buf + n, 20, 0x01);   /* a STUN answer */
    n += frame(buf + n, 1200, 0x80); /* media */
    third = n;
    n += frame(buf + n, 300, 0x81);
    /* Two whole frames and one byte of the third's header. */
    put(f->relay, buf, third + 1);
    assert_int_equal(lt_tcp_receive(&f->t, 100, on_frame, &s), 2);
    assert_int_equal(s.len[0], 20);
    assert_int_equal(s.first[0], 0x01);
    assert_int_equal(s.len[1], 1200);
    /* The rest of its header and half its payload: nothing yet. */
    put(f->relay, buf + third + 1, 151);
    assert_int_equal(lt_tcp_receive(&f->t, 100, on_frame, &s), 0);
    put(f->relay, buf + third + 152, n - third - 152);
    assert_int_equal(lt_tcp_receive(&f->t, 100, on_frame, &s), 1);
    assert_int_equal(s.len[2], 300);
    assert_int_equal(s.first[2], 0x81);
    assert_int_equal(f->leg.tcp_fd >= 0, 1);
    assert_int_equal(f->t.tcp_closed, 0);
}

static void expect_closed(struct fixture *f, uint64_t corrupt)
{
    struct seen s = {0};

    lt_tcp_receive(&f->t, 100, on_frame, &s);
    assert_int_equal(f->leg.tcp_fd, -1);
    assert_false(f->leg.ready);
    assert_int_equal(f->t.tcp_closed, 1);
    assert_int_equal(f->t.corrupt, corrupt);
    /* A closed leg sends nothing and is not read again. */
    assert_int_equal(lt_tcp_send(&f->t, &f->leg, "x", 1), -1);
    assert_int_equal(lt_tcp_receive(&f->t, 0, on_frame, &s), 0);
}

static void test_empty_frame_closes(void **state)
{
    struct fixture *f = *state;
    uint8_t zero[TCPFRAME_HEADER] = {0, 0};

    f->leg.ready = true;
    put(f->relay, zero, sizeof(zero));
    expect_closed(f, 1);
}

static void test_oversized_frame_closes(void **state)
{
    struct fixture *f = *state;
    uint8_t big[TCPFRAME_HEADER];

    f->leg.ready = true;
    tcpframe_header(big, LT_PACKET_MAX + 1);
    put(f->relay, big, sizeof(big));
    expect_closed(f, 1);
}

static void test_end_of_stream_closes(void **state)
{
    struct fixture *f = *state;

    f->leg.ready = true;
    close(f->relay);
    f->relay = -1;
    expect_closed(f, 0);
}

/* Reads everything the leg sent and checks it is whole frames of 1,200
 * bytes; returns how many. */
static unsigned drain_frames(struct fixture *f, uint8_t *buf, size_t cap, size_t *have)
{
    unsigned frames = 0;
    size_t off = 0, len = 0;
    ssize_t n;

    while ((n = read(f->relay, buf + *have, cap - *have)) > 0)
        *have += (size_t)n;
    while (tcpframe_next(buf + off, *have - off, LT_PACKET_MAX, &len) == TCPFRAME_OK) {
        assert_int_equal(len, 1200);
        off += TCPFRAME_HEADER + len;
        frames++;
    }
    memmove(buf, buf + off, *have - off);
    *have -= off;
    return frames;
}

static void test_full_socket_drops_whole_frames(void **state)
{
    struct fixture *f = *state;
    static uint8_t pkt[1200], buf[1 << 20];
    int small = 4096;
    unsigned sent = 0, dropped = 0, got = 0;
    size_t have = 0;
    struct seen s = {0};

    memset(pkt, 0x80, sizeof(pkt));
    setsockopt(f->leg.tcp_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    for (int i = 0; i < 200; i++) {
        if (lt_tcp_send(&f->t, &f->leg, pkt, sizeof(pkt)) == 0)
            sent++;
        else
            dropped++;
    }
    print_message("%u sent, %u dropped\n", sent, dropped);
    assert_true(dropped > 0); /* the socket ran out of room */
    /* The reader catches up; EPOLLOUT sends the frame that was kept. */
    for (int i = 0; i < 20 && got < sent; i++) {
        got += drain_frames(f, buf, sizeof(buf), &have);
        lt_tcp_receive(&f->t, 10, on_frame, &s);
    }
    got += drain_frames(f, buf, sizeof(buf), &have);
    assert_int_equal(got, sent); /* every packet sent went whole */
    assert_int_equal(have, 0);   /* and no part of a dropped one */
    assert_int_equal(s.n, 0);
    assert_true(f->leg.tcp_fd >= 0);
    /* With room again, sending goes on. */
    assert_int_equal(lt_tcp_send(&f->t, &f->leg, pkt, sizeof(pkt)), 0);
    assert_int_equal(drain_frames(f, buf, sizeof(buf), &have), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_frames_however_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_frame_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_frame_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_of_stream_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_socket_drops_whole_frames, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
