/* SDP parsing and refusals: what sdp_summarize reads from the real browsers'
 * offers, the browsers' SDP refused once a required line is cut, and every
 * error code with its cause (size limits, bounded growth, bad relay
 * parameters). The rewrite itself is checked in test_sdp.c. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quietroom/wire/sdp.h"

#include "sdp_fixtures.h"

/* What the gathered offers carry, as a native client would read it: numeric
 * UDP candidates only (no TCP, no mDNS names), session-level fallbacks. */
static void test_summarize_browser_offers(void **state)
{
    struct sdp_summary s;
    size_t len;

    (void)state;
    len = load_fixture("chromium-offer-gathered.sdp", in_text, sizeof(in_text));
    assert_int_equal(sdp_summarize(in_text, len, &s), SDP_OK);
    assert_string_equal(s.ice_ufrag, "K0Jo");
    assert_string_equal(s.ice_pwd, "N4GZPo4QRWbGEknuIokAvtSE");
    assert_string_equal(s.setup, "actpass");
    assert_false(s.ice_lite);
    assert_int_equal(s.n_cands, 2);
    assert_string_equal(s.cands[0].addr, "127.0.0.1");
    assert_int_equal(s.cands[0].port, 51767);
    assert_string_equal(s.cands[1].addr, "198.18.0.1");
    assert_int_equal(s.cands[1].port, 56158);

    len = load_fixture("firefox-offer-gathered.sdp", in_text, sizeof(in_text));
    assert_int_equal(sdp_summarize(in_text, len, &s), SDP_OK);
    assert_string_equal(s.ice_ufrag, "c61eae18");
    assert_true(starts(s.fingerprint, "sha-256 5A:A5:B9:35")); /* session level */
    assert_int_equal(s.n_cands, 0);
}

/* Removes the lines of text that start with prefix, or only the last one. */
static size_t remove_lines(char *text, const char *prefix, bool last_only)
{
    static char copy[TEXT_CAP];
    char line[LINE_CAP];
    unsigned n = 0, seen = 0;
    size_t len = 0;

    for (const char *p = text; (p = next_line(p, line)) != NULL;)
        n += starts(line, prefix);
    snprintf(copy, sizeof(copy), "%s", text);
    for (const char *p = copy; (p = next_line(p, line)) != NULL;) {
        if (starts(line, prefix) && (!last_only || ++seen == n))
            continue;
        len += (size_t)snprintf(text + len, TEXT_CAP - len, "%s\r\n", line);
    }
    return len;
}

/* The checks hold on the browsers' own SDP, not only on hand-made text. */
static void test_fixture_refusals(void **state)
{
    static const struct {
        const char *fixture, *remove;
        bool last;
        enum sdp_error want;
    } cases[] = {
        {"chromium-offer.sdp", "a=fingerprint:", false, SDP_ERR_NO_FINGERPRINT},
        {"chromium-offer.sdp", "a=fingerprint:", true, SDP_ERR_NO_FINGERPRINT},
        {"firefox-offer.sdp", "a=fingerprint:", false, SDP_ERR_NO_FINGERPRINT},
        {"chromium-answer.sdp", "a=group:", false, SDP_ERR_NO_BUNDLE},
        {"firefox-answer.sdp", "a=group:", false, SDP_ERR_NO_BUNDLE},
        {"chromium-offer-gathered.sdp", "a=rtcp-mux", true, SDP_ERR_NO_RTCP_MUX},
        /* Firefox's bundle-only video section (port 0) is not rejected */
        {"firefox-offer.sdp", "a=rtcp-mux", true, SDP_ERR_NO_RTCP_MUX},
        {"firefox-offer-gathered.sdp", "m=", false, SDP_ERR_NO_MEDIA},
        {"firefox-offer-gathered.sdp", "a=candidate:", false, SDP_OK},
    };
    size_t out_len;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = load_fixture(cases[i].fixture, in_text, sizeof(in_text));
        size_t cut = remove_lines(in_text, cases[i].remove, cases[i].last);

        assert_true(cut < len);
        assert_int_equal(sdp_rewrite(in_text, cut, &doc_params, out_text, sizeof(out_text),
                                     &out_len),
                         cases[i].want);
    }
}

/* --- refusals ---------------------------------------------------------- */

#define HEAD L("v=0") L("o=- 1 2 IN IP4 192.0.2.10") L("s=-") L("t=0 0")
#define BUNDLE L("a=group:BUNDLE 0")
#define M_AUDIO L("m=audio 9 UDP/TLS/RTP/SAVPF 111")
#define BODY                                                                                       \
    L("c=IN IP4 192.0.2.10") L("a=mid:0") L("a=ice-ufrag:abcd") L("a=ice-pwd:abcdefghijklmnopqrstuv") \
    L("a=setup:actpass") L("a=rtpmap:111 opus/48000/2")
#define FP L("a=fingerprint:sha-256 AB:CD:EF")
#define MUX L("a=rtcp-mux")
#define GOOD HEAD BUNDLE M_AUDIO BODY FP MUX
#define VIDEO(port) L("m=video " #port " UDP/TLS/RTP/SAVPF 96") L("a=mid:1")

struct refusal {
    const char *what;
    const char *sdp;
    size_t len;                    /* 0: strlen */
    enum sdp_error want;
};

static const struct refusal refusals[] = {
    {"the base case is valid", GOOD, 0, SDP_OK},
    {"LF endings", "v=0\no=- 1 2 IN IP4 0.0.0.0\ns=-\nt=0 0\na=group:BUNDLE 0\n"
                   "m=audio 9 UDP/TLS/RTP/SAVPF 0\na=rtcp-mux\na=fingerprint:sha-256 AB\n", 0, SDP_OK},
    {"no final newline", GOOD "a=x", 0, SDP_OK},
    {"one trailing empty line", GOOD "\r\n", 0, SDP_OK},
    {"two trailing empty lines", GOOD "\r\n\r\n", 0, SDP_ERR_MALFORMED},
    {"no fingerprint", HEAD BUNDLE M_AUDIO BODY MUX, 0, SDP_ERR_NO_FINGERPRINT},
    {"fingerprint without value", HEAD BUNDLE M_AUDIO BODY MUX L("a=fingerprint:sha-256"), 0,
     SDP_ERR_NO_FINGERPRINT},
    {"fingerprint at session level", HEAD BUNDLE FP M_AUDIO BODY MUX, 0, SDP_OK},
    {"fingerprint in one section of two", GOOD VIDEO(9) MUX, 0, SDP_ERR_NO_FINGERPRINT},
    {"no BUNDLE group", HEAD M_AUDIO BODY FP MUX, 0, SDP_ERR_NO_BUNDLE},
    {"a group that is not BUNDLE", HEAD L("a=group:LS 0") M_AUDIO BODY FP MUX, 0, SDP_ERR_NO_BUNDLE},
    {"BUNDLE without tags", HEAD L("a=group:BUNDLE") M_AUDIO BODY FP MUX, 0, SDP_ERR_NO_BUNDLE},
    {"BUNDLE at media level only", HEAD M_AUDIO BODY FP MUX BUNDLE, 0, SDP_ERR_NO_BUNDLE},
    {"no rtcp-mux", HEAD BUNDLE M_AUDIO BODY FP, 0, SDP_ERR_NO_RTCP_MUX},
    {"no rtcp-mux in a bundled section", GOOD VIDEO(9) FP, 0, SDP_ERR_NO_RTCP_MUX},
    {"no rtcp-mux in a bundle-only section", GOOD VIDEO(0) FP L("a=bundle-only"), 0,
     SDP_ERR_NO_RTCP_MUX},
    {"a rejected section needs neither", GOOD VIDEO(0), 0, SDP_OK},
    {"data channel without rtcp-mux", GOOD L("m=application 9 UDP/DTLS/SCTP webrtc-datachannel") FP,
     0, SDP_OK},
    {"RTP/AVP", HEAD BUNDLE L("m=audio 9 RTP/AVP 111") BODY FP MUX, 0, SDP_ERR_BAD_TRANSPORT},
    {"RTP/SAVPF without DTLS", HEAD BUNDLE L("m=audio 9 RTP/SAVPF 111") BODY FP MUX, 0,
     SDP_ERR_BAD_TRANSPORT},
    {"DTLS over TCP", HEAD BUNDLE L("m=audio 9 TCP/DTLS/RTP/SAVPF 111") BODY FP MUX, 0,
     SDP_ERR_BAD_TRANSPORT},
    {"lower-case transport", HEAD BUNDLE L("m=audio 9 udp/tls/rtp/savpf 111") BODY FP MUX, 0,
     SDP_ERR_BAD_TRANSPORT},
    {"plain RTP in a rejected section", GOOD L("m=video 0 RTP/AVP 96"), 0, SDP_ERR_BAD_TRANSPORT},
    {"zero m= lines", HEAD BUNDLE FP, 0, SDP_ERR_NO_MEDIA},
    {"empty input", "", 0, SDP_ERR_MALFORMED},
    {"v=1", L("v=1") L("o=- 1 2 IN IP4 192.0.2.10") L("s=-") L("t=0 0") BUNDLE M_AUDIO BODY FP MUX,
     0, SDP_ERR_MALFORMED},
    {"not starting with v=0", L("o=- 1 2 IN IP4 192.0.2.10") GOOD, 0, SDP_ERR_MALFORMED},
    {"leading empty line", "\r\n" GOOD, 0, SDP_ERR_MALFORMED},
    {"NUL byte inside", GOOD "a=x\0y\r\n", sizeof(GOOD "a=x\0y\r\n") - 1, SDP_ERR_MALFORMED},
    {"NUL terminator counted", GOOD, sizeof(GOOD), SDP_ERR_MALFORMED},
    {"a line without '='", GOOD L("a"), 0, SDP_ERR_MALFORMED},
    {"a line of one letter and '='", GOOD L("x="), 0, SDP_OK},
    {"a type that is not a lower-case letter", GOOD L("A=x"), 0, SDP_ERR_MALFORMED},
    {"a space before '='", GOOD L("a =x"), 0, SDP_ERR_MALFORMED},
    {"an empty line in the middle", HEAD "\r\n" BUNDLE M_AUDIO BODY FP MUX, 0, SDP_ERR_MALFORMED},
    {"a tab", GOOD L("a=x\ty"), 0, SDP_ERR_MALFORMED},
    {"a lone CR", GOOD L("a=x\ry"), 0, SDP_ERR_MALFORMED},
    {"CR CR LF", GOOD "a=x\r\r\n", 0, SDP_ERR_MALFORMED},
    {"DEL", GOOD L("a=x\x7f"), 0, SDP_ERR_MALFORMED},
    {"a byte above ASCII", GOOD L("a=caf\xc3\xa9"), 0, SDP_ERR_MALFORMED},
    {"m= with a port range", HEAD BUNDLE L("m=audio 9/2 UDP/TLS/RTP/SAVPF 111") BODY FP MUX, 0,
     SDP_ERR_MALFORMED},
    {"m= with a port above 65535", HEAD BUNDLE L("m=audio 65536 UDP/TLS/RTP/SAVPF 111") BODY FP MUX,
     0, SDP_ERR_MALFORMED},
    {"m= without formats", HEAD BUNDLE L("m=audio 9 UDP/TLS/RTP/SAVPF") BODY FP MUX, 0,
     SDP_ERR_MALFORMED},
    {"m= with two spaces", HEAD BUNDLE L("m=audio  9 UDP/TLS/RTP/SAVPF 111") BODY FP MUX, 0,
     SDP_ERR_MALFORMED},
    {"o= with five fields", L("v=0") L("o=- 1 2 IN IP4") L("s=-") BUNDLE M_AUDIO BODY FP MUX, 0,
     SDP_ERR_MALFORMED},
    {"o= with seven fields", L("v=0") L("o=- 1 2 IN IP4 192.0.2.1 x") BUNDLE M_AUDIO BODY FP MUX, 0,
     SDP_ERR_MALFORMED},
};

static void test_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        const struct refusal *r = &refusals[i];
        size_t len = r->len != 0 ? r->len : strlen(r->sdp), out_len = 99;
        enum sdp_error e = sdp_rewrite(r->sdp, len, &doc_params, out_text, sizeof(out_text),
                                       &out_len);

        if (e != r->want)
            fail_msg("%s: got %s, want %s", r->what, sdp_error_code(e), sdp_error_code(r->want));
        if (e != SDP_OK) {
            assert_int_equal(out_len, 0);
            assert_string_equal(out_text, "");
        }
    }
}

/* Text of n bytes: a valid SDP padded with a long attribute. */
static size_t padded(char *buf, size_t n)
{
    size_t head = strlen(GOOD);

    memcpy(buf, GOOD, head);
    memcpy(buf + head, "a=x:", 4);
    memset(buf + head + 4, 'y', n - head - 6);
    memcpy(buf + n - 2, "\r\n", 2);
    return n;
}

static void test_size_limits(void **state)
{
    static char big[QR_SDP_MAX + 2];
    struct sdp_summary s;
    size_t out_len;

    (void)state;
    padded(big, strlen(GOOD) + 4098);                  /* a line of exactly 4096 */
    assert_int_equal(sdp_rewrite(big, strlen(GOOD) + 4098, &doc_params, out_text, sizeof(out_text),
                                 &out_len),
                     SDP_OK);
    assert_int_equal(sdp_summarize(big, strlen(GOOD) + 4098, &s), SDP_OK);
    padded(big, strlen(GOOD) + 4099);
    assert_int_equal(sdp_rewrite(big, strlen(GOOD) + 4099, &doc_params, out_text, sizeof(out_text),
                                 &out_len),
                     SDP_ERR_MALFORMED);
    assert_int_equal(sdp_summarize(big, strlen(GOOD) + 4099, &s), SDP_ERR_MALFORMED);

    /* an m= line of 4096 that the relay's port would lengthen */
    memcpy(big, HEAD BUNDLE FP, strlen(HEAD BUNDLE FP));
    out_len = strlen(HEAD BUNDLE FP);
    memcpy(big + out_len, "m=audio 9 UDP/TLS/RTP/SAVPF 0", 29);
    memset(big + out_len + 29, '0', 4096 - 29);
    memcpy(big + out_len + 4096, "\r\n" MUX, 2 + strlen(MUX));
    out_len += 4098 + strlen(MUX);
    assert_int_equal(sdp_rewrite(big, out_len, &doc_params, out_text, sizeof(out_text), &out_len),
                     SDP_ERR_MALFORMED);

    /* QR_SDP_MAX + 1 bytes of lines that are each fine */
    memcpy(big, GOOD, strlen(GOOD));
    for (size_t at = strlen(GOOD); at < QR_SDP_MAX + 1; at += 4)
        memcpy(big + at, "a=x\n", 4);
    assert_int_equal(sdp_rewrite(big, QR_SDP_MAX + 1, &doc_params, out_text, sizeof(out_text),
                                 &out_len),
                     SDP_ERR_TOO_LARGE);
    assert_int_equal(sdp_summarize(big, QR_SDP_MAX + 1, &s), SDP_ERR_TOO_LARGE);
}

/* An input within the limit whose rewrite would exceed it is refused too, so
 * what the relay hands on is always accepted by the relay again. */
static void test_rewrite_growth_is_bounded(void **state)
{
    static const char section[] = L("m=application 9 UDP/DTLS/SCTP x");
    static struct sdp_candidate many[SDP_CANDIDATES_MAX];
    static const char head[] = HEAD BUNDLE FP L("a=ice-ufrag:" UFRAG) L("a=ice-pwd:" PWD)
        M_AUDIO MUX;
    struct sdp_rewrite_params p = {UFRAG, PWD, many, 0};
    size_t len, out_len;

    (void)state;
    for (unsigned i = 0; i < SDP_CANDIDATES_MAX; i++) {
        snprintf(many[i].addr, SDP_ADDR_MAX, "2001:db8:ffff:ffff:ffff:ffff:ffff:%x", i);
        many[i].port = 65535;
    }
    memcpy(in_text, head, strlen(head));
    for (len = strlen(head); len + 2 * sizeof(section) < QR_SDP_MAX; len += sizeof(section) - 1)
        memcpy(in_text + len, section, sizeof(section) - 1);
    /* without candidates only a=ice-lite and o= change: the input is fine */
    assert_int_equal(sdp_rewrite(in_text, len, &p, out_text, sizeof(out_text), &out_len), SDP_OK);
    assert_int_equal(out_len, len + strlen("a=ice-lite\r\n") - strlen("192.0.2.10") +
                                  strlen("0.0.0.0"));
    p.n_cands = SDP_CANDIDATES_MAX;
    assert_int_equal(sdp_rewrite(in_text, len, &p, out_text, sizeof(out_text), &out_len),
                     SDP_ERR_TOO_LARGE);
}

/* Relay parameters are written into SDP: a stray CR or space would forge a
 * line, so they are checked too. */
static void test_bad_parameters(void **state)
{
    static const struct sdp_candidate bad_addr[] = {{"relay.example", 3478, SDP_TRANSPORT_UDP}};
    static const struct sdp_candidate bad_port[] = {{"203.0.113.7", 0, SDP_TRANSPORT_UDP}};
    static const struct sdp_candidate zone[] = {{"fe80::1%eth0", 3478, SDP_TRANSPORT_UDP}};
    static const struct sdp_candidate bad_transport[] = {
        {"203.0.113.7", 3478, SDP_TRANSPORT_UDP},
        {"203.0.113.7", 443, SDP_TRANSPORT_COUNT},
    };
    static const struct sdp_candidate bad_tcp_port[] = {
        {"203.0.113.7", 3478, SDP_TRANSPORT_UDP},
        {"203.0.113.7", 0, SDP_TRANSPORT_TCP},
    };
    const struct sdp_rewrite_params bad[] = {
        {"abcd\r\na=x", PWD, doc_cands, 2},
        {UFRAG, "short", doc_cands, 2},
        {"abc", PWD, doc_cands, 2},
        {NULL, PWD, doc_cands, 2},
        {UFRAG, PWD, NULL, 1},
        {UFRAG, PWD, doc_cands, SDP_CANDIDATES_MAX + 1},
        {UFRAG, PWD, bad_addr, 1},
        {UFRAG, PWD, bad_port, 1},
        {UFRAG, PWD, zone, 1},
        {UFRAG, PWD, bad_transport, 2},
        {UFRAG, PWD, bad_tcp_port, 2},
    };
    size_t out_len;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sdp_rewrite(GOOD, strlen(GOOD), &bad[i], out_text, sizeof(out_text),
                                     &out_len),
                         SDP_ERR_BAD_PARAMS);
    assert_int_equal(sdp_rewrite(GOOD, strlen(GOOD), NULL, out_text, sizeof(out_text), &out_len),
                     SDP_ERR_BAD_PARAMS);
}

static void test_summarize_refusals(void **state)
{
    static const char head[] = HEAD M_AUDIO FP L("a=ice-pwd:abcdefghijklmnopqrstuv") "a=ice-ufrag:";
    struct sdp_summary s;
    size_t n = strlen(head);

    (void)state;
    assert_int_equal(sdp_summarize(GOOD, strlen(GOOD), &s), SDP_OK);
    assert_string_equal(s.fingerprint, "sha-256 AB:CD:EF");
    assert_int_equal(sdp_summarize("", 0, &s), SDP_ERR_MALFORMED);
    assert_int_equal(sdp_summarize(HEAD BUNDLE FP, strlen(HEAD BUNDLE FP), &s), SDP_ERR_NO_MEDIA);
    assert_int_equal(sdp_summarize(GOOD VIDEO(0), strlen(GOOD VIDEO(0)), &s), SDP_OK);
    assert_int_equal(sdp_summarize(HEAD VIDEO(0), strlen(HEAD VIDEO(0)), &s), SDP_ERR_NO_MEDIA);
    assert_int_equal(sdp_summarize(HEAD M_AUDIO BODY, strlen(HEAD M_AUDIO BODY), &s),
                     SDP_ERR_NO_FINGERPRINT);
    assert_int_equal(sdp_summarize(HEAD M_AUDIO FP, strlen(HEAD M_AUDIO FP), &s), SDP_ERR_MALFORMED);
    assert_string_equal(s.fingerprint, "");   /* nothing half-filled on failure */

    /* RTP's component only, over UDP, at a numeric address */
    snprintf(in_text, sizeof(in_text), "%s",
             GOOD L("a=candidate:1 2 udp 1 192.0.2.1 5000 typ host")
             L("a=candidate:1 1 tcp 1 192.0.2.2 5000 typ host")
             L("a=candidate:1 1 udp 1 host.local 5000 typ host")
             L("a=candidate:1 1 udp 1 192.0.2.3 0 typ host")
             L("a=candidate:1 1 UDP 1 2001:db8::4 5004 typ srflx raddr 0.0.0.0 rport 0"));
    assert_int_equal(sdp_summarize(in_text, strlen(in_text), &s), SDP_OK);
    assert_int_equal(s.n_cands, 1);
    assert_string_equal(s.cands[0].addr, "2001:db8::4");
    assert_int_equal(s.cands[0].port, 5004);

    /* the longest ufrag RFC 8839 allows fits; a longer one is refused */
    memcpy(in_text, head, n);
    memset(in_text + n, 'u', 300);
    assert_int_equal(sdp_summarize(in_text, n + 256, &s), SDP_OK);
    assert_int_equal(strlen(s.ice_ufrag), 256);
    assert_int_equal(sdp_summarize(in_text, n + 257, &s), SDP_ERR_MALFORMED);
}

static void test_error_codes(void **state)
{
    (void)state;
    for (int e = 0; e < SDP_ERR_COUNT; e++) {
        const char *code = sdp_error_code((enum sdp_error)e);
        const char *msg = sdp_error_message((enum sdp_error)e);

        assert_non_null(code);
        assert_non_null(msg);
        assert_true(strlen(msg) > 10 && msg[strlen(msg) - 1] == '.');
        for (const char *c = code; *c != '\0'; c++)
            assert_true((*c >= 'a' && *c <= 'z') || *c == '_');
        for (int f = 0; f < e; f++)
            assert_string_not_equal(code, sdp_error_code((enum sdp_error)f));
        if (e != SDP_OK)
            assert_true(starts(code, "sdp_"));
    }
    assert_string_equal(sdp_error_code(SDP_ERR_NO_FINGERPRINT), "sdp_no_fingerprint");
    assert_string_equal(sdp_error_code(SDP_ERR_OUT_OF_SPACE), "sdp_out_of_space");
    assert_string_equal(sdp_error_code(SDP_ERR_COUNT), "sdp_unknown");
    assert_non_null(sdp_error_message((enum sdp_error)-1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summarize_browser_offers),
        cmocka_unit_test(test_fixture_refusals),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_rewrite_growth_is_bounded),
        cmocka_unit_test(test_bad_parameters),
        cmocka_unit_test(test_summarize_refusals),
        cmocka_unit_test(test_error_codes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
