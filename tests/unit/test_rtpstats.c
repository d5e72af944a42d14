/* RTP reception statistics from headers: loss, reordering, duplicates,
 * wrap-around, restarts, clock-rate estimation and jitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quietroom/base/bytes.h"
#include "quietroom/wire/rtpstats.h"

static struct rtpstats *fresh(void)
{
    struct rtpstats *st = calloc(1, sizeof(*st));

    rtpstats_reset(st);
    return st;
}

static bool feed(struct rtpstats *st, uint32_t ssrc, uint16_t seq, uint32_t ts, uint64_t at_us)
{
    struct rtp_header h = {.payload_type = 111, .seq = seq, .timestamp = ts, .ssrc = ssrc};

    return rtpstats_update(st, &h, at_us);
}

static struct rtpstats_summary one(const struct rtpstats *st)
{
    struct rtpstats_summary s[QR_SSRC_SLOTS];

    assert_int_equal(rtpstats_read(st, s, QR_SSRC_SLOTS), 1);
    return s[0];
}

static void test_parse_header(void **state)
{
    uint8_t pkt[32] = {0x80, 0xEF, 0x12, 0x34, 0, 0, 0x03, 0xC0, 0xde, 0xad, 0xbe, 0xef};
    struct rtp_header h;

    (void)state;
    assert_true(rtp_parse_header(pkt, 12, &h));
    assert_true(h.marker);
    assert_int_equal(h.payload_type, 111);
    assert_int_equal(h.seq, 0x1234);
    assert_int_equal(h.timestamp, 960);
    assert_int_equal(h.ssrc, 0xdeadbeef);
    assert_false(rtp_parse_header(pkt, 11, &h));
    pkt[0] = 0x40; /* version 1 */
    assert_false(rtp_parse_header(pkt, 12, &h));
    pkt[0] = 0x83; /* three CSRCs need 24 bytes */
    assert_false(rtp_parse_header(pkt, 23, &h));
    assert_true(rtp_parse_header(pkt, 24, &h));
}

static void test_in_order_gap_reorder_duplicate(void **state)
{
    struct rtpstats *st = fresh();
    struct rtpstats_summary s;

    (void)state;
    for (uint16_t i = 0; i < 100; i++)
        feed(st, 7, (uint16_t)(1000 + i), i * 960u, i * 20000u);
    s = one(st);
    assert_int_equal(s.expected, 100);
    assert_int_equal(s.received, 100);
    assert_int_equal(s.lost, 0);

    /* 1100..1104 lost, 1106 before 1105, 1107 twice. */
    feed(st, 7, 1106, 0, 0);
    feed(st, 7, 1105, 0, 0);
    feed(st, 7, 1107, 0, 0);
    feed(st, 7, 1107, 0, 0);
    s = one(st);
    assert_int_equal(s.expected, 108);
    assert_int_equal(s.received, 103);
    assert_int_equal(s.lost, 5);
    assert_int_equal(s.reordered, 1);
    free(st);
}

static void test_wrap_around_and_restart(void **state)
{
    struct rtpstats *st = fresh();
    struct rtpstats_summary s;

    (void)state;
    for (uint32_t i = 0; i < 20; i++)
        feed(st, 9, (uint16_t)(65530 + i), 0, 0);
    s = one(st);
    assert_int_equal(s.expected, 20);
    assert_int_equal(s.lost, 0);

    /* A single wild jump is ignored; two in sequence mean a restart. */
    feed(st, 9, 30000, 0, 0);
    s = one(st);
    assert_int_equal(s.received, 20);
    feed(st, 9, 30001, 0, 0);
    s = one(st);
    assert_int_equal(s.expected, 1);
    assert_int_equal(s.received, 1);
    free(st);
}

static void test_slots_and_untracked(void **state)
{
    struct rtpstats *st = fresh();
    struct rtpstats_summary s[QR_SSRC_SLOTS];

    (void)state;
    for (uint32_t ssrc = 1; ssrc <= QR_SSRC_SLOTS + 2; ssrc++)
        assert_int_equal(feed(st, ssrc, 1, 0, 0), ssrc <= QR_SSRC_SLOTS);
    assert_int_equal(rtpstats_read(st, s, QR_SSRC_SLOTS), QR_SSRC_SLOTS);
    for (int i = 0; i < QR_SSRC_SLOTS; i++)
        assert_int_equal(s[i].ssrc, i + 1);
    free(st);
}

/* Padding-only probes on their own SSRC arrive before media in Chrome; they
 * must not take the slots audio and video need, but they are counted once a
 * slot is theirs. */
static void test_padding_does_not_claim_a_slot(void **state)
{
    struct rtpstats *st = fresh();
    struct rtp_header probe = {.padding = true, .seq = 1, .ssrc = 99};
    struct rtpstats_summary s[QR_SSRC_SLOTS];

    (void)state;
    assert_false(rtpstats_update(st, &probe, 0));
    assert_int_equal(rtpstats_read(st, s, QR_SSRC_SLOTS), 0);
    assert_true(feed(st, 1, 10, 0, 0));
    assert_true(feed(st, 2, 20, 0, 0));
    assert_int_equal(rtpstats_read(st, s, QR_SSRC_SLOTS), 2);
    assert_int_equal(s[0].ssrc, 1);
    assert_int_equal(s[1].ssrc, 2);
    probe.ssrc = 1;
    probe.seq = 11;
    assert_true(rtpstats_update(st, &probe, 0));
    assert_int_equal(rtpstats_read(st, s, QR_SSRC_SLOTS), 2);
    assert_int_equal(s[0].received, 2);
    free(st);
}

/* The reordered counter is 16 bits wide and must stop, not wrap. */
static void test_reordered_saturates(void **state)
{
    struct rtpstats *st = fresh();
    struct rtpstats_summary s;

    (void)state;
    feed(st, 3, 1000, 0, 0);
    for (uint32_t i = 0; i < 70000; i++)
        feed(st, 3, 999, 0, 0);
    s = one(st);
    assert_int_equal(s.reordered, UINT16_MAX);
    free(st);
}

/* 48 kHz audio every 20 ms: the rate is found after a second; perfectly
 * paced arrivals give ~0 jitter, arrivals alternating 0/+10 ms about 10 ms
 * once settled (RFC 3550's estimator converges to the mean deviation). */
static void test_clock_rate_and_jitter(void **state)
{
    struct rtpstats *steady = fresh(), *shaky = fresh();
    struct rtpstats_summary s;

    (void)state;
    for (uint32_t i = 0; i < 500; i++) {
        feed(steady, 1, (uint16_t)i, 5000 + i * 960u, 1000000u + i * 20000u);
        feed(shaky, 1, (uint16_t)i, 5000 + i * 960u, 1000000u + i * 20000u + (i % 2) * 10000u);
    }
    s = one(steady);
    assert_int_equal(s.clock_rate, 48000);
    assert_true(s.jitter_ms >= 0.0 && s.jitter_ms < 0.1);
    s = one(shaky);
    assert_int_equal(s.clock_rate, 48000);
    assert_true(s.jitter_ms > 8.0 && s.jitter_ms < 12.0);
    free(steady);
    free(shaky);
}

static void test_video_clock(void **state)
{
    struct rtpstats *st = fresh();
    struct rtpstats_summary s;

    (void)state;
    for (uint32_t i = 0; i < 120; i++)
        feed(st, 5, (uint16_t)i, i * 3000u, i * 33333u);
    s = one(st);
    assert_int_equal(s.clock_rate, 90000);
    free(st);
}

/* A timestamp jump of exactly 2^31 once the rate is known: the transit
 * difference is INT32_MIN, which must neither overflow (UBSan) nor wrap the
 * estimate; the fuzzer found it. */
static void test_timestamp_jump_half_range(void **state)
{
    struct rtpstats *st = fresh();
    struct rtpstats_summary s;
    uint32_t i;

    (void)state;
    for (i = 0; i < 60; i++)
        feed(st, 1, (uint16_t)i, i * 960u, i * 20000u);
    assert_int_equal(one(st).clock_rate, 48000);
    feed(st, 1, (uint16_t)i, i * 960u + 0x80000000u, i * 20000u);
    s = one(st);
    assert_true(s.jitter_ms > 0.0);
    assert_true(s.jitter_ms < 100000.0);
    free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_header),
        cmocka_unit_test(test_in_order_gap_reorder_duplicate),
        cmocka_unit_test(test_wrap_around_and_restart),
        cmocka_unit_test(test_slots_and_untracked),
        cmocka_unit_test(test_padding_does_not_claim_a_slot),
        cmocka_unit_test(test_reordered_saturates),
        cmocka_unit_test(test_clock_rate_and_jitter),
        cmocka_unit_test(test_video_clock),
        cmocka_unit_test(test_timestamp_jump_half_range),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
