/* SDP rewriting for the relay path. Three passes over the caller's text: every
 * line is checked, then the structure (transport, BUNDLE, rtcp-mux,
 * fingerprints), then the rewritten text is written. Nothing is stored per
 * line or per section, so no input can make the work or the memory grow
 * beyond a walk over QR_SDP_MAX bytes. The reading and the checks are in
 * sdp_parse.c; this file is the writing, and the relay's own values it
 * writes. */
#include "quietroom/wire/sdp.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "sdp_internal.h"

/* RFC 8839 §5.4: ice-ufrag is 4-256 ice-chars, ice-pwd 22-256. */
#define SDP_UFRAG_MIN 4
#define SDP_PWD_MIN 22
#define SDP_ICE_MAX 256
/* JSEP (RFC 8829 §5.2.1) puts the discard port in m= before candidates. */
#define SDP_PORT_NONE 9
/* RFC 8445 §5.1.2.1 host type preference; local preference falls by one per
 * candidate so that the order the relay gives is the order browsers try. */
#define SDP_TYPE_PREF_HOST 126u
#define SDP_LOCAL_PREF_TOP 65535u
/* RFC 6544 §4.2: a TCP candidate's local preference is 2^13 * direction-pref
 * + other-pref, and a passive host candidate's direction-pref is 4. Its top,
 * 40959, is below every UDP one (65535 less one per candidate, at most
 * SDP_CANDIDATES_MAX), so each TCP candidate is below each UDP one and UDP is
 * used wherever it works. */
#define SDP_TCP_DIR_PASSIVE 4u
#define SDP_TCP_OTHER_PREF_TOP 8191u

static const char *const sdp_codes[SDP_ERR_COUNT] = {
    [SDP_OK] = "ok",
    [SDP_ERR_TOO_LARGE] = "sdp_too_large",
    [SDP_ERR_MALFORMED] = "sdp_malformed",
    [SDP_ERR_NO_MEDIA] = "sdp_no_media",
    [SDP_ERR_NO_FINGERPRINT] = "sdp_no_fingerprint",
    [SDP_ERR_NO_BUNDLE] = "sdp_no_bundle",
    [SDP_ERR_NO_RTCP_MUX] = "sdp_no_rtcp_mux",
    [SDP_ERR_BAD_TRANSPORT] = "sdp_bad_transport",
    [SDP_ERR_OUT_OF_SPACE] = "sdp_out_of_space",
    [SDP_ERR_BAD_PARAMS] = "sdp_bad_params",
};

static const char *const sdp_messages[SDP_ERR_COUNT] = {
    [SDP_OK] = "The session description was accepted.",
    [SDP_ERR_TOO_LARGE] = "The session description is larger than the relay accepts.",
    [SDP_ERR_MALFORMED] = "The session description is not well-formed SDP.",
    [SDP_ERR_NO_MEDIA] = "The session description has no media section.",
    [SDP_ERR_NO_FINGERPRINT] =
        "A media section has no DTLS fingerprint, so encryption could not be end to end.",
    [SDP_ERR_NO_BUNDLE] = "The session description does not bundle its media (a=group:BUNDLE).",
    [SDP_ERR_NO_RTCP_MUX] = "An RTP media section does not multiplex RTCP (a=rtcp-mux).",
    [SDP_ERR_BAD_TRANSPORT] = "A media section does not use DTLS over UDP.",
    [SDP_ERR_OUT_OF_SPACE] = "The rewritten session description does not fit its buffer.",
    [SDP_ERR_BAD_PARAMS] = "The relay credentials or candidates to insert are not valid.",
};

const char *sdp_error_code(enum sdp_error e)
{
    return (unsigned)e < SDP_ERR_COUNT ? sdp_codes[e] : "sdp_unknown";
}

const char *sdp_error_message(enum sdp_error e)
{
    return (unsigned)e < SDP_ERR_COUNT ? sdp_messages[e] : "Unknown SDP error.";
}

/* --- the relay's side -------------------------------------------------- */

/* Parameters checked once: they are written into SDP, so a stray CR or space
 * in them would forge lines. */
struct sdp__relay {
    const struct sdp_rewrite_params *p;
    const char *v4;                 /* first IPv4 UDP candidate, for c= */
    const char *v6;
    char port[6];                   /* for m= */
};

static bool sdp__ice_chars(const char *s, size_t min)
{
    size_t n = strnlen(s, SDP_ICE_MAX + 1);

    if (n < min || n > SDP_ICE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return false;
    }
    return true;
}

static bool sdp__relay_init(const struct sdp_rewrite_params *p, struct sdp__relay *rl)
{
    const struct sdp_candidate *first_udp = NULL;

    *rl = (struct sdp__relay){.p = p};
    if (p == NULL || p->ice_ufrag == NULL || p->ice_pwd == NULL ||
        !sdp__ice_chars(p->ice_ufrag, SDP_UFRAG_MIN) || !sdp__ice_chars(p->ice_pwd, SDP_PWD_MIN) ||
        p->n_cands > SDP_CANDIDATES_MAX || (p->n_cands > 0 && p->cands == NULL))
        return false;
    for (unsigned i = 0; i < p->n_cands; i++) {
        const struct sdp_candidate *c = &p->cands[i];
        int family = sdp__family(c->addr);

        if (family == 0 || c->port == 0 || (unsigned)c->transport >= SDP_TRANSPORT_COUNT)
            return false;
        /* m= and c= name the default candidate, a UDP one: m= stays
         * UDP/TLS/RTP/SAVPF (JSEP) whichever candidate ICE picks. */
        if (c->transport != SDP_TRANSPORT_UDP)
            continue;
        if (family == AF_INET && rl->v4 == NULL)
            rl->v4 = c->addr;
        if (family == AF_INET6 && rl->v6 == NULL)
            rl->v6 = c->addr;
        if (first_udp == NULL)
            first_udp = c;
    }
    snprintf(rl->port, sizeof(rl->port), "%u",
             first_udp != NULL ? (unsigned)first_udp->port : SDP_PORT_NONE);
    return true;
}

/* --- writing ----------------------------------------------------------- */

/* The caller's buffer. len counts what the text needs even past cap, so the
 * outcome is decided once, at the end. */
struct sdp__out {
    char *buf;
    size_t cap;                     /* NUL included */
    size_t len;
    size_t line;                    /* length of the line being written */
    bool long_line;
};

static void sdp__put(struct sdp__out *o, const char *s, size_t n)
{
    if (o->len < o->cap && n < o->cap - o->len)
        memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->line += n;
}

static void sdp__puts(struct sdp__out *o, const char *s)
{
    sdp__put(o, s, strlen(s));
}

static void sdp__put_span(struct sdp__out *o, const struct sdp__span *s)
{
    sdp__put(o, s->p, s->len);
}

/* Ends a line with CRLF; a line that grew past the limit would not be read
 * back, so it fails the rewrite. */
static void sdp__eol(struct sdp__out *o)
{
    o->long_line |= o->line > SDP_LINE_MAX;
    sdp__put(o, "\r\n", 2);
    o->line = 0;
}

static void sdp__put_line(struct sdp__out *o, const char *s)
{
    sdp__puts(o, s);
    sdp__eol(o);
}

/* The unicast address goes; username, id and version stay. */
static void sdp__emit_origin(struct sdp__out *o, const struct sdp__span *l)
{
    struct sdp__span f[7];

    sdp__parse_origin(l, f);
    sdp__puts(o, "o=");
    for (int i = 0; i < 3; i++) {
        sdp__put_span(o, &f[i]);
        sdp__puts(o, " ");
    }
    sdp__put_line(o, "IN IP4 0.0.0.0");
}

static void sdp__emit_connection(struct sdp__out *o, const struct sdp__span *l,
                                 const struct sdp__relay *rl)
{
    struct sdp__span v = sdp__value(l);
    bool v6 = v.len >= 7 && memcmp(v.p, "IN IP6 ", 7) == 0;

    if (v6 && rl->v6 != NULL) {
        sdp__puts(o, "c=IN IP6 ");
        sdp__put_line(o, rl->v6);
    } else {
        sdp__puts(o, "c=IN IP4 ");
        sdp__put_line(o, !v6 && rl->v4 != NULL ? rl->v4 : "0.0.0.0");
    }
}

/* The port becomes the relay's, except 0, which keeps its meaning. */
static void sdp__emit_mline(struct sdp__out *o, const struct sdp__span *l,
                            const struct sdp__relay *rl)
{
    struct sdp__mline m;

    sdp__parse_mline(l, &m);
    sdp__puts(o, "m=");
    sdp__put_span(o, &m.media);
    sdp__puts(o, " ");
    sdp__puts(o, m.portnum == 0 ? "0" : rl->port);
    sdp__puts(o, " ");
    sdp__put_span(o, &m.proto);
    sdp__puts(o, " ");
    sdp__put_span(o, &m.fmts);
    sdp__eol(o);
}

static void sdp__emit_ice(struct sdp__out *o, enum sdp__attr id, const struct sdp__relay *rl)
{
    sdp__puts(o, id == SDP__A_ICE_UFRAG ? "a=ice-ufrag:" : "a=ice-pwd:");
    sdp__put_line(o, id == SDP__A_ICE_UFRAG ? rl->p->ice_ufrag : rl->p->ice_pwd);
}

static void sdp__emit_attr(struct sdp__out *o, const struct sdp__span *l,
                           const struct sdp__relay *rl)
{
    struct sdp__span v;
    enum sdp__attr id = sdp__attr_of(l, &v);

    if (sdp__attr_drops(id))
        return;
    if (id == SDP__A_ICE_UFRAG || id == SDP__A_ICE_PWD) {
        sdp__emit_ice(o, id, rl);
        return;
    }
    if (id == SDP__A_EXTMAP && sdp__extmap_is_voice_level(&v))
        return;
    sdp__put_span(o, l);
    sdp__eol(o);
}

static void sdp__emit_line(struct sdp__out *o, const struct sdp__span *l,
                           const struct sdp__relay *rl)
{
    switch (l->p[0]) {
    case 'o':
        sdp__emit_origin(o, l);
        break;
    case 'c':
        sdp__emit_connection(o, l, rl);
        break;
    case 'm':
        sdp__emit_mline(o, l, rl);
        break;
    case 'a':
        sdp__emit_attr(o, l, rl);
        break;
    default:
        sdp__put_span(o, l);
        sdp__eol(o);
        break;
    }
}

/* a=ice-lite goes before the first session attribute, which in browsers'
 * SDP is right after t= and in any SDP keeps RFC 8866's line order. There is
 * one: a=group:BUNDLE was required at session level. */
static void sdp__emit_session(struct sdp__out *o, const struct sdp__section *s,
                              const struct sdp__relay *rl)
{
    struct sdp__reader r = s->lines;
    struct sdp__span l;
    bool lite = false;

    while (sdp__next_line(&r, &l)) {
        if (!lite && l.p[0] == 'a') {
            sdp__put_line(o, "a=ice-lite");
            lite = true;
        }
        sdp__emit_line(o, &l, rl);
    }
}

/* Per transport, in the order written: the a=candidate transport, what
 * follows "typ host", and the local preference of its first candidate. */
static const struct {
    const char *name;
    const char *tail;
    unsigned local_pref_top;
} sdp__cand_transports[SDP_TRANSPORT_COUNT] = {
    [SDP_TRANSPORT_UDP] = {"udp", "", SDP_LOCAL_PREF_TOP},
    [SDP_TRANSPORT_TCP] = {"tcp", " tcptype passive",
                           SDP_TCP_DIR_PASSIVE << 13 | SDP_TCP_OTHER_PREF_TOP},
};

/* RFC 8445 §5.1.2.1, component 1: 2^24 * type + 2^8 * local + (256 - 1). */
static unsigned long sdp__priority(unsigned local_pref)
{
    return (unsigned long)SDP_TYPE_PREF_HOST << 24 | (unsigned long)local_pref << 8 | 255u;
}

/* The candidates of one transport; *foundation counts on across them, as
 * candidates that differ in address or transport need distinct ones. */
static void sdp__emit_transport(struct sdp__out *o, const struct sdp__relay *rl,
                                enum sdp_transport t, unsigned *foundation)
{
    char line[128 + SDP_ADDR_MAX];
    unsigned local = sdp__cand_transports[t].local_pref_top;

    for (unsigned i = 0; i < rl->p->n_cands; i++) {
        const struct sdp_candidate *c = &rl->p->cands[i];

        if (c->transport != t)
            continue;
        snprintf(line, sizeof(line), "a=candidate:%u 1 %s %lu %s %u typ host%s", ++*foundation,
                 sdp__cand_transports[t].name, sdp__priority(local--), c->addr,
                 (unsigned)c->port, sdp__cand_transports[t].tail);
        sdp__put_line(o, line);
    }
}

static void sdp__emit_candidates(struct sdp__out *o, const struct sdp__relay *rl)
{
    unsigned foundation = 0;

    for (unsigned t = 0; t < SDP_TRANSPORT_COUNT; t++)
        sdp__emit_transport(o, rl, (enum sdp_transport)t, &foundation);
    if (foundation > 0)
        sdp__put_line(o, "a=end-of-candidates");
}

/* Lines in place, then what the section lacks: credentials if neither it nor
 * the session has them, and the relay's candidates where a port is open. */
static void sdp__emit_media(struct sdp__out *o, const struct sdp__section *session,
                            const struct sdp__section *m, const struct sdp__relay *rl)
{
    struct sdp__reader r = m->lines;
    struct sdp__span l;
    unsigned have = session->attrs | m->attrs;

    while (sdp__next_line(&r, &l))
        sdp__emit_line(o, &l, rl);
    if (sdp__rejected(m))
        return;
    if (!(have & SDP__BIT(SDP__A_ICE_UFRAG)))
        sdp__emit_ice(o, SDP__A_ICE_UFRAG, rl);
    if (!(have & SDP__BIT(SDP__A_ICE_PWD)))
        sdp__emit_ice(o, SDP__A_ICE_PWD, rl);
    if (m->port != 0)
        sdp__emit_candidates(o, rl);
}

static enum sdp_error sdp__finish(struct sdp__out *o, size_t *out_len)
{
    if (o->long_line)
        return SDP_ERR_MALFORMED;
    if (o->len > QR_SDP_MAX)
        return SDP_ERR_TOO_LARGE;
    if (o->len >= o->cap)
        return SDP_ERR_OUT_OF_SPACE;
    o->buf[o->len] = '\0';
    *out_len = o->len;
    return SDP_OK;
}

static enum sdp_error sdp__rewrite(const char *in, size_t len, const struct sdp__relay *rl,
                                   struct sdp__out *o, size_t *out_len)
{
    struct sdp__reader all = {in, len, 0};
    struct sdp__section session, m;
    enum sdp_error e;

    if ((e = sdp__check_lines(in, len)) != SDP_OK ||
        (e = sdp__check_structure(in, len)) != SDP_OK)
        return e;
    sdp__next_section(&all, &session);
    sdp__emit_session(o, &session, rl);
    while (sdp__next_section(&all, &m))
        sdp__emit_media(o, &session, &m, rl);
    return sdp__finish(o, out_len);
}

enum sdp_error sdp_rewrite(const char *in, size_t len, const struct sdp_rewrite_params *p,
                           char *out, size_t cap, size_t *out_len)
{
    struct sdp__out o = {.buf = out, .cap = out != NULL ? cap : 0};
    struct sdp__relay rl;
    enum sdp_error e;

    *out_len = 0;
    /* Bad parameters are the caller's bug, not the browser's. */
    if (!sdp__relay_init(p, &rl))
        e = SDP_ERR_BAD_PARAMS;
    else
        e = sdp__rewrite(in, len, &rl, &o, out_len);
    if (e != SDP_OK && o.cap > 0)
        out[0] = '\0';
    return e;
}
