/* The operator HTTP listener on its own thread, over a real socket: routes,
 * 404 and 405, the bearer token (open routes without it), a body much
 * larger than one write, connections closed before any request, and the
 * exact address it binds (listener_verify). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "quietroom/ops/listener.h"
#include "quietroom/ops/opshttp.h"

#include <arpa/inet.h>
#include <unistd.h>

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

/* A client that connects and goes away before sending a request: the
 * listener had no per-request state for it and crashed (a remote denial of
 * service of any operator port). */
static void test_connection_without_request(void **state)
{
    struct ops_site site = {routes, 3, "x", "s3cret-token"};
    struct sockaddr_in sin = {.sin_family = AF_INET};
    union netaddr a;
    struct ops_http *h;
    char err[256], *r;

    (void)state;
    assert_int_equal(netaddr_parse("127.0.0.1:0", &a), 0);
    assert_non_null(h = ops_http_start(&a, &site, err, sizeof(err)));
    sin.sin_port = htons((uint16_t)ops_http_port(h));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 20; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
        if (i % 2)
            assert_int_equal(write(fd, "GE", 2), 2); /* half a request line */
        close(fd);
    }
    usleep(200 * 1000);
    r = http_get(ops_http_port(h), "/readyz");
    assert_int_equal(http_status(r), 503);
    free(r);
    ops_http_stop(h);
}

/* 127.0.0.1 is bound as 127.0.0.1 (libwebsockets 4.1 made it [::], every
 * interface), [::1] as [::1] only; listener_verify sees both, and a socket
 * bound anywhere else. */
static void test_binds_exactly(void **state)
{
    struct ops_site site = {routes, 3, "x", NULL};
    union netaddr a[3], any;
    struct ops_http *h4, *h6;
    char err[256] = "";
    socklen_t len = sizeof(any);
    int fd;

    (void)state;
    assert_int_equal(netaddr_parse("127.0.0.1:0", &a[0]), 0);
    assert_int_equal(netaddr_parse("[::1]:0", &a[1]), 0);
    assert_non_null(h4 = ops_http_start(&a[0], &site, err, sizeof(err)));
    assert_non_null(h6 = ops_http_start(&a[1], &site, err, sizeof(err)));
    netaddr_set_port(&a[0], (uint16_t)ops_http_port(h4));
    netaddr_set_port(&a[1], (uint16_t)ops_http_port(h6));
    assert_int_equal(listener_verify(a, 2, err, sizeof(err)), 0);
    /* Each must be found: one missing is reported. */
    assert_int_equal(listener_verify(a, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "[::1]"));
    assert_int_equal(listener_verify(a, 2, err, sizeof(err)), 0);

    /* A wildcard listener of our own is what the check exists to catch. */
    assert_int_equal(netaddr_parse("0.0.0.0:0", &any), 0);
    assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    assert_int_equal(bind(fd, &any.sa, netaddr_len(&any)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, &a[2].sa, &len), 0);
    assert_int_equal(listener_verify(a, 2, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "0.0.0.0:"));
    assert_non_null(strstr(err, "not a configured address"));
    assert_int_equal(listener_verify(a, 3, err, sizeof(err)), 0);
    close(fd);
    ops_http_stop(h6);
    ops_http_stop(h4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_and_token),
        cmocka_unit_test(test_port_in_use_is_an_error),
        cmocka_unit_test(test_connection_without_request),
        cmocka_unit_test(test_binds_exactly),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
