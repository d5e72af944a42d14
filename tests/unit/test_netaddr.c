/* Address parsing and formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "quietroom/base/netaddr.h"

static void round_trip(const char *text)
{
    union netaddr a, b;
    char out[NETADDR_STRLEN];

    if (netaddr_parse(text, &a) != 0)
        fail_msg("rejected %s", text);
    assert_string_equal(netaddr_format(&a, out, sizeof(out)), text);
    assert_int_equal(netaddr_parse(out, &b), 0);
    assert_true(netaddr_equal(&a, &b));
    assert_true(netaddr_hash(&a, 42) == netaddr_hash(&b, 42));
}

static void test_valid(void **state)
{
    union netaddr a;

    (void)state;
    round_trip("127.0.0.1:3478");
    round_trip("198.18.0.1:0");
    round_trip("[::1]:65535");
    round_trip("[2001:db8::7]:443");
    assert_int_equal(netaddr_parse("127.0.0.1:3478", &a), 0);
    assert_true(netaddr_is_loopback(&a));
    assert_int_equal(netaddr_port(&a), 3478);
    assert_int_equal(netaddr_parse("[::]:1", &a), 0);
    assert_true(netaddr_is_wildcard(&a));
    assert_int_equal(netaddr_parse("0.0.0.0:1", &a), 0);
    assert_true(netaddr_is_wildcard(&a));
}

static void test_invalid(void **state)
{
    static const char *const bad[] = {
        "", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:65536", "127.0.0.1:-1",
        "127.0.0.1:80x", "localhost:80", "::1:80", "[::1]", "[::1]80", "[::1]:", "[zz::1]:80",
        "[::1%nosuchif0]:80", "1.2.3.4.5:80", "256.0.0.1:80",
    };
    union netaddr a;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (netaddr_parse(bad[i], &a) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

static void test_equal_and_hash(void **state)
{
    union netaddr a, b, c;

    (void)state;
    netaddr_parse("10.0.0.1:5000", &a);
    netaddr_parse("10.0.0.1:5001", &b);
    netaddr_parse("[::ffff:10.0.0.1]:5000", &c);
    assert_false(netaddr_equal(&a, &b));
    assert_false(netaddr_equal(&a, &c));
    assert_true(netaddr_hash(&a, 1) != netaddr_hash(&b, 1));
    assert_true(netaddr_hash(&a, 1) != netaddr_hash(&a, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_equal_and_hash),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
