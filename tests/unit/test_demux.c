/* RFC 7983 / RFC 9443 first-byte demultiplexing at every range boundary,
 * RTP/RTCP separation (RFC 5761) and the minimum lengths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "quietroom/wire/demux.h"

struct row {
    uint8_t b0, b1;
    size_t len;
    enum demux_class want;
};

static const struct row rows[] = {
    {0, 0x01, 20, DEMUX_STUN},         {3, 0x01, 20, DEMUX_STUN},
    {0, 0x01, 19, DEMUX_TOO_SHORT},    {4, 0, 100, DEMUX_UNKNOWN},
    {15, 0, 100, DEMUX_UNKNOWN},       {16, 0, 100, DEMUX_ZRTP},
    {19, 0, 100, DEMUX_ZRTP},          {20, 0xfe, 13, DEMUX_DTLS},
    {22, 0xfe, 100, DEMUX_DTLS},       {63, 0xfe, 100, DEMUX_DTLS},
    {22, 0xfe, 12, DEMUX_TOO_SHORT},   {64, 0, 100, DEMUX_TURN_CHANNEL},
    {79, 0, 100, DEMUX_TURN_CHANNEL},  {80, 0, 100, DEMUX_QUIC},
    {127, 0, 100, DEMUX_QUIC},         {0x80, 111, 12, DEMUX_RTP},
    {0x80, 0x80 | 111, 100, DEMUX_RTP}, {0x90, 96, 100, DEMUX_RTP},
    {0x80, 111, 11, DEMUX_TOO_SHORT},  {0x80, 200, 8, DEMUX_RTCP},
    {0x81, 201, 100, DEMUX_RTCP},      {0x8f, 206, 100, DEMUX_RTCP},
    {0x80, 192, 100, DEMUX_RTCP},      {0x80, 223, 100, DEMUX_RTCP},
    {0x80, 224, 100, DEMUX_RTP},       {0x80, 200, 7, DEMUX_TOO_SHORT},
    {0x80, 0, 1, DEMUX_TOO_SHORT},     {191, 111, 100, DEMUX_RTP},
    {192, 0, 100, DEMUX_QUIC},         {255, 0, 100, DEMUX_QUIC},
};

static void test_table(void **state)
{
    uint8_t buf[128];

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        enum demux_class got;

        memset(buf, 0, sizeof(buf));
        buf[0] = rows[i].b0;
        buf[1] = rows[i].b1;
        got = demux_classify(buf, rows[i].len);
        if (got != rows[i].want)
            fail_msg("first bytes %u,%u len %zu: got %s, want %s", rows[i].b0, rows[i].b1,
                     rows[i].len, demux_class_name(got), demux_class_name(rows[i].want));
    }
}

static void test_every_first_byte_has_a_class(void **state)
{
    uint8_t buf[64] = {0};

    (void)state;
    assert_int_equal(demux_classify(buf, 0), DEMUX_UNKNOWN);
    for (int b = 0; b < 256; b++) {
        enum demux_class c;

        buf[0] = (uint8_t)b;
        c = demux_classify(buf, sizeof(buf));
        assert_true(c < DEMUX_CLASS_COUNT);
        assert_string_not_equal(demux_class_name(c), "invalid");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_every_first_byte_has_a_class),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
