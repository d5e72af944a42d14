/* SDP rewriter and summary on arbitrary bytes. Whatever is accepted must come
 * out with the relay's candidates only, within its buffer, and be accepted
 * again unchanged: the relay's output is itself valid by the relay's rules. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "quietroom/wire/sdp.h"

#define UFRAG "AQFrBXvjdtUpymHCiyoAAABlX6iR"
#define PWD "JBpYAkO6ZAxG14tMPB0iF6qMdFFO/JFf"

static const struct sdp_candidate cands[] = {{"203.0.113.7", 3478, SDP_TRANSPORT_UDP},
                                             {"2001:db8::7", 3478, SDP_TRANSPORT_UDP},
                                             {"203.0.113.7", 443, SDP_TRANSPORT_TCP}};
static const struct sdp_rewrite_params params = {UFRAG, PWD, cands, 3};
static const char *const ours[] = {
    "a=candidate:1 1 udp 2130706431 203.0.113.7 3478 typ host",
    "a=candidate:2 1 udp 2130706175 2001:db8::7 3478 typ host",
    "a=candidate:3 1 tcp 2124414975 203.0.113.7 443 typ host tcptype passive",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether a line is attribute name (case aside) as Chromium or Firefox read
 * it: spaces may precede the name, a ':' or a space may end it. */
static bool is_attr(const char *p, size_t n, const char *name)
{
    size_t k = strlen(name), i = 2;

    if (n < 2 || memcmp(p, "a=", 2) != 0)
        return false;
    while (i < n && p[i] == ' ')
        i++;
    return n - i >= k && strncasecmp(p + i, name, k) == 0 &&
           (n - i == k || p[i + k] == ':' || p[i + k] == ' ');
}

static bool only_our_candidates(const char *out, size_t len)
{
    const char *p = out, *end = out + len;

    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        size_t n;
        bool known = false;

        if (eol == NULL || eol + 1 >= end || eol[1] != '\n')
            return false;                       /* CRLF only, to the end */
        n = (size_t)(eol - p);
        if (is_attr(p, n, "candidate")) {
            for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
                known |= n == strlen(ours[i]) && memcmp(p, ours[i], n) == 0;
            if (!known)
                return false;
        }
        if (is_attr(p, n, "rtcp") || is_attr(p, n, "remote-candidates"))
            return false;
        p = eol + 2;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[QR_SDP_MAX + 1], again[QR_SDP_MAX + 1];
    const char *in = (const char *)data;
    struct sdp_summary s;
    size_t len, len2;
    char *tight;

    (void)sdp_summarize(in, size, &s);
    if (sdp_rewrite(in, size, &params, out, sizeof(out), &len) != SDP_OK)
        return 0;
    if (len >= sizeof(out) || out[len] != '\0' || strlen(out) != len || len > QR_SDP_MAX)
        abort();
    if (!only_our_candidates(out, len))
        abort();
    if (sdp_rewrite(out, len, &params, again, sizeof(again), &len2) != SDP_OK || len2 != len ||
        memcmp(again, out, len) != 0)
        abort();                                /* valid by our rules, and stable */
    /* a summary may still refuse (every section rejected, a fingerprint too
     * long for it), but one it gives shows only the relay's side */
    if (sdp_summarize(out, len, &s) == SDP_OK &&
        (strcmp(s.ice_ufrag, UFRAG) != 0 || strcmp(s.ice_pwd, PWD) != 0 || !s.ice_lite))
        abort();
    /* one byte short must fail cleanly; ASan sees any write past it */
    if ((tight = malloc(len)) == NULL)
        abort();
    if (sdp_rewrite(in, size, &params, tight, len, &len2) != SDP_ERR_OUT_OF_SPACE || len2 != 0)
        abort();
    free(tight);
    return 0;
}
