/* The operator HTTP listener on its own thread, over a real socket: routes,
 * 404 and 405, the bearer token (open routes without it), and a body much
 * larger than one write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "quietroom/opshttp.h"

#define BIG_LEN 200000

static void hello(void *ctx, const char *query, struct ops_response *out)
{
    char text[256];

    snprintf(text, sizeof(text), "hello %s query=%s\n", (const char *)ctx, query);
    ops_reply(out, 200, "text/plain; version=0.0.4", text);
}

static void unavailable(void *ctx, const char *query, struct ops_response *out)
{
    (void)ctx;
    (void)query;
    ops_reply(out, 503, NULL, "draining\n");
}

static void big(void *ctx, const char *query, struct ops_response *out)
{
    (void)ctx;
    (void)query;
    out->status = 200;
    out->content_type = "text/plain";
    out->len = BIG_LEN;
    out->body = malloc(BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++)
        out->body[i] = (char)('a' + i % 26);
}

static const struct ops_route routes[] = {
    {"/metrics", hello, false},
    {"/readyz", unavailable, true},
    {"/big", big, false},
};

static void test_routes_and_token(void **state)
{
    struct ops_site site = {routes, 3, "world", "s3cret-token"};
    union netaddr a;
    struct ops_http *h;
    char err[256], *r;
    int port;

    (void)state;
    assert_int_equal(netaddr_parse("127.0.0.1:0", &a), 0);
    h = ops_http_start(&a, &site, err, sizeof(err));
    assert_non_null(h);
    port = ops_http_port(h);
    assert_true(port > 0);

    r = http_get(port, "/metrics");
    assert_int_equal(http_status(r), 401);
    assert_non_null(strstr(r, "www-authenticate: Bearer"));
    free(r);
    r = http_request(port, "/metrics", "Authorization: Bearer wrong-token!\r\n");
    assert_int_equal(http_status(r), 401);
    free(r);
    r = http_request(port, "/metrics?x=1", "Authorization: Bearer s3cret-token\r\n");
    assert_int_equal(http_status(r), 200);
    assert_non_null(strstr(r, "content-type: text/plain; version=0.0.4"));
    assert_non_null(strstr(r, "cache-control: no-store"));
    assert_string_equal(http_body(r), "hello world query=x=1\n");
    free(r);

    r = http_get(port, "/readyz");
    assert_int_equal(http_status(r), 503);
    assert_string_equal(http_body(r), "draining\n");
    free(r);
    r = http_get(port, "/nothing");
    assert_int_equal(http_status(r), 404);
    free(r);

    r = http_request(port, "/big", "Authorization: Bearer s3cret-token\r\n");
    assert_int_equal(http_status(r), 200);
    assert_int_equal(strlen(http_body(r)), BIG_LEN);
    assert_int_equal(http_body(r)[BIG_LEN - 1], 'a' + (BIG_LEN - 1) % 26);
    free(r);
    ops_http_stop(h);
}

static void test_port_in_use_is_an_error(void **state)
{
    struct ops_site site = {routes, 3, "x", NULL};
    struct ops_http *a, *b;
    union netaddr addr;
    char err[256] = "", text[64];

    (void)state;
    assert_int_equal(netaddr_parse("127.0.0.1:0", &addr), 0);
    assert_non_null(a = ops_http_start(&addr, &site, err, sizeof(err)));
    snprintf(text, sizeof(text), "127.0.0.1:%d", ops_http_port(a));
    assert_int_equal(netaddr_parse(text, &addr), 0);
    assert_null(b = ops_http_start(&addr, &site, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot listen"));
    ops_http_stop(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_and_token),
        cmocka_unit_test(test_port_in_use_is_an_error),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
