/* SDP rewriter: the six real browser SDPs (Chromium 156, Firefox ESR 153)
 * rewritten for a relay, with and without TCP candidates, and checked line
 * by line against their input; a golden rewrite of a hand-made SDP, the TCP
 * candidates' order and priorities, its connection and port fallbacks, and
 * session-level credentials. What sdp_summarize reads and every error code
 * with its cause are in test_sdp_parse.c. */
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

#define SECTIONS_MAX 16
#define TOKENS_MAX 64

static const struct sdp_candidate loopback_cands[] = {{"127.0.0.1", 3478, SDP_TRANSPORT_UDP},
                                                      {"::1", 3478, SDP_TRANSPORT_UDP}};

static const struct sdp_rewrite_params loopback_params = {UFRAG, PWD, loopback_cands, 2};

/* A relay that also listens on TCP, its addresses given out of order: the
 * UDP ones must still come first, and m= and c= must name UDP ones. */
static const struct sdp_candidate tcp_cands[] = {
    {"198.51.100.8", 443, SDP_TRANSPORT_TCP},
    {"203.0.113.7", 3478, SDP_TRANSPORT_UDP},
    {"2001:db8::8", 443, SDP_TRANSPORT_TCP},
    {"2001:db8::7", 3478, SDP_TRANSPORT_UDP},
};

static const struct sdp_rewrite_params tcp_params = {UFRAG, PWD, tcp_cands, 4};

/* Large, so static like in_text and out_text: it would not fit a test's stack. */
static char again_text[TEXT_CAP];

static unsigned count_lines(const char *text, const char *want)
{
    char line[LINE_CAP];
    unsigned n = 0;

    for (const char *p = text; (p = next_line(p, line)) != NULL;)
        n += strcmp(line, want) == 0;
    return n;
}

static bool is_ip(const char *s)
{
    struct in6_addr a;

    return inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Every address-like token of a text: IPv4/IPv6 literals and mDNS names. */
static unsigned address_tokens(const char *text, char tokens[][SDP_ADDR_MAX * 2])
{
    char copy[TEXT_CAP], *save = NULL;
    unsigned n = 0;

    snprintf(copy, sizeof(copy), "%s", text);
    for (char *t = strtok_r(copy, " \r\n", &save); t != NULL; t = strtok_r(NULL, " \r\n", &save)) {
        bool dup = false;

        if (!is_ip(t) && !ends_with(t, ".local"))
            continue;
        for (unsigned i = 0; i < n; i++)
            dup |= strcmp(tokens[i], t) == 0;
        if (!dup && n < TOKENS_MAX && strlen(t) < SDP_ADDR_MAX * 2)
            snprintf(tokens[n++], SDP_ADDR_MAX * 2, "%s", t);
    }
    return n;
}

static bool relay_address(const struct sdp_rewrite_params *p, const char *addr)
{
    if (strcmp(addr, "0.0.0.0") == 0)
        return true;
    for (unsigned i = 0; i < p->n_cands; i++) {
        if (strcmp(addr, p->cands[i].addr) == 0)
            return true;
    }
    return false;
}

/* Lines the rewriter may change, drop or add; everything else must come
 * through byte for byte and in order. */
static bool rewritten_line(const char *l)
{
    static const char *const prefixes[] = {
        "o=",        "c=",          "m=",          "a=candidate:", "a=end-of-candidates",
        "a=rtcp:",   "a=ice-lite",  "a=ice-ufrag:", "a=ice-pwd:",  "a=remote-candidates",
    };

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (starts(l, prefixes[i]))
            return true;
    }
    return starts(l, "a=extmap:") &&
           (strstr(l, "ssrc-audio-level") != NULL || strstr(l, "csrc-audio-level") != NULL);
}

static void kept_lines(const char *text, char *kept, size_t cap)
{
    char line[LINE_CAP];
    size_t n = 0;

    kept[0] = '\0';
    for (const char *p = text; (p = next_line(p, line)) != NULL;) {
        if (line[0] == '\0' || rewritten_line(line))
            continue;
        n += (size_t)snprintf(kept + n, cap - n, "%s\n", line);
        assert_true(n < cap);
    }
}

/* What a section of a text looks like, for comparing input and output. */
struct section {
    unsigned port;
    bool bundle_only;
    unsigned n_cands, n_eoc, n_ufrag, n_pwd;
    bool eoc_last;                 /* a=end-of-candidates right after them */
};

static unsigned port_of(const char *mline)
{
    const char *sp = strchr(mline, ' ');

    assert_non_null(sp);
    return (unsigned)strtoul(sp + 1, NULL, 10);
}

static unsigned sections(const char *text, struct section *s)
{
    char line[LINE_CAP];
    unsigned n = 0;                /* s[0] is the session part */
    bool after_cand = false;

    memset(s, 0, sizeof(*s) * SECTIONS_MAX);
    for (const char *p = text; (p = next_line(p, line)) != NULL;) {
        if (starts(line, "m=")) {
            assert_true(++n < SECTIONS_MAX);
            s[n].port = port_of(line);
        }
        s[n].bundle_only |= strcmp(line, "a=bundle-only") == 0;
        s[n].n_ufrag += starts(line, "a=ice-ufrag:");
        s[n].n_pwd += starts(line, "a=ice-pwd:");
        if (strcmp(line, "a=end-of-candidates") == 0) {
            s[n].n_eoc++;
            s[n].eoc_last = after_cand;
        }
        after_cand = starts(line, "a=candidate:");
        s[n].n_cands += after_cand;
    }
    return n + 1;
}

/* The relay's candidates in the order they must be written: UDP ones as
 * given, then TCP ones as given. Returns how many; want has room for all. */
static unsigned expected_candidates(const struct sdp_rewrite_params *p,
                                    const struct sdp_candidate **want)
{
    unsigned n = 0;

    for (unsigned t = SDP_TRANSPORT_UDP; t < SDP_TRANSPORT_COUNT; t++) {
        for (unsigned i = 0; i < p->n_cands; i++) {
            if (p->cands[i].transport == t)
                want[n++] = &p->cands[i];
        }
    }
    return n;
}

/* The first UDP candidate, which m= and c= name; NULL without one. */
static const struct sdp_candidate *first_udp(const struct sdp_rewrite_params *p)
{
    for (unsigned i = 0; i < p->n_cands; i++) {
        if (p->cands[i].transport == SDP_TRANSPORT_UDP)
            return &p->cands[i];
    }
    return NULL;
}

/* Our candidates, UDP before TCP, each below the one before it, with what
 * browsers need to pair; TCP ones are passive (RFC 6544). */
static void check_candidates(const char *out, const struct sdp_rewrite_params *p)
{
    const struct sdp_candidate *want[SDP_CANDIDATES_MAX];
    unsigned n_want = expected_candidates(p, want);
    char line[LINE_CAP], back[LINE_CAP];
    unsigned idx = 0;
    unsigned long last = ~0ul;

    for (const char *q = out; (q = next_line(q, line)) != NULL;) {
        unsigned found, comp, port;
        unsigned long prio;
        char transport[16], addr[SDP_ADDR_MAX], type[16];
        bool tcp;

        if (starts(line, "m=")) {
            idx = 0;
            last = ~0ul;
        }
        if (!starts(line, "a=candidate:"))
            continue;
        assert_int_equal(sscanf(line, "a=candidate:%u %u %15s %lu %63s %u typ %15s", &found, &comp,
                                transport, &prio, addr, &port, type),
                         7);
        assert_true(idx < n_want);
        tcp = want[idx]->transport == SDP_TRANSPORT_TCP;
        snprintf(back, sizeof(back), "a=candidate:%u %u %s %lu %s %u typ %s%s", found, comp,
                 transport, prio, addr, port, type, tcp ? " tcptype passive" : "");
        assert_string_equal(back, line);      /* nothing else trails, e.g. raddr */
        assert_int_equal(found, idx + 1);     /* distinct foundations */
        assert_int_equal(comp, 1);
        assert_string_equal(transport, tcp ? "tcp" : "udp");
        assert_string_equal(type, "host");
        assert_string_equal(addr, want[idx]->addr);
        assert_int_equal(port, want[idx]->port);
        assert_true(prio < last && prio < (1ul << 31));
        last = prio;
        idx++;
    }
}

static void check_crlf(const char *out, size_t len)
{
    assert_int_equal(strlen(out), len);
    assert_true(len >= 2 && out[len - 2] == '\r' && out[len - 1] == '\n');
    for (size_t i = 0; i < len; i++) {
        if (out[i] == '\n')
            assert_true(i > 0 && out[i - 1] == '\r');
        if (out[i] == '\r')
            assert_true(out[i + 1] == '\n');
    }
}

static void check_sections(const char *in, const char *out, const struct sdp_rewrite_params *p)
{
    struct section si[SECTIONS_MAX], so[SECTIONS_MAX];
    unsigned n = sections(in, si);

    assert_int_equal(sections(out, so), n);
    assert_int_equal(so[0].n_cands, 0);
    for (unsigned i = 1; i < n; i++) {
        bool open = si[i].port != 0;

        assert_int_equal(so[i].port, open ? first_udp(p)->port : 0);
        assert_int_equal(so[i].bundle_only, si[i].bundle_only);
        /* a bundle-only section keeps its place but gets no candidates */
        assert_int_equal(so[i].n_cands, open ? p->n_cands : 0);
        assert_int_equal(so[i].n_eoc, open ? 1 : 0);
        if (open)
            assert_true(so[i].eoc_last);
        assert_int_equal(so[i].n_ufrag, si[i].n_ufrag);
        assert_int_equal(so[i].n_pwd, si[i].n_pwd);
    }
}

static void check_no_client_address(const char *in, const char *out,
                                    const struct sdp_rewrite_params *p)
{
    static char tokens[TOKENS_MAX][SDP_ADDR_MAX * 2];
    unsigned n = address_tokens(in, tokens);

    for (unsigned i = 0; i < n; i++) {
        if (!relay_address(p, tokens[i]))
            assert_null(strstr(out, tokens[i]));
    }
    assert_null(strstr(out, ".local"));
    n = address_tokens(out, tokens);
    for (unsigned i = 0; i < n; i++)
        assert_true(relay_address(p, tokens[i]));
}

/* Client ICE credentials, fingerprints and setup of the input. */
static void check_attributes(const char *in, const char *out)
{
    char line[LINE_CAP];

    for (const char *q = in; (q = next_line(q, line)) != NULL;) {
        if (starts(line, "a=fingerprint:") || starts(line, "a=setup:") ||
            (starts(line, "a=extmap:") && !rewritten_line(line)))
            assert_int_equal(count_lines(out, line), count_lines(in, line));
        if (starts(line, "a=ice-ufrag:") || starts(line, "a=ice-pwd:"))
            assert_null(strstr(out, strchr(line, ':') + 1));
    }
    for (const char *q = out; (q = next_line(q, line)) != NULL;) {
        assert_null(strstr(line, "audio-level"));
        if (starts(line, "a=ice-ufrag:"))
            assert_string_equal(line, "a=ice-ufrag:" UFRAG);
        if (starts(line, "a=ice-pwd:"))
            assert_string_equal(line, "a=ice-pwd:" PWD);
        if (starts(line, "o="))
            assert_true(ends_with(line, " IN IP4 0.0.0.0"));
    }
}

/* Exactly one a=ice-lite, in the session part, right after t=. */
static void check_ice_lite(const char *out)
{
    const char *lite = strstr(out, "\r\na=ice-lite\r\n");

    assert_non_null(lite);
    assert_null(strstr(lite + strlen("\r\na=ice-lite"), "a=ice-lite"));
    assert_true(lite < strstr(out, "\r\nm="));
    assert_non_null(strstr(out, "\r\nt=0 0\r\na=ice-lite\r\n"));
}

static void first_value(const char *text, const char *prefix, char *value, size_t cap)
{
    char line[LINE_CAP];

    value[0] = '\0';
    for (const char *q = text; (q = next_line(q, line)) != NULL;) {
        if (starts(line, prefix)) {
            snprintf(value, cap, "%s", line + strlen(prefix));
            return;
        }
    }
}

static void check_summary(const char *in, const char *out, size_t len,
                          const struct sdp_rewrite_params *p)
{
    struct sdp_summary s;
    char fp[160], setup[16];
    unsigned k = 0;

    first_value(in, "a=fingerprint:", fp, sizeof(fp));
    first_value(in, "a=setup:", setup, sizeof(setup));
    assert_int_equal(sdp_summarize(out, len, &s), SDP_OK);
    assert_string_equal(s.ice_ufrag, UFRAG);
    assert_string_equal(s.ice_pwd, PWD);
    assert_string_equal(s.fingerprint, fp);
    assert_true(starts(s.fingerprint, "sha-256 "));
    assert_string_equal(s.setup, setup);
    assert_true(s.ice_lite);
    /* a native client reads the UDP candidates only */
    for (unsigned i = 0; i < p->n_cands; i++) {
        if (p->cands[i].transport != SDP_TRANSPORT_UDP)
            continue;
        assert_true(k < s.n_cands);
        assert_string_equal(s.cands[k].addr, p->cands[i].addr);
        assert_int_equal(s.cands[k].port, p->cands[i].port);
        assert_int_equal(s.cands[k].transport, SDP_TRANSPORT_UDP);
        k++;
    }
    assert_int_equal(s.n_cands, k);
}

static void check_fixture(const char *name, const struct sdp_rewrite_params *p)
{
    static char kept_in[TEXT_CAP], kept_out[TEXT_CAP];
    size_t len = load_fixture(name, in_text, sizeof(in_text)), out_len, again_len;

    assert_int_equal(sdp_rewrite(in_text, len, p, out_text, sizeof(out_text), &out_len), SDP_OK);
    check_crlf(out_text, out_len);
    check_sections(in_text, out_text, p);
    check_candidates(out_text, p);
    check_no_client_address(in_text, out_text, p);
    check_attributes(in_text, out_text);
    check_ice_lite(out_text);
    kept_lines(in_text, kept_in, sizeof(kept_in));
    kept_lines(out_text, kept_out, sizeof(kept_out));
    assert_string_equal(kept_out, kept_in);
    check_summary(in_text, out_text, out_len, p);

    assert_int_equal(sdp_rewrite(out_text, out_len, p, again_text, sizeof(again_text), &again_len),
                     SDP_OK);
    assert_int_equal(again_len, out_len);
    assert_memory_equal(again_text, out_text, out_len);
}

/* --- the real browsers' SDP -------------------------------------------- */

static void test_fixture_loopback_relay(void **state)
{
    check_fixture(*state, &loopback_params);
}

/* The relay is not on loopback here, so Chromium's 127.0.0.1 and the test
 * network's 198.18.0.1 must be gone everywhere (o=, c=, candidates). */
static void test_fixture_documentation_relay(void **state)
{
    size_t out_len;

    check_fixture(*state, &doc_params);
    assert_int_equal(sdp_rewrite(in_text, strlen(in_text), &doc_params, out_text,
                                 sizeof(out_text), &out_len),
                     SDP_OK);
    assert_null(strstr(out_text, "127.0.0.1"));
    assert_null(strstr(out_text, "198.18.0.1"));
    assert_null(strstr(out_text, "::1"));
}

/* A relay with TCP addresses too: every open section gets the UDP
 * candidates, then the passive TCP ones below them (check_candidates). */
static void test_fixture_tcp_relay(void **state)
{
    check_fixture(*state, &tcp_params);
    assert_null(strstr(out_text, "c=IN IP4 198.51.100.8"));
    assert_null(strstr(out_text, "c=IN IP6 2001:db8::8"));
    assert_null(strstr(out_text, " 443 UDP/"));
}

/* LF input gives the same CRLF output as the browser's CRLF. */
static void test_fixture_lf_endings(void **state)
{
    static char lf[TEXT_CAP];
    size_t len = load_fixture(*state, in_text, sizeof(in_text)), n = 0, out_len, lf_len;

    for (size_t i = 0; i < len; i++) {
        if (in_text[i] != '\r')
            lf[n++] = in_text[i];
    }
    assert_int_equal(sdp_rewrite(in_text, len, &doc_params, out_text, sizeof(out_text), &out_len),
                     SDP_OK);
    assert_int_equal(sdp_rewrite(lf, n, &doc_params, again_text, sizeof(again_text), &lf_len),
                     SDP_OK);
    assert_int_equal(lf_len, out_len);
    assert_memory_equal(again_text, out_text, out_len);
}

/* Every capacity below the need fails cleanly and writes nothing beyond it. */
static void test_fixture_output_too_small(void **state)
{
    size_t len = load_fixture(*state, in_text, sizeof(in_text)), need, out_len;

    assert_int_equal(sdp_rewrite(in_text, len, &doc_params, out_text, sizeof(out_text), &need),
                     SDP_OK);
    for (size_t cap = 0; cap <= need; cap += cap < 64 || need - cap < 64 ? 1 : 97) {
        char *buf = malloc(cap + 16);

        assert_non_null(buf);
        memset(buf, 'Z', cap + 16);
        out_len = 12345;
        assert_int_equal(sdp_rewrite(in_text, len, &doc_params, buf, cap, &out_len),
                         SDP_ERR_OUT_OF_SPACE);
        assert_int_equal(out_len, 0);
        for (size_t i = cap; i < cap + 16; i++)
            assert_int_equal(buf[i], 'Z');
        if (cap > 0)
            assert_int_equal(buf[0], '\0');
        free(buf);
    }
    assert_int_equal(sdp_rewrite(in_text, len, &doc_params, again_text, need + 1, &out_len),
                     SDP_OK);
    assert_int_equal(out_len, need);
}

/* --- a hand-made SDP with every case in it ----------------------------- */

static const char golden_in[] =
    "v=0\n"
    "o=alice 123 1 IN IP6 2001:db8::99\n"
    "s=-\n"
    "t=0 0\n"
    "a=ice-lite\n"
    "a=group:BUNDLE a v d\n"
    "a=fingerprint:sha-256 AB:CD\n"
    "a=ICE-LITE\n"
    "m=audio 50000 UDP/TLS/RTP/SAVPF 111\n"
    "c=IN IP6 2001:db8::99\n"
    "a=rtcp:50001 IN IP6 2001:db8::99\n"
    "a=candidate:1 1 udp 2122260223 2001:db8::99 50000 typ host\n"
    "a=Candidate:2 1 tcp 1518280447 192.0.2.99 9 typ host tcptype active\n"
    "a=mid:a\n"
    "a=ice-ufrag:abcd\n"
    "a=ice-pwd:abcdefghijklmnopqrstuv\n"
    "a=extmap:1/sendrecv urn:ietf:params:rtp-hdrext:ssrc-audio-level vad=on\n"
    "a=extmap:2 urn:ietf:params:rtp-hdrext:encrypt urn:ietf:params:rtp-hdrext:ssrc-audio-level\n"
    "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\n"
    "a=extmap:4  urn:ietf:params:rtp-hdrext:csrc-audio-level\n"
    "a=extmap: 5 urn:ietf:params:rtp-hdrext:ssrc-audio-level\n"
    "a=candidate 3 1 udp 1 192.0.2.98 5000 typ host\n"
    "a= candidate :4 1 udp 1 192.0.2.97 5000 typ host\n"
    "a=candidate-like-name:kept\n"
    "a=rtcp-mux\n"
    "a=end-of-candidates\n"
    "a=remote-candidates:1 192.0.2.1 5000\n"
    "m=video 0 UDP/TLS/RTP/SAVPF 96\n"
    "c=IN IP4 192.0.2.99\n"
    "a=bundle-only\n"
    "a=mid:v\n"
    "a=rtcp-mux\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n"
    "c=IN IP4 192.0.2.99\n"
    "a=mid:d\n"
    "a=sctp-port:5000\n"
    "m=audio 0 UDP/TLS/RTP/SAVPF 0\n"
    "c=IN IP4 192.0.2.99\n"
    "a=mid:r\n";

#define RELAY_CREDS L("a=ice-ufrag:" UFRAG) L("a=ice-pwd:" PWD)
#define RELAY_CANDS                                                                                \
    L("a=candidate:1 1 udp 2130706431 203.0.113.7 3478 typ host")                                \
    L("a=candidate:2 1 udp 2130706175 2001:db8::7 3478 typ host") L("a=end-of-candidates")
/* tcp_params: the UDP candidates first whatever the order given, then the
 * TCP ones, passive, with RFC 6544's local preference (direction 4 << 13 |
 * 8191 - n), so below every UDP one. */
#define TCP_RELAY_CANDS                                                                            \
    L("a=candidate:1 1 udp 2130706431 203.0.113.7 3478 typ host")                                \
    L("a=candidate:2 1 udp 2130706175 2001:db8::7 3478 typ host")                                \
    L("a=candidate:3 1 tcp 2124414975 198.51.100.8 443 typ host tcptype passive")                \
    L("a=candidate:4 1 tcp 2124414719 2001:db8::8 443 typ host tcptype passive")                 \
    L("a=end-of-candidates")

/* golden_in rewritten with the relay candidates cands; m= and c= name the
 * same UDP addresses with or without TCP ones. */
#define GOLDEN_OUT(cands)                                                                          \
    L("v=0")                                                                                       \
    L("o=alice 123 1 IN IP4 0.0.0.0")                                                              \
    L("s=-")                                                                                       \
    L("t=0 0")                                                                                     \
    L("a=ice-lite")                                                                                \
    L("a=group:BUNDLE a v d")                                                                      \
    L("a=fingerprint:sha-256 AB:CD")                                                               \
    L("m=audio 3478 UDP/TLS/RTP/SAVPF 111")                                                        \
    L("c=IN IP6 2001:db8::7")                                                                      \
    L("a=mid:a")                                                                                   \
    RELAY_CREDS                                                                                    \
    L("a=extmap:2 urn:ietf:params:rtp-hdrext:encrypt urn:ietf:params:rtp-hdrext:ssrc-audio-level") \
    L("a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid")                                           \
    L("a=candidate-like-name:kept")                                                                \
    L("a=rtcp-mux")                                                                                \
    cands                                                                                          \
    L("m=video 0 UDP/TLS/RTP/SAVPF 96")                                                            \
    L("c=IN IP4 203.0.113.7")                                                                      \
    L("a=bundle-only")                                                                             \
    L("a=mid:v")                                                                                   \
    L("a=rtcp-mux")                                                                                \
    RELAY_CREDS                                                                                    \
    L("m=application 3478 UDP/DTLS/SCTP webrtc-datachannel")                                       \
    L("c=IN IP4 203.0.113.7")                                                                      \
    L("a=mid:d")                                                                                   \
    L("a=sctp-port:5000")                                                                          \
    RELAY_CREDS                                                                                    \
    cands                                                                                          \
    L("m=audio 0 UDP/TLS/RTP/SAVPF 0")                                                             \
    L("c=IN IP4 203.0.113.7")                                                                      \
    L("a=mid:r")

static const char golden_out[] = GOLDEN_OUT(RELAY_CANDS);
static const char golden_tcp_out[] = GOLDEN_OUT(TCP_RELAY_CANDS);

/* The rewrite is exactly want, and rewriting it again changes nothing. */
static void check_golden(const struct sdp_rewrite_params *p, const char *want)
{
    size_t out_len;

    assert_int_equal(sdp_rewrite(golden_in, strlen(golden_in), p, out_text, sizeof(out_text),
                                 &out_len),
                     SDP_OK);
    assert_string_equal(out_text, want);
    assert_int_equal(out_len, strlen(want));
    assert_int_equal(sdp_rewrite(out_text, out_len, p, again_text, sizeof(again_text), &out_len),
                     SDP_OK);
    assert_string_equal(again_text, want);
}

static void test_golden_rewrite(void **state)
{
    (void)state;
    check_golden(&doc_params, golden_out);
}

static void test_golden_tcp_candidates(void **state)
{
    (void)state;
    check_golden(&tcp_params, golden_tcp_out);
    check_candidates(out_text, &tcp_params);
}

/* Even after the most UDP candidates a relay may have, a TCP one is lower. */
static void test_tcp_below_every_udp(void **state)
{
    static struct sdp_candidate many[SDP_CANDIDATES_MAX];
    struct sdp_rewrite_params p = {UFRAG, PWD, many, SDP_CANDIDATES_MAX};
    char tcp[128];
    size_t out_len;

    (void)state;
    many[0] = (struct sdp_candidate){"203.0.113.9", 443, SDP_TRANSPORT_TCP};
    for (unsigned i = 1; i < SDP_CANDIDATES_MAX; i++)
        many[i] = (struct sdp_candidate){"", 3478, SDP_TRANSPORT_UDP};
    for (unsigned i = 1; i < SDP_CANDIDATES_MAX; i++)
        snprintf(many[i].addr, SDP_ADDR_MAX, "2001:db8::%x", i);
    assert_int_equal(sdp_rewrite(golden_in, strlen(golden_in), &p, out_text, sizeof(out_text),
                                 &out_len),
                     SDP_OK);
    check_candidates(out_text, &p);
    snprintf(tcp, sizeof(tcp), "a=candidate:%d 1 tcp 2124414975 203.0.113.9 443 typ host "
             "tcptype passive", SDP_CANDIDATES_MAX);
    assert_int_equal(count_lines(out_text, tcp), 2);
}

/* c= takes the first relay address of its own family, else 0.0.0.0; m=
 * keeps the discard port while the relay has no candidate. */
static void test_connection_and_port_fallbacks(void **state)
{
    static const struct sdp_candidate v4_only[] = {{"203.0.113.7", 50000, SDP_TRANSPORT_UDP}};
    struct sdp_rewrite_params p = {UFRAG, PWD, v4_only, 1};
    size_t out_len;

    (void)state;
    assert_int_equal(sdp_rewrite(golden_in, strlen(golden_in), &p, out_text, sizeof(out_text),
                                 &out_len),
                     SDP_OK);
    assert_non_null(strstr(out_text, L("m=audio 50000 UDP/TLS/RTP/SAVPF 111") L("c=IN IP4 0.0.0.0")));
    assert_null(strstr(out_text, "2001:db8::"));
    assert_int_equal(count_lines(out_text, "a=candidate:1 1 udp 2130706431 203.0.113.7 50000 typ host"),
                     2);

    p.n_cands = 0;
    assert_int_equal(sdp_rewrite(golden_in, strlen(golden_in), &p, out_text, sizeof(out_text),
                                 &out_len),
                     SDP_OK);
    assert_non_null(strstr(out_text, L("m=audio 9 UDP/TLS/RTP/SAVPF 111") L("c=IN IP4 0.0.0.0")));
    assert_null(strstr(out_text, "a=candidate:"));
    assert_null(strstr(out_text, "a=end-of-candidates"));
    assert_null(strstr(out_text, "192.0.2."));

    /* TCP alone: candidates, but m= and c= as with none */
    p.cands = tcp_cands;
    p.n_cands = 1;
    assert_int_equal(sdp_rewrite(golden_in, strlen(golden_in), &p, out_text, sizeof(out_text),
                                 &out_len),
                     SDP_OK);
    assert_non_null(strstr(out_text, L("m=audio 9 UDP/TLS/RTP/SAVPF 111") L("c=IN IP4 0.0.0.0")));
    assert_int_equal(count_lines(out_text, "a=candidate:1 1 tcp 2124414975 198.51.100.8 443 "
                                           "typ host tcptype passive"),
                     2);
}

/* Session-level credentials are replaced and not repeated per section. */
static void test_session_level_credentials(void **state)
{
    static const char in[] = L("v=0") L("o=- 1 2 IN IP4 192.0.2.10") L("s=-") L("t=0 0")
        L("a=ice-ufrag:abcd") L("a=ice-pwd:abcdefghijklmnopqrstuv") L("a=group:BUNDLE 0")
        L("a=fingerprint:sha-256 AB:CD") L("m=audio 9 UDP/TLS/RTP/SAVPF 111") L("a=mid:0")
        L("a=rtcp-mux");
    struct sdp_summary s;
    size_t out_len;

    (void)state;
    assert_int_equal(sdp_rewrite(in, strlen(in), &doc_params, out_text, sizeof(out_text),
                                 &out_len),
                     SDP_OK);
    assert_int_equal(count_lines(out_text, "a=ice-ufrag:" UFRAG), 1);
    assert_int_equal(count_lines(out_text, "a=ice-pwd:" PWD), 1);
    assert_true(strstr(out_text, "a=ice-ufrag:") < strstr(out_text, "m=audio"));
    assert_int_equal(sdp_summarize(out_text, out_len, &s), SDP_OK);
    assert_string_equal(s.ice_ufrag, UFRAG);
    assert_string_equal(s.fingerprint, "sha-256 AB:CD");
    assert_int_equal(s.n_cands, 2);
}

#define FIXTURE_TESTS(name)                                                                        \
    cmocka_unit_test_prestate(test_fixture_loopback_relay, (void *)(name)),                        \
        cmocka_unit_test_prestate(test_fixture_documentation_relay, (void *)(name)),               \
        cmocka_unit_test_prestate(test_fixture_tcp_relay, (void *)(name)),                         \
        cmocka_unit_test_prestate(test_fixture_lf_endings, (void *)(name)),                        \
        cmocka_unit_test_prestate(test_fixture_output_too_small, (void *)(name))

int main(void)
{
    const struct CMUnitTest tests[] = {
        FIXTURE_TESTS("chromium-offer.sdp"),
        FIXTURE_TESTS("chromium-offer-gathered.sdp"),
        FIXTURE_TESTS("chromium-answer.sdp"),
        FIXTURE_TESTS("firefox-offer.sdp"),
        FIXTURE_TESTS("firefox-offer-gathered.sdp"),
        FIXTURE_TESTS("firefox-answer.sdp"),
        cmocka_unit_test(test_golden_rewrite),
        cmocka_unit_test(test_golden_tcp_candidates),
        cmocka_unit_test(test_tcp_below_every_udp),
        cmocka_unit_test(test_connection_and_port_fallbacks),
        cmocka_unit_test(test_session_level_credentials),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
