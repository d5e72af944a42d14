/* Checking a local audit chain against the witness a syslog collector keeps.
 *
 * What rsyslog writes. Found with rsyslog 8.2302 (Debian 12): a private
 * rsyslogd (imtcp on loopback, maxMessageSize 64k, one omfile action with
 * template RSYSLOG_SyslogProtocol23Format) fed octet-counted RFC 5424
 * frames, the file read back byte by byte:
 * - Each message is one line, "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID
 *   MSGID SD MSG\n". The SP after SD is always written: when MSG is empty
 *   the line ends in "- ", and when the sender left the SP out it is added.
 *   Otherwise MSG is written as received: leading spaces kept, no BOM added,
 *   a sender's BOM kept (skipped here: RFC 5424 allows one before UTF-8).
 * - Control characters in MSG and in SD values are written as '#' and three
 *   octal digits (LF "#012", TAB "#011", CR "#015", NUL "#000"); DEL and
 *   8-bit bytes pass raw, invalid UTF-8 included; '#' itself is not escaped.
 *   One trailing LF of a frame is dropped. A sealed record holds no raw
 *   control character (jansson escapes them), so its MSG is the record byte
 *   for byte and is handed to the seal check untouched, never unescaped.
 * - TIMESTAMP is the sender's as sent (its fraction digits, "Z" kept); a nil
 *   one is replaced by the reception time, microseconds and "+00:00".
 *   HOSTNAME, APP-NAME, PROCID and MSGID are passed on without the RFC's
 *   length limits and with 8-bit bytes. A frame rsyslog cannot read as RFC
 *   5424 is read as RFC 3164 and may get an empty APP-NAME (two SPs in a
 *   row); a bad PRI is written as "<invld>". SD is written as received,
 *   escapes (\" \\ \]) kept.
 * - A frame longer than maxMessageSize (8096 bytes unless configured) is cut
 *   there and its rest becomes a message of its own: a record longer than
 *   the collector's limit arrives as two foreign lines.
 * So the parser takes header fields by shape (empty and long ones
 * tolerated), checks the timestamp and SD grammar, and keeps MSG as is.
 *
 * Whose records. Both daemons default node-id to the host name and usually
 * share one key and one collector file, so a node names no chain: on one
 * host the relay's and signaling's records carry the same node and the same
 * seqs. A witness record is attributed to the local chain by its links:
 * - candidates are records that verify under the key file and whose node is
 *   one of the local chain's (learnt by a first walk of the local files, so
 *   that only those are kept: memory grows with this node's records only);
 * - a candidate at seq n belongs when its mac is the local mac at n (the
 *   same record), or when its prev is not the genesis and is the local mac
 *   at n-1, the prev of the first local record (n is the first local seq;
 *   older files not given), or the mac of a belonging candidate at n-1: a
 *   run beyond the local end, or an original the local files replaced,
 *   links forward from the last local record both share. The genesis links
 *   every chain's seq 1: seq 1 belongs only by being identical;
 * - a chain rewritten from its first local record links to nothing here;
 *   its originals are told from the other daemon's by the syslog APP-NAME
 *   (audit-syslog-name: the program's name unless set, so it differs): a
 *   candidate whose APP-NAME is that of a witness line identical to a local
 *   record belongs too. APP-NAME is not sealed, so this only adds records
 *   to judge, never hides one that links.
 * Belonging records at or after the first local seq are judged: beyond the
 * local end truncated, another mac at a local seq edited, absent inside the
 * range deleted (purged where audit.purge vouches). The others are counted
 * as another chain with the same node; those before the first local seq as
 * older (not checked, whichever chain).
 *
 * Order: the local node(s) are read, then the witness, then the local
 * chain is walked again collecting (seq, mac): a record reaches the
 * collector only after it is durable locally, so records written during
 * the check are ahead locally, never missing. */
#include "quietroom/audit/audit_witness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_verify_internal.h"

/* --- one line ----------------------------------------------------------------- */

struct aw_cur {
    const char *p, *end;
};

static bool aw__eat(struct aw_cur *c, char ch)
{
    if (c->p == c->end || *c->p != ch)
        return false;
    c->p++;
    return true;
}

/* Up to max digits; returns how many were read, their value in *v. */
static size_t aw__number(struct aw_cur *c, size_t max, unsigned *v)
{
    size_t n = 0;

    *v = 0;
    while (n < max && c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        *v = *v * 10 + (unsigned)(*c->p++ - '0');
        n++;
    }
    return n;
}

static bool aw__digits(struct aw_cur *c, size_t n)
{
    unsigned v;

    return aw__number(c, n, &v) == n;
}

/* "<PRI>VERSION ": PRI 0..191, VERSION a non-zero number. */
static bool aw__pri(struct aw_cur *c, struct audit_witness_line *out)
{
    if (!aw__eat(c, '<') || aw__number(c, 3, &out->pri) == 0 || out->pri > 191 ||
        !aw__eat(c, '>'))
        return false;
    if (c->p < c->end && *c->p == '0')
        return false;
    return aw__number(c, 3, &out->version) > 0 && aw__eat(c, ' ');
}

/* "YYYY-MM-DDThh:mm:ss". Values are not range-checked: rsyslog checked
 * them on reception, and the collector's clock is not what is verified. */
static bool aw__date_time(struct aw_cur *c)
{
    return aw__digits(c, 4) && aw__eat(c, '-') && aw__digits(c, 2) && aw__eat(c, '-') &&
           aw__digits(c, 2) && aw__eat(c, 'T') && aw__digits(c, 2) && aw__eat(c, ':') &&
           aw__digits(c, 2) && aw__eat(c, ':') && aw__digits(c, 2);
}

/* "-", or RFC 3339 with an optional fraction and "Z" or an offset. */
static bool aw__time(struct aw_cur *c, struct audit_witness_span *s)
{
    unsigned v;

    s->p = c->p;
    if (!aw__eat(c, '-')) {
        if (!aw__date_time(c) || (aw__eat(c, '.') && aw__number(c, 9, &v) == 0))
            return false;
        if (!aw__eat(c, 'Z') &&
            (!(aw__eat(c, '+') || aw__eat(c, '-')) || !aw__digits(c, 2) || !aw__eat(c, ':') ||
             !aw__digits(c, 2)))
            return false;
    }
    s->len = (size_t)(c->p - s->p);
    return aw__eat(c, ' ');
}

/* A header field and the SP after it: no control byte, SP or DEL; 8-bit
 * bytes and any length are tolerated (rsyslog passes them on), and so is
 * an empty field (rsyslog writes one for a tag it could not find). */
static bool aw__field(struct aw_cur *c, struct audit_witness_span *s)
{
    s->p = c->p;
    while (c->p < c->end && *c->p != ' ') {
        unsigned char ch = (unsigned char)*c->p;

        if (ch < 0x21 || ch == 0x7f)
            return false;
        c->p++;
    }
    s->len = (size_t)(c->p - s->p);
    return aw__eat(c, ' ');
}

/* SD-NAME: printable US-ASCII but '=', ']' and '"' (SP is not printable). */
static bool aw__sd_name(struct aw_cur *c)
{
    const char *start = c->p;

    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;

        if (ch < 0x21 || ch > 0x7e || ch == '=' || ch == ']' || ch == '"')
            break;
        c->p++;
    }
    return c->p > start;
}

/* A quoted PARAM-VALUE. A backslash takes the next byte with it: \" \\ \]
 * are RFC 5424's escapes, and any other pair stays as written. */
static bool aw__sd_value(struct aw_cur *c)
{
    if (!aw__eat(c, '"'))
        return false;
    while (c->p < c->end) {
        char ch = *c->p++;

        if (ch == '"')
            return true;
        if (ch == '\\' && c->p < c->end)
            c->p++;
    }
    return false;
}

/* "[" SD-ID *(SP PARAM-NAME "=" PARAM-VALUE) "]" */
static bool aw__sd_element(struct aw_cur *c)
{
    if (!aw__eat(c, '[') || !aw__sd_name(c))
        return false;
    while (aw__eat(c, ' ')) {
        if (!aw__sd_name(c) || !aw__eat(c, '=') || !aw__sd_value(c))
            return false;
    }
    return aw__eat(c, ']');
}

/* "-" or elements, then the end of the line or an SP. */
static bool aw__sd(struct aw_cur *c, struct audit_witness_span *s)
{
    s->p = c->p;
    if (!aw__eat(c, '-')) {
        do {
            if (!aw__sd_element(c))
                return false;
        } while (c->p < c->end && *c->p == '[');
    }
    s->len = (size_t)(c->p - s->p);
    return c->p == c->end || *c->p == ' ';
}

static void aw__msg(struct aw_cur *c, struct audit_witness_span *s)
{
    static const char bom[3] = {'\xef', '\xbb', '\xbf'};

    aw__eat(c, ' ');
    if ((size_t)(c->end - c->p) >= sizeof(bom) && memcmp(c->p, bom, sizeof(bom)) == 0)
        c->p += sizeof(bom);
    s->p = c->p;
    s->len = (size_t)(c->end - c->p);
}

int audit_witness_parse_line(const char *buf, size_t len, struct audit_witness_line *out)
{
    struct aw_cur c = {buf, buf + len};

    memset(out, 0, sizeof(*out));
    if (buf == NULL)
        return -1;
    /* rsyslog writes CR as "#015"; a raw one at the end is a copy's CRLF. */
    if (len > 0 && buf[len - 1] == '\r')
        c.end--;
    if (!aw__pri(&c, out) || !aw__time(&c, &out->time) || !aw__field(&c, &out->host) ||
        !aw__field(&c, &out->app) || !aw__field(&c, &out->procid) ||
        !aw__field(&c, &out->msgid) || !aw__sd(&c, &out->sd))
        return -1;
    aw__msg(&c, &out->msg);
    return 0;
}

/* --- the records of both sides -------------------------------------------------- */

/* Why the check could not run. */
enum aw_err { AW_UNREADABLE = 1, AW_OOM = -1, AW_NODES = -2, AW_LOCAL = -3, AW_CHANGED = -4 };

/* A candidate: a witness record of a local node whose seal verifies. */
struct aw_rec {
    uint64_t seq;
    uint64_t line;
    uint64_t app;                  /* hash of the line's APP-NAME */
    bool belongs;                  /* to the local chain by its links (aw__link) */
    char mac[AUDIT_MAC_B64 - 1];   /* base64, no NUL */
    char prev[AUDIT_MAC_B64 - 1];
};

/* A record accepted into the local chain. */
struct aw_local {
    uint64_t seq;
    char mac[AUDIT_MAC_B64 - 1];
};

struct aw_node {
    char *name;                    /* owned */
    bool local;                    /* the local chain holds records of it */
};

/* APP-NAMEs of witness lines identical to a local record; past AW_APPS
 * distinct ones (a witness fed lines by someone holding the key) every
 * APP-NAME counts: more records judged, none hidden. */
#define AW_APPS 16
struct aw_apps {
    uint64_t app[AW_APPS];
    size_t n;
    bool all;
};

struct aw_ctx {
    const struct keyring *kr;
    struct hmac *h;                /* owned */
    struct aw_rec *w;              /* owned: candidates */
    size_t nw, capw;
    struct aw_local *l;            /* owned, chain order */
    size_t nl, capl;
    char first_prev[AUDIT_MAC_B64 - 1]; /* prev of the first local record */
    struct aw_node *nodes;         /* owned: the local nodes, then the witness's */
    size_t nnodes, capnodes, last_node;
    size_t nlocal_nodes;           /* marked by the first walk */
    struct audit_witness_finding any; /* every record, while no node is local */
    int err;                       /* set by a walk's callback */
    bool local_ok;                 /* the local verdict is intact, or torn */
    struct audit_witness_report *out;
};

/* p (holding n of *cap items of size bytes) with room for one more; NULL
 * when out of memory, p untouched then. */
static void *aw__reserve(void *p, size_t *cap, size_t n, size_t size)
{
    size_t ncap = *cap ? *cap * 2 : 64;
    void *np;

    if (n < *cap)
        return p;
    if (ncap > SIZE_MAX / size || (np = realloc(p, ncap * size)) == NULL)
        return NULL;
    *cap = ncap;
    return np;
}

/* The index of name in the node table, looked for, then added. Returns
 * AW_OOM or AW_NODES on failure. The previous record's node is tried
 * first: two daemons' records alternate, and few nodes share a witness. */
static long aw__node(struct aw_ctx *c, const char *name)
{
    struct aw_node *nodes;

    if (c->nnodes > 0 && strcmp(c->nodes[c->last_node].name, name) == 0)
        return (long)c->last_node;
    for (size_t i = 0; i < c->nnodes; i++) {
        if (strcmp(c->nodes[i].name, name) == 0)
            return (long)(c->last_node = i);
    }
    if (c->nnodes == AUDIT_WITNESS_NODES_MAX)
        return AW_NODES;
    if ((nodes = aw__reserve(c->nodes, &c->capnodes, c->nnodes, sizeof(*nodes))) == NULL)
        return AW_OOM;
    c->nodes = nodes;
    if ((nodes[c->nnodes].name = strdup(name)) == NULL)
        return AW_OOM;
    nodes[c->nnodes].local = false;
    c->last_node = c->nnodes;
    return (long)c->nnodes++;
}

static const char *aw__node_of(const json_t *rec)
{
    const char *node = json_string_value(json_object_get(rec, "node"));

    return node != NULL ? node : "";
}

/* FNV-1a: APP-NAMEs are only compared for equality. */
static uint64_t aw__hash(struct audit_witness_span s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < s.len; i++)
        h = (h ^ (unsigned char)s.p[i]) * 0x100000001b3ULL;
    return h;
}

/* Unsorted: the lowest and highest seq, the line of the lowest. */
static void aw__note_any(struct audit_witness_finding *f, uint64_t seq, uint64_t line)
{
    if (f->count++ == 0 || seq < f->seq) {
        f->seq = seq;
        f->line = line;
    }
    if (f->count == 1 || seq > f->seq_hi)
        f->seq_hi = seq;
}

/* A verified witness record: kept if its node is a local one, else
 * counted. With no local record at all every one is beyond the end. */
static int aw__keep(struct aw_ctx *c, const struct audit_line *al,
                    const struct audit_witness_line *wl, uint64_t no)
{
    long node = aw__node(c, aw__node_of(al->obj));
    struct aw_rec *w;

    if (node < 0)
        return (int)node;
    if (c->nlocal_nodes == 0) {
        aw__note_any(&c->any, al->seq, no);
        return 0;
    }
    if (!c->nodes[node].local) {
        c->out->other_nodes++;
        return 0;
    }
    if ((w = aw__reserve(c->w, &c->capw, c->nw, sizeof(*w))) == NULL)
        return AW_OOM;
    c->w = w;
    w = &c->w[c->nw++];
    w->seq = al->seq;
    w->line = no;
    w->app = aw__hash(wl->app);
    w->belongs = false;
    memcpy(w->mac, al->mac, sizeof(w->mac));
    memcpy(w->prev, al->prev, sizeof(w->prev));
    return 0;
}

/* One witness line: kept if it carries a record that verifies, else only
 * counted. Nothing on it is a failure by itself. */
static int aw__line(struct aw_ctx *c, const char *text, size_t len, uint64_t no)
{
    struct audit_witness_line wl;
    struct audit_line al;
    enum audit_line_status st;
    int rc = 0;

    c->out->lines++;
    if (len > AV_LINE_MAX || audit_witness_parse_line(text, len, &wl) != 0) {
        c->out->foreign++;
        return 0;
    }
    st = audit_record_open(wl.msg.p, wl.msg.len, c->kr, c->h, &al);
    if (st == AUDIT_LINE_OK)
        rc = aw__keep(c, &al, &wl, no);
    else if (st == AUDIT_LINE_BAD_MAC || st == AUDIT_LINE_UNKNOWN_KEY)
        c->out->unverified++;
    else
        c->out->foreign++;
    audit_line_free(&al);
    return rc;
}

static int aw__unreadable(struct aw_ctx *c, const char *what)
{
    c->out->problem = AUDIT_UNREADABLE;
    snprintf(c->out->why, sizeof(c->out->why), "%s", what);
    return AW_UNREADABLE;
}

/* Reads the witness. Lines longer than a record can be are measured, not
 * kept (audit_verify__getline). */
static int aw__read(struct aw_ctx *c, const char *path)
{
    FILE *fp = fopen(path, "r");
    struct av_buf b = {0};
    size_t len;
    bool nl;
    int rc = 0;

    if (fp == NULL)
        return aw__unreadable(c, strerror(errno));
    for (uint64_t no = 1; rc == 0; no++) {
        int got = audit_verify__getline(fp, &b, &len, &nl);

        if (got <= 0) {
            rc = got < 0 ? AW_OOM : 0;
            break;
        }
        rc = aw__line(c, audit_verify__text(&b), len, no);
    }
    if (rc == 0 && ferror(fp))
        rc = aw__unreadable(c, strerror(errno ? errno : EIO));
    fclose(fp);
    free(b.data);
    return rc;
}

/* First walk: only the nodes of the local records, so that the witness
 * read after it keeps no other node's records. */
static int aw__node_one(json_t *rec, const char *file, uint64_t line, void *arg)
{
    struct aw_ctx *c = arg;
    long node = aw__node(c, aw__node_of(rec));

    (void)file;
    (void)line;
    if (node < 0) {
        c->err = (int)node;
        return -1;
    }
    if (!c->nodes[node].local) {
        c->nodes[node].local = true;
        c->nlocal_nodes++;
    }
    return 0;
}

static int aw__local_nodes(struct aw_ctx *c, const char *const *paths, size_t n,
                           struct audit_report *local)
{
    if (audit_verify_walk(paths, n, c->kr, aw__node_one, c, local) != 0)
        return c->err != 0 ? c->err : AW_LOCAL;
    return 0;
}

/* Second walk, after the witness: the chain's (seq, mac). */
static int aw__local_one(json_t *rec, const char *file, uint64_t line, void *arg)
{
    struct aw_ctx *c = arg;
    const char *mac = json_string_value(json_object_get(rec, "mac"));
    const char *prev = json_string_value(json_object_get(rec, "prev"));
    json_t *seq = json_object_get(rec, "seq");
    struct aw_local *l;

    (void)file;
    (void)line;
    /* An accepted record has all three; anything else stops the walk. */
    if (mac == NULL || strlen(mac) != AUDIT_MAC_B64 - 1 || prev == NULL ||
        strlen(prev) != AUDIT_MAC_B64 - 1 || !json_is_integer(seq))
        return -1;
    if ((l = aw__reserve(c->l, &c->capl, c->nl, sizeof(*l))) == NULL) {
        c->err = AW_OOM;
        return -1;
    }
    c->l = l;
    if (c->nl == 0)
        memcpy(c->first_prev, prev, sizeof(c->first_prev));
    l = &c->l[c->nl++];
    l->seq = (uint64_t)json_integer_value(seq);
    memcpy(l->mac, mac, sizeof(l->mac));
    snprintf(c->out->node, sizeof(c->out->node), "%s", aw__node_of(rec));
    return 0;
}

static int aw__local(struct aw_ctx *c, const char *const *paths, size_t n,
                     struct audit_report *local)
{
    c->err = 0;
    if (audit_verify_walk(paths, n, c->kr, aw__local_one, c, local) != 0)
        return c->err != 0 ? c->err : AW_LOCAL;
    /* Empty at the first walk, so the witness was read without a node:
     * its records of this chain were not kept. */
    if (c->nlocal_nodes == 0 && c->nl > 0)
        return AW_CHANGED;
    c->local_ok = !audit_problem_is_failure(local->problem);
    return 0;
}

/* --- whose records --------------------------------------------------------------- */

static int aw__by_record(const void *a, const void *b)
{
    const struct aw_rec *x = a, *y = b;
    int m;

    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    if ((m = memcmp(x->mac, y->mac, sizeof(x->mac))) != 0)
        return m;
    return (x->line > y->line) - (x->line < y->line);
}

/* qsort may not be handed NULL, even for nothing to sort. */
static void aw__sort(struct aw_ctx *c)
{
    if (c->nw > 0)
        qsort(c->w, c->nw, sizeof(*c->w), aw__by_record);
}

static int aw__find(const void *key, const void *elem)
{
    uint64_t seq = *(const uint64_t *)key, other = ((const struct aw_local *)elem)->seq;

    return (seq > other) - (seq < other);
}

static const struct aw_local *aw__local_at(const struct aw_ctx *c, uint64_t seq)
{
    return bsearch(&seq, c->l, c->nl, sizeof(*c->l), aw__find);
}

/* Whether a belonging candidate of w[lo..hi) (one seq, sorted by mac) has
 * prev as its mac. */
static bool aw__linked_from(const struct aw_rec *w, size_t lo, size_t hi, const char *prev)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int m = memcmp(w[mid].mac, prev, sizeof(w[mid].mac));

        if (m == 0)
            return w[mid].belongs; /* copies of one record agree */
        if (m < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* The rule in the comment at the top; w[lo..hi) are the candidates of the
 * seq before w's (empty if there are none), already decided. */
static bool aw__belongs(const struct aw_ctx *c, const struct aw_rec *w, size_t lo, size_t hi)
{
    const struct aw_local *l = aw__local_at(c, w->seq);

    if (l != NULL && memcmp(l->mac, w->mac, sizeof(l->mac)) == 0)
        return true;
    /* Every chain's seq 1 follows the genesis: that links nothing. */
    if (memcmp(w->prev, AUDIT_GENESIS, sizeof(w->prev)) == 0)
        return false;
    if (w->seq == c->l[0].seq && memcmp(w->prev, c->first_prev, sizeof(w->prev)) == 0)
        return true;
    if (w->seq > 0 && (l = aw__local_at(c, w->seq - 1)) != NULL &&
        memcmp(l->mac, w->prev, sizeof(l->mac)) == 0)
        return true;
    return aw__linked_from(c->w, lo, hi, w->prev);
}

/* Decides belongs for every candidate, in seq order (sorted), so that a
 * run links forward from the local record it follows. */
static void aw__link(struct aw_ctx *c)
{
    size_t lo = 0, j;

    for (size_t i = 0; i < c->nw; i = j) {
        bool adjacent = i > 0 && c->w[i - 1].seq + 1 == c->w[i].seq;

        for (j = i; j < c->nw && c->w[j].seq == c->w[i].seq; j++)
            c->w[j].belongs = aw__belongs(c, &c->w[j], adjacent ? lo : 0, adjacent ? i : 0);
        lo = i;
    }
}

static bool aw__apps_has(const struct aw_apps *a, uint64_t app)
{
    for (size_t i = 0; i < a->n; i++) {
        if (a->app[i] == app)
            return true;
    }
    return a->all;
}

/* The APP-NAMEs of witness lines identical to a local record: the local
 * daemon's name at the collector. */
static void aw__local_apps(const struct aw_ctx *c, struct aw_apps *a)
{
    for (size_t i = 0; i < c->nw && !a->all; i++) {
        const struct aw_rec *w = &c->w[i];
        const struct aw_local *l;

        if (aw__apps_has(a, w->app) || (l = aw__local_at(c, w->seq)) == NULL ||
            memcmp(l->mac, w->mac, sizeof(l->mac)) != 0)
            continue;
        if (a->n == AW_APPS)
            a->all = true;
        else
            a->app[a->n++] = w->app;
    }
}

/* A chain rewritten from its first local record links to nothing here:
 * the originals are known by the local daemon's APP-NAME. */
static void aw__by_app(struct aw_ctx *c)
{
    struct aw_apps apps = {.n = 0};

    aw__local_apps(c, &apps);
    for (size_t i = 0; i < c->nw; i++) {
        if (!c->w[i].belongs && aw__apps_has(&apps, c->w[i].app))
            c->w[i].belongs = true;
    }
}

/* --- judging ------------------------------------------------------------------- */

/* Records are judged in seq order: the first noted is the lowest. */
static void aw__note(struct audit_witness_finding *f, const struct aw_rec *w)
{
    if (f->count++ == 0) {
        f->seq = w->seq;
        f->line = w->line;
    }
    f->seq_hi = w->seq;
}

/* One record at or after the first local seq. */
static void aw__judge(struct aw_ctx *c, const struct aw_rec *w)
{
    struct audit_witness_report *out = c->out;
    const struct aw_local *l;

    if (!w->belongs)
        out->other_chains++;
    else if (w->seq > c->l[c->nl - 1].seq)
        aw__note(&out->truncated, w);
    else if ((l = aw__local_at(c, w->seq)) == NULL && c->local_ok)
        out->purged++; /* a chain that verifies skips seqs only where audit.purge vouches */
    else if (l == NULL)
        aw__note(&out->deleted, w);
    else if (memcmp(l->mac, w->mac, sizeof(l->mac)) != 0)
        aw__note(&out->edited, w);
    else if (out->matched++ == 0)
        out->matched_lo = out->matched_hi = w->seq;
    else
        out->matched_hi = w->seq;
}

static void aw__compare(struct aw_ctx *c)
{
    aw__sort(c);
    aw__link(c);
    aw__by_app(c);
    for (size_t i = 0; i < c->nw; i++) {
        const struct aw_rec *w = &c->w[i];

        if (i > 0 && w->seq == w[-1].seq && memcmp(w->mac, w[-1].mac, sizeof(w->mac)) == 0)
            c->out->duplicates++;
        else if (w->seq < c->l[0].seq)
            c->out->older++; /* no local record to link to: of either chain */
        else
            aw__judge(c, w);
    }
}

/* The local files hold no record, so their node is unknown: every record
 * the witness holds is beyond their end (noted while it was read). */
static void aw__no_local(struct aw_ctx *c)
{
    struct audit_witness_finding *f = &c->out->truncated;

    *f = c->any;
    for (size_t i = 0; i < c->nw; i++)
        aw__note_any(f, c->w[i].seq, c->w[i].line);
    if (f->count > 0)
        snprintf(f->why, sizeof(f->why),
                 "the local files hold no record, yet the witness holds %llu record(s) of %zu "
                 "node(s) sealed under the key file (seq %llu-%llu): the local files were "
                 "emptied or are not this witness's",
                 (unsigned long long)f->count, c->nnodes, (unsigned long long)f->seq,
                 (unsigned long long)f->seq_hi);
}

static void aw__explain(struct aw_ctx *c)
{
    struct audit_witness_report *out = c->out;
    uint64_t first = c->l[0].seq, last = c->l[c->nl - 1].seq;
    char r[48], all[48];

    if (out->truncated.count > 0)
        snprintf(out->truncated.why, sizeof(out->truncated.why),
                 "the local chain ends at seq %llu; the witness holds %llu record(s) after it, up "
                 "to seq %llu: %s were cut from the local end",
                 (unsigned long long)last, (unsigned long long)out->truncated.count,
                 (unsigned long long)out->truncated.seq_hi,
                 audit_verify__range(r, sizeof(r), last + 1, out->truncated.seq_hi));
    if (out->edited.count > 0)
        snprintf(out->edited.why, sizeof(out->edited.why),
                 "seq %llu differs from the local record of that seq (another mac): it was "
                 "edited or replaced after it was shipped (%llu record(s) differ, in %s)",
                 (unsigned long long)out->edited.seq, (unsigned long long)out->edited.count,
                 audit_verify__range(r, sizeof(r), out->edited.seq, out->edited.seq_hi));
    if (out->deleted.count > 0)
        snprintf(out->deleted.why, sizeof(out->deleted.why),
                 "seq %llu is in the witness but not in the local files, inside their range "
                 "(%s): deleted (%llu record(s) missing, in %s)",
                 (unsigned long long)out->deleted.seq, audit_verify__range(all, sizeof(all), first, last),
                 (unsigned long long)out->deleted.count,
                 audit_verify__range(r, sizeof(r), out->deleted.seq, out->deleted.seq_hi));
}

/* The verdict names the finding of the lowest seq. */
static void aw__verdict(struct aw_ctx *c)
{
    struct audit_witness_report *out = c->out;
    const struct {
        const struct audit_witness_finding *f;
        enum audit_problem p;
    } kinds[] = {
        {&out->edited, AUDIT_EDITED},
        {&out->deleted, AUDIT_DELETED},
        {&out->truncated, AUDIT_TRUNCATED},
    };
    const struct audit_witness_finding *first = NULL;

    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        if (kinds[k].f->count > 0 && (first == NULL || kinds[k].f->seq < first->seq)) {
            first = kinds[k].f;
            out->problem = kinds[k].p;
        }
    }
    if (first != NULL)
        snprintf(out->why, sizeof(out->why), "%s", first->why);
}

static void aw__judge_all(struct aw_ctx *c, const struct audit_report *local)
{
    /* Unreadable local files yield no records; that is not the witness's
     * finding. */
    if (local->problem == AUDIT_UNREADABLE)
        return;
    c->out->compared = true;
    if (c->nl == 0) {
        aw__no_local(c);
    } else {
        aw__compare(c);
        aw__explain(c);
    }
    aw__verdict(c);
}

static void aw__free(struct aw_ctx *c)
{
    for (size_t i = 0; i < c->nnodes; i++)
        free(c->nodes[i].name);
    free(c->nodes);
    free(c->w);
    free(c->l);
    hmac_free(c->h);
}

/* Sets why for a check that could not run. */
static void aw__failed(struct aw_ctx *c, int err, const struct audit_report *local)
{
    char *why = c->out->why;
    size_t len = sizeof(c->out->why);

    if (err == AW_NODES)
        snprintf(why, len, "%s: more than %d nodes: refusing to track more", c->out->file,
                 AUDIT_WITNESS_NODES_MAX);
    else if (err == AW_CHANGED)
        snprintf(why, len, "the local files held no record when the check began and hold some "
                           "now: run it again");
    else if (err == AW_LOCAL)
        snprintf(why, len, "%s", local->why);
    else
        snprintf(why, len, "out of memory");
}

int audit_witness_verify(const char *witness, const char *const *paths, size_t n,
                         const struct keyring *kr, struct audit_report *local,
                         struct audit_witness_report *out)
{
    struct aw_ctx c = {.kr = kr, .out = out};
    int rc;

    memset(out, 0, sizeof(*out));
    memset(local, 0, sizeof(*local));
    out->file = witness;
    if (witness == NULL || kr == NULL) {
        snprintf(out->why, sizeof(out->why), "no witness or no key to check it with");
        return -1;
    }
    if ((c.h = hmac_new(HMAC_SHA256)) == NULL)
        rc = AW_OOM;
    else if ((rc = aw__local_nodes(&c, paths, n, local)) == 0)
        rc = aw__read(&c, witness);
    if (rc >= 0) {
        int lrc = aw__local(&c, paths, n, local);

        if (lrc != 0)
            rc = lrc;
        else if (rc == 0)
            aw__judge_all(&c, local);
    }
    if (rc < 0)
        aw__failed(&c, rc, local);
    aw__free(&c);
    return rc < 0 ? -1 : 0;
}
