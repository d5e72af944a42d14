/* RFC 4571 framing: lengths at every boundary, a frame split anywhere, and
 * the verdicts that close a connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "quietroom/wire/tcpframe.h"

#define MAX 2048

static void test_header_round_trip(void **state)
{
    static const size_t lens[] = {1, 20, 255, 256, 1200, MAX, 65535};
    uint8_t hdr[TCPFRAME_HEADER], buf[TCPFRAME_HEADER + 1];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        tcpframe_header(hdr, lens[i]);
        assert_int_equal((size_t)hdr[0] << 8 | hdr[1], lens[i]);
    }
    tcpframe_header(buf, 1);
    buf[2] = 0x80;
    assert_int_equal(tcpframe_next(buf, sizeof(buf), MAX, &n), TCPFRAME_OK);
    assert_int_equal(n, 1);
}

/* A 1,200-byte frame followed by a 20-byte one, cut at every byte. */
static void test_every_split(void **state)
{
    uint8_t s[2 + 1200 + 2 + 20];
    size_t n;

    (void)state;
    tcpframe_header(s, 1200);
    memset(s + 2, 0xab, 1200);
    tcpframe_header(s + 1202, 20);
    memset(s + 1204, 0xcd, 20);
    for (size_t cut = 0; cut <= sizeof(s); cut++) {
        enum tcpframe_status st = tcpframe_next(s, cut, MAX, &n);

        if (cut < 1202) {
            assert_int_equal(st, TCPFRAME_PARTIAL);
            continue;
        }
        assert_int_equal(st, TCPFRAME_OK);
        assert_int_equal(n, 1200);
        st = tcpframe_next(s + 1202, cut - 1202, MAX, &n);
        assert_int_equal(st, cut < sizeof(s) ? TCPFRAME_PARTIAL : TCPFRAME_OK);
    }
}

static void test_verdicts(void **state)
{
    static const uint8_t zero[] = {0, 0, 1, 2};
    static const uint8_t at_max[] = {MAX >> 8, MAX & 0xff};
    static const uint8_t over[] = {(MAX + 1) >> 8, (MAX + 1) & 0xff};
    static const uint8_t huge[] = {0xff, 0xff};
    static const uint8_t http[] = "GET / HTTP/1.1\r\n";
    size_t n = 12345;

    (void)state;
    assert_int_equal(tcpframe_next(zero, 0, MAX, &n), TCPFRAME_PARTIAL);
    assert_int_equal(tcpframe_next(zero, 1, MAX, &n), TCPFRAME_PARTIAL);
    assert_int_equal(tcpframe_next(zero, sizeof(zero), MAX, &n), TCPFRAME_EMPTY);
    assert_int_equal(tcpframe_next(at_max, sizeof(at_max), MAX, &n), TCPFRAME_PARTIAL);
    /* Too large as soon as the header is in: never waits for 64 KiB. */
    assert_int_equal(tcpframe_next(over, sizeof(over), MAX, &n), TCPFRAME_TOO_LARGE);
    assert_int_equal(tcpframe_next(huge, sizeof(huge), MAX, &n), TCPFRAME_TOO_LARGE);
    assert_int_equal(tcpframe_next(http, sizeof(http) - 1, MAX, &n), TCPFRAME_TOO_LARGE);
    assert_int_equal(n, 12345); /* untouched unless OK */
    assert_string_equal(tcpframe_status_name(TCPFRAME_TOO_LARGE), "too_large");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_round_trip),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_verdicts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
