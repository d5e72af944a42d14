/* What a native client needs from an SDP it received: ICE credentials,
 * the DTLS fingerprint and setup role, and the candidates it can use (UDP,
 * and passive ICE-TCP ones), from the first media section the SDP does not
 * turn down. */
#include <string.h>

#include "sdp_internal.h"

static bool sdp__copy(char *dst, size_t cap, const struct sdp__span *v)
{
    if (dst[0] != '\0')
        return true;                /* the media section's own value wins */
    if (v->len >= cap)
        return false;
    memcpy(dst, v->p, v->len);
    dst[v->len] = '\0';
    return true;
}

/* A candidate's transport if a native client can use it: UDP, or TCP from
 * a passive candidate (RFC 6544 §4.5: it connects to that one; an active
 * candidate connects to it, which a client behind the relay never sees). */
static bool sdp__summary_transport(const struct sdp__span *f, size_t n, enum sdp_transport *t)
{
    if (sdp__eq_nocase(&f[2], "udp")) {
        *t = SDP_TRANSPORT_UDP;
        return true;
    }
    if (!sdp__eq_nocase(&f[2], "tcp"))
        return false;
    for (size_t i = 8; i + 1 < n; i += 2) {
        if (sdp__eq(&f[i], "tcptype")) {
            *t = SDP_TRANSPORT_TCP;
            return sdp__eq(&f[i + 1], "passive");
        }
    }
    return false;
}

/* <foundation> <component> <transport> <priority> <address> <port> typ
 * <type> [tcptype <tcptype>] ... (RFC 8839 §5.1, RFC 6544 §4.5). Only
 * component 1 at a numeric address; mDNS names are skipped. */
static void sdp__summary_candidate(struct sdp_summary *out, const struct sdp__span *v)
{
    struct sdp__span f[12];
    struct sdp_candidate *c;
    enum sdp_transport t;
    unsigned port;
    size_t n = sdp__fields(v, f, 12);

    if (out->n_cands >= SDP_CANDIDATES_MAX || n < 8 || !sdp__eq(&f[1], "1") ||
        !sdp__summary_transport(f, n, &t) || f[4].len >= SDP_ADDR_MAX ||
        !sdp__port(&f[5], &port) || port == 0)
        return;
    c = &out->cands[out->n_cands];
    memset(c->addr, 0, sizeof(c->addr));
    memcpy(c->addr, f[4].p, f[4].len);
    if (sdp__family(c->addr) == 0)
        return;
    c->port = (uint16_t)port;
    c->transport = t;
    out->n_cands++;
}

static bool sdp__summary_line(struct sdp_summary *out, const struct sdp__span *l, bool media)
{
    struct sdp__span v;

    switch (sdp__attr_of(l, &v)) {
    case SDP__A_ICE_UFRAG:
        return sdp__copy(out->ice_ufrag, sizeof(out->ice_ufrag), &v);
    case SDP__A_ICE_PWD:
        return sdp__copy(out->ice_pwd, sizeof(out->ice_pwd), &v);
    case SDP__A_FINGERPRINT:
        return sdp__copy(out->fingerprint, sizeof(out->fingerprint), &v);
    case SDP__A_SETUP:
        return sdp__copy(out->setup, sizeof(out->setup), &v);
    case SDP__A_ICE_LITE:
        out->ice_lite = true;
        return true;
    case SDP__A_CANDIDATE:
        if (media)
            sdp__summary_candidate(out, &v);
        return true;
    default:
        return true;
    }
}

static bool sdp__summary_section(struct sdp_summary *out, const struct sdp__section *s)
{
    struct sdp__reader r = s->lines;
    struct sdp__span l;

    while (sdp__next_line(&r, &l)) {
        if (!sdp__summary_line(out, &l, s->media))
            return false;
    }
    return true;
}

enum sdp_error sdp_summarize(const char *in, size_t len, struct sdp_summary *out)
{
    struct sdp__reader all = {in, len, 0};
    struct sdp__section session, m;
    enum sdp_error e;
    bool found = false;

    memset(out, 0, sizeof(*out));
    if ((e = sdp__check_lines(in, len)) != SDP_OK)
        return e;
    sdp__next_section(&all, &session);
    while (!found && sdp__next_section(&all, &m))
        found = !m.bad && !sdp__rejected(&m);
    if (!found)
        e = SDP_ERR_NO_MEDIA;
    else if (!sdp__summary_section(out, &m) || !sdp__summary_section(out, &session) ||
             out->ice_ufrag[0] == '\0' || out->ice_pwd[0] == '\0')
        e = SDP_ERR_MALFORMED;
    else if (out->fingerprint[0] == '\0')
        e = SDP_ERR_NO_FINGERPRINT;
    if (e != SDP_OK)
        memset(out, 0, sizeof(*out));
    return e;
}
