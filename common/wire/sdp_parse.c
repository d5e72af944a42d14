/* Reading SDP text without storing any of it: lines and their fields as
 * spans over the caller's buffer, the attributes the relay acts on,
 * sections, and the two checks every SDP passes before the relay rewrites
 * or summarises it (each line well-formed; DTLS transport, BUNDLE, rtcp-mux
 * and fingerprints present). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "sdp_internal.h"

/* --- reading ----------------------------------------------------------- */

/* Next line, LF or CRLF stripped. An empty last line ends the text (editors
 * and encoders add one); any other empty line is returned, and refused. */
bool sdp__next_line(struct sdp__reader *r, struct sdp__span *line)
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

bool sdp__eq(const struct sdp__span *s, const char *lit)
{
    size_t n = strlen(lit);

    return s->len == n && memcmp(s->p, lit, n) == 0;
}

bool sdp__eq_nocase(const struct sdp__span *s, const char *lit)
{
    size_t n = strlen(lit);

    return s->len == n && strncasecmp(s->p, lit, n) == 0;
}

enum sdp_error sdp__check_lines(const char *in, size_t len)
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
size_t sdp__fields(const struct sdp__span *s, struct sdp__span *f, size_t max)
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
bool sdp__port(const struct sdp__span *s, unsigned *port)
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
struct sdp__span sdp__value(const struct sdp__span *l)
{
    return (struct sdp__span){l->p + 2, l->len - 2};
}

/* --- attributes -------------------------------------------------------- */

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

enum sdp__attr sdp__attr_of(const struct sdp__span *l, struct sdp__span *value)
{
    size_t i = sdp__attr_find(l, value);

    return i < SDP__N_ATTRS ? sdp__attrs[i].id : SDP__A_OTHER;
}

bool sdp__attr_drops(enum sdp__attr id)
{
    for (size_t i = 0; i < SDP__N_ATTRS; i++) {
        if (sdp__attrs[i].id == id)
            return sdp__attrs[i].drop;
    }
    return false;
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
bool sdp__extmap_is_voice_level(const struct sdp__span *v)
{
    size_t at = 0;
    struct sdp__span uri;

    sdp__token(v, &at);             /* <id>[/<direction>] */
    uri = sdp__token(v, &at);
    return sdp__eq_nocase(&uri, "urn:ietf:params:rtp-hdrext:ssrc-audio-level") ||
           sdp__eq_nocase(&uri, "urn:ietf:params:rtp-hdrext:csrc-audio-level");
}

/* --- sections ---------------------------------------------------------- */

bool sdp__parse_mline(const struct sdp__span *l, struct sdp__mline *m)
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
bool sdp__parse_origin(const struct sdp__span *l, struct sdp__span *f)
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
bool sdp__next_section(struct sdp__reader *all, struct sdp__section *s)
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
bool sdp__rejected(const struct sdp__section *s)
{
    return s->port == 0 && !(s->attrs & SDP__BIT(SDP__A_BUNDLE_ONLY));
}

/* Structure, after every line passed sdp__check_lines. */
enum sdp_error sdp__check_structure(const char *in, size_t len)
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

/* --- addresses --------------------------------------------------------- */

/* Returns AF_INET, AF_INET6, or 0 if addr is not a numeric address. */
int sdp__family(const char *addr)
{
    struct in6_addr a;

    if (memchr(addr, '\0', SDP_ADDR_MAX) == NULL)
        return 0;
    if (inet_pton(AF_INET, addr, &a) == 1)
        return AF_INET;
    return inet_pton(AF_INET6, addr, &a) == 1 ? AF_INET6 : 0;
}
