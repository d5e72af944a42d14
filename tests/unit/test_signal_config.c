/* quietroom-signal's relay lines: UDP media addresses as before, TCP ones
 * after "tcp:" (the relay's listen-tcp), every bad token refused with a
 * message that names it, and what a relay line gives sdp_rewrite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

#define UFRAG "AQFrBXvjdtUpymHCiyoAAABlX6iR"
#define PWD "JBpYAkO6ZAxG14tMPB0iF6qMdFFO/JFf"

/* Large (paths, origins, relays): static, not on a test's stack. */
static struct signal_config cfg;
static char err[512];

/* Loads the options every server needs and one relay line. */
static enum config_result load_relay(const char *spec)
{
    char *argv[] = {
        "quietroom-signal", "--origin", "http://127.0.0.1:8443", "--ehr-jwks", "/nonexistent",
        "--issuer", "iss", "--audience", "aud", "--relay-secret-file", "/nonexistent",
        "--relay", (char *)spec,
    };

    err[0] = '\0';
    return signal_config_load(&cfg, (int)(sizeof(argv) / sizeof(argv[0])), argv, err,
                              sizeof(err));
}

static void assert_cand(unsigned i, const char *addr, unsigned port, enum sdp_transport t)
{
    const struct signal_relay_spec *r = &cfg.relays[0];

    assert_true(i < r->n_cands);
    assert_string_equal(r->cands[i].addr, addr);
    assert_int_equal(r->cands[i].port, port);
    assert_int_equal(r->cands[i].transport, t);
}

/* The syntax relays were configured with before TCP still means UDP. */
static void test_udp_only_line(void **state)
{
    (void)state;
    assert_int_equal(load_relay("relay-1 127.0.0.1:7600 203.0.113.7:3478 [2001:db8::7]:3478"),
                     CONFIG_OK);
    assert_int_equal(cfg.n_relays, 1);
    assert_string_equal(cfg.relays[0].name, "relay-1");
    assert_string_equal(cfg.relays[0].control, "127.0.0.1:7600");
    assert_int_equal(cfg.relays[0].n_cands, 2);
    assert_cand(0, "203.0.113.7", 3478, SDP_TRANSPORT_UDP);
    assert_cand(1, "2001:db8::7", 3478, SDP_TRANSPORT_UDP);
}

static void test_tcp_addresses(void **state)
{
    (void)state;
    assert_int_equal(load_relay("relay-1 127.0.0.1:7600 tcp:203.0.113.7:443 203.0.113.7:3478 "
                                "tcp:[2001:db8::7]:443\t[2001:db8::7]:3478"),
                     CONFIG_OK);
    assert_int_equal(cfg.relays[0].n_cands, 4);
    assert_cand(0, "203.0.113.7", 443, SDP_TRANSPORT_TCP);
    assert_cand(1, "203.0.113.7", 3478, SDP_TRANSPORT_UDP);
    assert_cand(2, "2001:db8::7", 443, SDP_TRANSPORT_TCP);
    assert_cand(3, "2001:db8::7", 3478, SDP_TRANSPORT_UDP);
}

/* A relay line, and a piece of the message it must be refused with. */
static const struct {
    const char *spec;
    const char *why;
} bad_lines[] = {
    {"r 127.0.0.1:7600 tcp:", "\"tcp:\" is not a media address"},
    {"r 127.0.0.1:7600 203.0.113.7:3478 tcp:203.0.113.7", "tcp:ADDR:PORT or tcp:[V6ADDR]:PORT"},
    {"r 127.0.0.1:7600 203.0.113.7:3478 tcp:2001:db8::7:443", "\"tcp:2001:db8::7:443\""},
    {"r 127.0.0.1:7600 203.0.113.7:3478 tcp:[2001:db8::7]", "is not a media address"},
    {"r 127.0.0.1:7600 203.0.113.7:3478 TCP:203.0.113.7:443", "\"TCP:203.0.113.7:443\""},
    {"r 127.0.0.1:7600 203.0.113.7:3478 udp:203.0.113.7:3478", "is not a media address"},
    {"r 127.0.0.1:7600 203.0.113.7:3478 tcp:tcp:203.0.113.7:443", "is not a media address"},
    {"r 127.0.0.1:7600 203.0.113.7:3478 tcp:relay.example:443", "is not a media address"},
    {"r 127.0.0.1:7600 203.0.113.7:3478 tcp:0.0.0.0:443", "wildcard address or port 0"},
    {"r 127.0.0.1:7600 203.0.113.7:3478 tcp:[::]:443", "wildcard address or port 0"},
    {"r 127.0.0.1:7600 203.0.113.7:3478 tcp:203.0.113.7:0", "wildcard address or port 0"},
    {"r 127.0.0.1:7600 203.0.113.7:3478 tcp:203.0.113.7:65536", "is not a media address"},
    {"r 127.0.0.1:7600 0.0.0.0:3478", "wildcard address or port 0"},
    {"r 127.0.0.1:7600 tcp:203.0.113.7:443", "relay r: needs a UDP media address"},
    {"r 127.0.0.1:7600 tcp:203.0.113.7:443 tcp:[2001:db8::7]:443", "needs a UDP media address"},
    {"r tcp:127.0.0.1:7600 203.0.113.7:3478", "\"tcp:127.0.0.1:7600\" is not ADDR:PORT"},
    {"r 127.0.0.1:7600", "expected \"NAME CONTROL-ADDR:PORT MEDIA-ADDR:PORT...\""},
};

static void test_bad_lines(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
        assert_int_equal(load_relay(bad_lines[i].spec), CONFIG_ERROR);
        if (strstr(err, bad_lines[i].why) == NULL)
            fail_msg("\"%s\" gave \"%s\"", bad_lines[i].spec, err);
    }
}

/* As many media addresses as a relay can listen on, and not one more. */
static void test_media_address_limit(void **state)
{
    char spec[1024], why[64];
    size_t n = (size_t)snprintf(spec, sizeof(spec), "r 127.0.0.1:7600 203.0.113.7:3478");

    (void)state;
    for (int i = 1; i < SDP_CANDIDATES_MAX; i++)
        n += (size_t)snprintf(spec + n, sizeof(spec) - n, " %s203.0.113.7:%d",
                              i % 2 ? "tcp:" : "", 1000 + i);
    assert_int_equal(load_relay(spec), CONFIG_OK);
    assert_int_equal(cfg.relays[0].n_cands, SDP_CANDIDATES_MAX);
    assert_int_equal(SDP_CANDIDATES_MAX, QR_LISTEN_MAX + QR_TCP_LISTEN_MAX);
    snprintf(spec + n, sizeof(spec) - n, " tcp:203.0.113.7:999");
    assert_int_equal(load_relay(spec), CONFIG_ERROR);
    snprintf(why, sizeof(why), "relay: at most %d media addresses, UDP and TCP together",
             SDP_CANDIDATES_MAX);
    assert_string_equal(err, why);
}

/* What media.c hands sdp_rewrite for this relay: its UDP candidates, then
 * its passive TCP ones, IPv6 included. */
static void test_relay_line_to_sdp(void **state)
{
    static const char offer[] =
        "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
        "a=fingerprint:sha-256 AB:CD\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        "c=IN IP4 192.0.2.10\r\na=mid:0\r\na=rtcp-mux\r\na=ice-ufrag:abcd\r\n"
        "a=ice-pwd:abcdefghijklmnopqrstuv\r\n";
    static const char cands[] =
        "a=candidate:1 1 udp 2130706431 203.0.113.7 3478 typ host\r\n"
        "a=candidate:2 1 tcp 2124414975 203.0.113.7 443 typ host tcptype passive\r\n"
        "a=candidate:3 1 tcp 2124414719 2001:db8::7 443 typ host tcptype passive\r\n"
        "a=end-of-candidates\r\n";
    const struct signal_relay_spec *r = &cfg.relays[0];
    struct sdp_rewrite_params p;
    char out[2048];
    size_t len;

    (void)state;
    assert_int_equal(load_relay("relay-1 127.0.0.1:7600 tcp:203.0.113.7:443 "
                                "tcp:[2001:db8::7]:443 203.0.113.7:3478"),
                     CONFIG_OK);
    p = (struct sdp_rewrite_params){UFRAG, PWD, r->cands, r->n_cands};
    assert_int_equal(sdp_rewrite(offer, strlen(offer), &p, out, sizeof(out), &len), SDP_OK);
    assert_non_null(strstr(out, "m=audio 3478 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 203.0.113.7\r\n"));
    assert_non_null(strstr(out, cands));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_udp_only_line),
        cmocka_unit_test(test_tcp_addresses),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_media_address_limit),
        cmocka_unit_test(test_relay_line_to_sdp),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
