/* SDP rewriting for the relay path. Three passes over the caller's text: every
 * line is checked, then the structure (transport, BUNDLE, rtcp-mux,
 * fingerprints), then the rewritten text is written. Nothing is stored per
 * line or per section, so no input can make the work or the memory grow
 * beyond a walk over QR_SDP_MAX bytes. */
#include "quietroom/wire/sdp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Longest line accepted, read or written; browsers' longest are ~200 bytes. */
#define SDP_LINE_MAX 4096
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

/* --- reading ----------------------------------------------------------- */

/* A window on the caller's text; pos advances a line at a time. */
struct sdp__reader {
    const char *p;
    size_t len;
    size_t pos;
};

/* A run of the caller's text: a line without its terminator, or a field. */
struct sdp__span {
    const char *p;
    size_t len;
};

/* Next line, LF or CRLF stripped. An empty last line ends the text (editors
 * and encoders add one); any other empty line is returned, and refused. */
static bool sdp__next_line(struct sdp__reader *r, struct sdp__span *line)
{
    const char *start = r->p + r->pos;
    const char *nl;
    size_t n;

    if (r->pos >= r->len)
        return false;
    nl = memchr(start, '\n', r->len - r->pos);
    n = nl != NULL ? (size_t)(nl - start) : r->len - r->pos;
    r->pos += nl != NULL ? n + 1 : n;
    if (nl != NULL && n > 0 && start[n - 1] == '\r')
        n--;
    if (n == 0 && r->pos == r->len)
        return false;
    *line = (struct sdp__span){start, n};
    return true;
}

/* RFC 8866 §5: <type>=<value>, one lower-case letter. Printable ASCII only:
 * a control byte could end a line for one parser and not for another. */
static bool sdp__line_ok(const struct sdp__span *l)
{
    if (l->len < 2 || l->len > SDP_LINE_MAX || l->p[0] < 'a' || l->p[0] > 'z' || l->p[1] != '=')
        return false;
    for (size_t i = 2; i < l->len; i++) {
        unsigned char c = (unsigned char)l->p[i];

        if (c < 0x20 || c > 0x7e)
            return false;
    }
    return true;
}

static bool sdp__eq(const struct sdp__span *s, const char *lit)
{
    size_t n = strlen(lit);

    return s->len == n && memcmp(s->p, lit, n) == 0;
}

static bool sdp__eq_nocase(const struct sdp__span *s, const char *lit)
{
    size_t n = strlen(lit);

    return s->len == n && strncasecmp(s->p, lit, n) == 0;
}

static enum sdp_error sdp__check_lines(const char *in, size_t len)
{
    struct sdp__reader r = {in, len, 0};
    struct sdp__span l;
    bool first = true;

    if (len > QR_SDP_MAX)
        return SDP_ERR_TOO_LARGE;
    if (in == NULL)
        return SDP_ERR_MALFORMED;
    while (sdp__next_line(&r, &l)) {
        if (!sdp__line_ok(&l) || (first && !sdp__eq(&l, "v=0")))
            return SDP_ERR_MALFORMED;
        first = false;
    }
    return first ? SDP_ERR_MALFORMED : SDP_OK;
}

/* Splits s at single spaces into at most max fields, the last taking the
 * rest. Returns the number of fields, or 0 if one is empty. */
static size_t sdp__fields(const struct sdp__span *s, struct sdp__span *f, size_t max)
{
    size_t n = 0, at = 0;

    while (n < max) {
        const char *sp = n + 1 < max ? memchr(s->p + at, ' ', s->len - at) : NULL;
        size_t end = sp != NULL ? (size_t)(sp - s->p) : s->len;

        if (end == at)
            return 0;
        f[n++] = (struct sdp__span){s->p + at, end - at};
        if (sp == NULL)
            return n;
        at = end + 1;
    }
    return n;
}

/* The next run of non-spaces in s from *at; spaces before it are skipped,
 * as a lax parser would. */
static struct sdp__span sdp__token(const struct sdp__span *s, size_t *at)
{
    size_t i = *at, start;

    while (i < s->len && s->p[i] == ' ')
        i++;
    start = i;
    while (i < s->len && s->p[i] != ' ')
        i++;
    *at = i;
    return (struct sdp__span){s->p + start, i - start};
}

/* 1-5 digits, at most 65535. */
static bool sdp__port(const struct sdp__span *s, unsigned *port)
{
    unsigned v = 0;

    if (s->len == 0 || s->len > 5)
        return false;
    for (size_t i = 0; i < s->len; i++) {
        if (s->p[i] < '0' || s->p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s->p[i] - '0');
    }
    *port = v;
    return v <= 65535;
}

/* The value of a line, after "x=". */
static struct sdp__span sdp__value(const struct sdp__span *l)
{
    return (struct sdp__span){l->p + 2, l->len - 2};
}

/* --- attributes -------------------------------------------------------- */

/* Attributes the relay acts on; the rest pass through untouched. */
enum sdp__attr {
    SDP__A_OTHER,
    SDP__A_CANDIDATE,
    SDP__A_END_OF_CANDIDATES,
    SDP__A_REMOTE_CANDIDATES,
    SDP__A_RTCP,
    SDP__A_ICE_LITE,
    SDP__A_ICE_UFRAG,
    SDP__A_ICE_PWD,
    SDP__A_EXTMAP,
    SDP__A_RTCP_MUX,
    SDP__A_FINGERPRINT,
    SDP__A_SETUP,
    SDP__A_BUNDLE_ONLY,
    SDP__A_GROUP,
};

#define SDP__BIT(a) (1u << (a))

/* drop: lines that carry client addresses (candidates, a=rtcp) or that the
 * relay writes itself (end-of-candidates, ice-lite). Names are matched
 * without regard to case so that no spelling slips an address through. */
static const struct {
    const char *name;
    enum sdp__attr id;
    bool drop;
} sdp__attrs[] = {
    {"candidate", SDP__A_CANDIDATE, true},
    {"end-of-candidates", SDP__A_END_OF_CANDIDATES, true},
    {"remote-candidates", SDP__A_REMOTE_CANDIDATES, true},
    {"rtcp", SDP__A_RTCP, true},
    {"ice-lite", SDP__A_ICE_LITE, true},
    {"ice-ufrag", SDP__A_ICE_UFRAG, false},
    {"ice-pwd", SDP__A_ICE_PWD, false},
    {"extmap", SDP__A_EXTMAP, false},
    {"rtcp-mux", SDP__A_RTCP_MUX, false},
    {"fingerprint", SDP__A_FINGERPRINT, false},
    {"setup", SDP__A_SETUP, false},
    {"bundle-only", SDP__A_BUNDLE_ONLY, false},
    {"group", SDP__A_GROUP, false},
};

#define SDP__N_ATTRS (sizeof(sdp__attrs) / sizeof(sdp__attrs[0]))

/* RFC 8866 §5.13: a=<name>[:<value>]. Browsers are laxer: Chromium also
 * ends a name at a space, Firefox trims spaces around it. The name is read
 * the laxest way, so that no line a browser takes for a candidate is kept.
 * Index into sdp__attrs, or SDP__N_ATTRS for any other line. */
static size_t sdp__attr_find(const struct sdp__span *l, struct sdp__span *value)
{
    struct sdp__span rest = sdp__value(l), name;
    size_t at = 0;

    if (l->p[0] != 'a')
        return SDP__N_ATTRS;
    while (at < rest.len && rest.p[at] == ' ')
        at++;
    name.p = rest.p + at;
    while (at < rest.len && rest.p[at] != ':' && rest.p[at] != ' ')
        at++;
    name.len = (size_t)(rest.p + at - name.p);
    at += at < rest.len;            /* the delimiter */
    *value = (struct sdp__span){rest.p + at, rest.len - at};
    for (size_t i = 0; i < SDP__N_ATTRS; i++) {
        if (sdp__eq_nocase(&name, sdp__attrs[i].name))
            return i;
    }
    return SDP__N_ATTRS;
}

static enum sdp__attr sdp__attr_of(const struct sdp__span *l, struct sdp__span *value)
{
    size_t i = sdp__attr_find(l, value);

    return i < SDP__N_ATTRS ? sdp__attrs[i].id : SDP__A_OTHER;
}

/* Whether an attribute says what its presence is taken to mean: a
 * fingerprint needs "<hash> <value>", a group must be a BUNDLE with a tag. */
static bool sdp__attr_counts(enum sdp__attr id, const struct sdp__span *v)
{
    struct sdp__span f[2];

    if (id == SDP__A_FINGERPRINT)
        return sdp__fields(v, f, 2) == 2;
    if (id == SDP__A_GROUP)
        return sdp__fields(v, f, 2) == 2 && sdp__eq(&f[0], "BUNDLE");
    return true;
}

/* Voice-activity extensions (RFC 6464, RFC 6465) are sent in the clear, so
 * the relay could learn who speaks. a=extmap:<id>[/<dir>] <uri> [<attrs>];
 * an encrypted one (RFC 6904) names the encrypt URI first and stays. */
static bool sdp__extmap_is_voice_level(const struct sdp__span *v)
{
    size_t at = 0;
    struct sdp__span uri;

    sdp__token(v, &at);             /* <id>[/<direction>] */
    uri = sdp__token(v, &at);
    return sdp__eq_nocase(&uri, "urn:ietf:params:rtp-hdrext:ssrc-audio-level") ||
           sdp__eq_nocase(&uri, "urn:ietf:params:rtp-hdrext:csrc-audio-level");
}

/* --- sections ---------------------------------------------------------- */

/* m=<media> <port> <proto> <fmt>... (RFC 8866 §5.14). */
struct sdp__mline {
    struct sdp__span media, port, proto, fmts;
    unsigned portnum;
};

static bool sdp__parse_mline(const struct sdp__span *l, struct sdp__mline *m)
{
    struct sdp__span v = sdp__value(l), f[4];

    if (sdp__fields(&v, f, 4) != 4 || !sdp__port(&f[1], &m->portnum))
        return false;
    m->media = f[0];
    m->port = f[1];
    m->proto = f[2];
    m->fmts = f[3];
    return true;
}

/* o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>;
 * f has room for 7 fields, so that a seventh is seen and refused. */
static bool sdp__parse_origin(const struct sdp__span *l, struct sdp__span *f)
{
    struct sdp__span v = sdp__value(l);

    return sdp__fields(&v, f, 7) == 6;
}

/* DTLS over UDP only: anything else would need the relay to terminate or
 * could not pass through it. */
static const struct {
    const char *proto;
    bool rtp;
} sdp__transports[] = {
    {"UDP/TLS/RTP/SAVPF", true},
    {"UDP/DTLS/SCTP", false},
};

/* The session part or one media section, and what it says. */
struct sdp__section {
    struct sdp__reader lines;
    bool media;
    bool dtls;
    bool rtp;
    bool bad;            /* an o= or m= line that cannot be rewritten */
    unsigned port;
    unsigned attrs;      /* SDP__BIT per attribute present */
};

static void sdp__note_media(struct sdp__section *s, const struct sdp__span *l)
{
    struct sdp__mline m;

    s->media = true;
    if (!sdp__parse_mline(l, &m)) {
        s->bad = true;
        return;
    }
    s->port = m.portnum;
    for (size_t i = 0; i < sizeof(sdp__transports) / sizeof(sdp__transports[0]); i++) {
        if (sdp__eq(&m.proto, sdp__transports[i].proto)) {
            s->dtls = true;
            s->rtp = sdp__transports[i].rtp;
        }
    }
}

static void sdp__note(struct sdp__section *s, const struct sdp__span *l)
{
    struct sdp__span v, f[7];
    enum sdp__attr id;

    switch (l->p[0]) {
    case 'm':
        sdp__note_media(s, l);
        break;
    case 'o':
        s->bad |= !sdp__parse_origin(l, f);
        break;
    case 'a':
        id = sdp__attr_of(l, &v);
        if (sdp__attr_counts(id, &v))
            s->attrs |= SDP__BIT(id);
        break;
    default:
        break;
    }
}

/* The next section of already checked text: up to the next m= line. */
static bool sdp__next_section(struct sdp__reader *all, struct sdp__section *s)
{
    struct sdp__span l;
    size_t start = all->pos, at;

    if (all->pos >= all->len)
        return false;
    *s = (struct sdp__section){.lines = *all};
    for (;;) {
        at = all->pos;
        if (!sdp__next_line(all, &l))
            break;
        if (l.p[0] == 'm' && at != start) {
            all->pos = at;
            break;
        }
        sdp__note(s, &l);
    }
    s->lines.len = all->pos;
    return true;
}

/* RFC 9143: port 0 rejects a section unless it is bundle-only, which
 * Firefox uses for every section after the first of a BUNDLE group. */
static bool sdp__rejected(const struct sdp__section *s)
{
    return s->port == 0 && !(s->attrs & SDP__BIT(SDP__A_BUNDLE_ONLY));
}

/* Structure, after every line passed sdp__check_lines. */
static enum sdp_error sdp__check_structure(const char *in, size_t len)
{
    struct sdp__reader all = {in, len, 0};
    struct sdp__section session, m;
    bool bad_transport = false, no_mux = false, no_fingerprint = false;
    unsigned n_media = 0;

    sdp__next_section(&all, &session);
    if (session.bad)
        return SDP_ERR_MALFORMED;
    while (sdp__next_section(&all, &m)) {
        if (m.bad)
            return SDP_ERR_MALFORMED;
        n_media++;
        bad_transport |= !m.dtls;
        if (sdp__rejected(&m))
            continue;
        no_mux |= m.rtp && !(m.attrs & SDP__BIT(SDP__A_RTCP_MUX));
        no_fingerprint |= !((session.attrs | m.attrs) & SDP__BIT(SDP__A_FINGERPRINT));
    }
    if (n_media == 0)
        return SDP_ERR_NO_MEDIA;
    if (bad_transport)
        return SDP_ERR_BAD_TRANSPORT;
    if (!(session.attrs & SDP__BIT(SDP__A_GROUP)))
        return SDP_ERR_NO_BUNDLE;
    if (no_mux)
        return SDP_ERR_NO_RTCP_MUX;
    if (no_fingerprint)
        return SDP_ERR_NO_FINGERPRINT;
    return SDP_OK;
}

/* --- the relay's side -------------------------------------------------- */

/* Parameters checked once: they are written into SDP, so a stray CR or space
 * in them would forge lines. */
struct sdp__relay {
    const struct sdp_rewrite_params *p;
    const char *v4;                 /* first IPv4 candidate, for c= */
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

/* Returns AF_INET, AF_INET6, or 0 if addr is not a numeric address. */
static int sdp__family(const char *addr)
{
    struct in6_addr a;

    if (memchr(addr, '\0', SDP_ADDR_MAX) == NULL)
        return 0;
    if (inet_pton(AF_INET, addr, &a) == 1)
        return AF_INET;
    return inet_pton(AF_INET6, addr, &a) == 1 ? AF_INET6 : 0;
}

static bool sdp__relay_init(const struct sdp_rewrite_params *p, struct sdp__relay *rl)
{
    *rl = (struct sdp__relay){.p = p};
    if (p == NULL || p->ice_ufrag == NULL || p->ice_pwd == NULL ||
        !sdp__ice_chars(p->ice_ufrag, SDP_UFRAG_MIN) || !sdp__ice_chars(p->ice_pwd, SDP_PWD_MIN) ||
        p->n_cands > SDP_CANDIDATES_MAX || (p->n_cands > 0 && p->cands == NULL))
        return false;
    for (unsigned i = 0; i < p->n_cands; i++) {
        int family = sdp__family(p->cands[i].addr);

        if (family == 0 || p->cands[i].port == 0)
            return false;
        if (family == AF_INET && rl->v4 == NULL)
            rl->v4 = p->cands[i].addr;
        if (family == AF_INET6 && rl->v6 == NULL)
            rl->v6 = p->cands[i].addr;
    }
    snprintf(rl->port, sizeof(rl->port), "%u",
             p->n_cands > 0 ? (unsigned)p->cands[0].port : SDP_PORT_NONE);
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
    size_t i = sdp__attr_find(l, &v);
    enum sdp__attr id = i < SDP__N_ATTRS ? sdp__attrs[i].id : SDP__A_OTHER;

    if (i < SDP__N_ATTRS && sdp__attrs[i].drop)
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

static void sdp__emit_candidates(struct sdp__out *o, const struct sdp__relay *rl)
{
    char line[128 + SDP_ADDR_MAX];

    for (unsigned i = 0; i < rl->p->n_cands; i++) {
        unsigned long prio = (unsigned long)SDP_TYPE_PREF_HOST << 24 |
                             (unsigned long)(SDP_LOCAL_PREF_TOP - i) << 8 | 255u;

        snprintf(line, sizeof(line), "a=candidate:%u 1 udp %lu %s %u typ host", i + 1, prio,
                 rl->p->cands[i].addr, (unsigned)rl->p->cands[i].port);
        sdp__put_line(o, line);
    }
    if (rl->p->n_cands > 0)
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

/* --- summary ----------------------------------------------------------- */

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

/* <foundation> <component> <transport> <priority> <address> <port> typ ...
 * (RFC 8839 §5.1). Only what a native client can use: component 1 over UDP
 * at a numeric address; mDNS names and TCP are skipped. */
static void sdp__summary_candidate(struct sdp_summary *out, const struct sdp__span *v)
{
    struct sdp__span f[7];
    struct sdp_candidate *c;
    unsigned port;

    if (out->n_cands >= SDP_CANDIDATES_MAX || sdp__fields(v, f, 7) != 7 ||
        !sdp__eq(&f[1], "1") || !sdp__eq_nocase(&f[2], "udp") || f[4].len >= SDP_ADDR_MAX ||
        !sdp__port(&f[5], &port) || port == 0)
        return;
    c = &out->cands[out->n_cands];
    memset(c->addr, 0, sizeof(c->addr));
    memcpy(c->addr, f[4].p, f[4].len);
    if (sdp__family(c->addr) == 0)
        return;
    c->port = (uint16_t)port;
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
