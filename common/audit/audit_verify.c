/* Verifying a chain of audit files. Files are ordered by their first record,
 * then read one at a time (memory stays bounded by the largest file): each
 * line is opened against the keyring and judged with the chain state and a
 * look at the lines after it, because what follows a bad line tells what
 * happened to it. A missing stretch between files is held as pending until
 * the end, when an "audit.purge" record may vouch for it. */
#include "quietroom/audit/audit_verify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "quietroom/audit/audit_record.h"
#include "quietroom/base/hmac.h"

/* Longer lines are never records; they are measured, not parsed. */
#define AV_LINE_MAX (1024 * 1024)
/* Lines read at the head of a file to find the seq that orders it. */
#define AV_HEAD_SCAN 64
#define AV_STAMP_LEN 16 /* "YYYYMMDDTHHMMSSZ" */
#define AV_MAC_MEMBER ",\"mac\":\""

enum av_kind { AV_EVENT, AV_OPEN, AV_CLOSE, AV_RECOVERED, AV_PURGE };

/* What one line says, without its text. */
struct av_line {
    uint64_t no;                 /* 1-based */
    uint64_t seq;                /* claimed; 0 if unreadable */
    uint64_t torn_bytes;         /* of an audit.recovered */
    size_t len;                  /* without the '\n' */
    enum audit_line_status st;
    int kid;
    enum av_kind kind;
    bool unterminated;           /* no '\n' after it */
    bool fragment;               /* not JSON, but could be the start of a record */
    bool tail_mac;               /* not JSON, yet its mac member survived */
    bool accepted;
    char prev[AUDIT_MAC_B64];
    char mac[AUDIT_MAC_B64];
};

struct av_file {
    const char *path;            /* the caller's */
    const char *base;            /* points into path */
    dev_t dev;
    ino_t ino;
    uint64_t order_seq;          /* first seq found at its head; UINT64_MAX if none */
    char stamp[AV_STAMP_LEN + 1];/* rotation stamp; "" for the active file */
    char *open_prev;             /* previous_file of a leading audit.open; owned */
    bool has_head;
    struct av_line head;         /* its first line, for look-ahead across files */
    /* Set once the file is checked: */
    uint64_t nlines;
    bool ends_close;             /* its last sealed record is audit.close */
    /* While it is checked (owned): */
    struct av_line *lines;
    size_t n, cap;
};

struct av_event {
    enum audit_problem p;
    size_t fi;
    uint64_t line, seq, ord;
    int kid;
    bool bad_mac;
    char why[AUDIT_REPORT_WHY];
};

/* A stretch of seqs missing at the start or between files. */
struct av_gap {
    struct av_event ev;
    uint64_t lo, hi;             /* lo 0: unknown (the chain's beginning) */
    char prev[AUDIT_MAC_B64];    /* of the record after the stretch */
};

struct av_purge {
    uint64_t first, last;
    char last_mac[AUDIT_MAC_B64];
};

struct av_ctx {
    const struct keyring *kr;
    struct hmac *h;
    struct av_file *files;       /* owned, chain order */
    size_t nfiles;
    /* The chain so far: */
    bool started;
    uint64_t seq;
    char mac[AUDIT_MAC_B64];
    enum av_kind last_kind;
    /* Verdict: */
    uint64_t ord;
    bool failed;
    struct av_event fail;
    struct av_event torn;
    struct av_gap *gaps;         /* owned */
    size_t ngaps;
    struct av_purge *purges;     /* owned */
    size_t npurges, cap_purges;
    uint64_t ok_lines, bad_mac_lines;
    struct av_event first_bad_mac;
    uint32_t kid_ok[256], kid_bad[256];
    struct audit_report *out;
};

struct av_buf {
    char *data;                  /* owned */
    size_t cap;
};

static const char *const av_codes[] = {
    [AUDIT_OK] = "ok",
    [AUDIT_TORN] = "torn",
    [AUDIT_EDITED] = "edited",
    [AUDIT_DELETED] = "deleted",
    [AUDIT_REORDERED] = "reordered",
    [AUDIT_INSERTED] = "inserted",
    [AUDIT_TRUNCATED] = "truncated",
    [AUDIT_WRONG_KEY] = "wrong_key",
    [AUDIT_UNKNOWN_KEY] = "unknown_key",
    [AUDIT_GAP] = "gap",
    [AUDIT_UNREADABLE] = "unreadable",
};

const char *audit_problem_code(enum audit_problem p)
{
    if ((size_t)p >= sizeof(av_codes) / sizeof(av_codes[0]) || av_codes[p] == NULL)
        return "unknown";
    return av_codes[p];
}

bool audit_problem_is_failure(enum audit_problem p)
{
    return p != AUDIT_OK && p != AUDIT_TORN;
}

/* --- reading lines -------------------------------------------------------------- */

/* Reads one line into b (NUL-terminated; text beyond AV_LINE_MAX is dropped
 * but counted in *len). Returns 1, 0 at end of file, -1 out of memory. */
static int av__getline(FILE *fp, struct av_buf *b, size_t *len, bool *nl)
{
    size_t n = 0;
    int ch;

    *nl = false;
    while ((ch = getc_unlocked(fp)) != EOF) {
        if (ch == '\n') {
            *nl = true;
            break;
        }
        if (n < AV_LINE_MAX) {
            if (n + 2 > b->cap) {
                size_t cap = b->cap ? b->cap * 2 : 4096;
                char *data = realloc(b->data, cap);

                if (data == NULL)
                    return -1;
                b->data = data;
                b->cap = cap;
            }
            b->data[n] = (char)ch;
        }
        n++;
    }
    if (n == 0 && !*nl)
        return 0;
    if (b->data != NULL)
        b->data[n < AV_LINE_MAX ? n : AV_LINE_MAX] = '\0';
    *len = n;
    return 1;
}

/* The text of the line just read ("" for an empty first line). */
static const char *av__text(const struct av_buf *b)
{
    return b->data != NULL ? b->data : "";
}

static bool av__b64char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '+' || ch == '/' || ch == '=';
}

/* A line that is no longer JSON may still end in its original mac member:
 * then the damage is an edit, not a crash (a crash cuts the end off). */
static bool av__tail_mac(const char *text, size_t len, char *mac)
{
    size_t m = strlen(AV_MAC_MEMBER), need = m + AUDIT_MAC_B64 - 1 + 2;
    const char *tail;

    if (len < need || len > AV_LINE_MAX || text[len - 2] != '"' || text[len - 1] != '}')
        return false;
    tail = text + len - need;
    if (memcmp(tail, AV_MAC_MEMBER, m) != 0)
        return false;
    for (size_t i = 0; i < AUDIT_MAC_B64 - 1; i++) {
        if (!av__b64char(tail[m + i]))
            return false;
    }
    memcpy(mac, tail + m, AUDIT_MAC_B64 - 1);
    mac[AUDIT_MAC_B64 - 1] = '\0';
    return true;
}

/* --- is it the start of a sealed line? ----------------------------------------
 * A crash cuts a line short; damage (or an edit) puts a byte where a line
 * allows none. This reads text as the beginning of one JSON object whose
 * last member is the seal, "mac":"<44 base64 characters>", and says whether
 * it could go on to become one. */

enum av_js {
    JS_VALUE,      /* a value is due */
    JS_VALUE_OR_END, /* after '[' */
    JS_KEY_OR_END, /* after '{' */
    JS_KEY,        /* after ',' in an object */
    JS_COLON,
    JS_NEXT,       /* after a value: ',' or the closing bracket */
    JS_STRING,
    JS_ESCAPE,
    JS_HEX,
    JS_LITERAL,
    JS_NUMBER,
    JS_DONE,
};

#define AV_JS_DEPTH 32

struct av_jsp {
    enum av_js st;
    char stack[AV_JS_DEPTH];     /* '{' or '[' */
    int depth;
    bool key;                    /* the string being read is a key */
    char keytext[4];             /* the first bytes of a top-level key */
    int keylen;
    bool mac_key;                /* the top-level key just read is "mac" */
    bool in_mac;                 /* reading the seal's value */
    int mac_len;
    bool sealed;                 /* the seal is complete: only '}' may follow */
    int hex;                     /* \u digits still due */
    const char *lit;             /* the rest of "true", "false" or "null" */
    char num;                    /* the number's state, see av__num_step */
};

/* Accepts the next character of a number if the grammar allows it: the
 * state is the last class seen ('-', '0' leading zero, '1' digits, '.',
 * 'f' fraction digits, 'e', 's' exponent sign, 'x' exponent digits). */
static bool av__num_step(char *last, char ch)
{
    bool digit = ch >= '0' && ch <= '9';
    char was = *last, next = 0;

    if (was == '-')
        next = ch == '0' ? '0' : digit ? '1' : 0;
    else if (was == '0')
        next = ch == '.' ? '.' : (ch == 'e' || ch == 'E') ? 'e' : 0;
    else if (was == '1')
        next = digit ? '1' : ch == '.' ? '.' : (ch == 'e' || ch == 'E') ? 'e' : 0;
    else if (was == '.')
        next = digit ? 'f' : 0;
    else if (was == 'f')
        next = digit ? 'f' : (ch == 'e' || ch == 'E') ? 'e' : 0;
    else if (was == 'e')
        next = digit ? 'x' : (ch == '+' || ch == '-') ? 's' : 0;
    else if (was == 's' || was == 'x')
        next = digit ? 'x' : 0;
    *last = next ? next : was;
    return next != 0;
}

static bool av__num_complete(char last)
{
    return last == '0' || last == '1' || last == 'f' || last == 'x';
}

/* A value ended: what may follow depends on the bracket it is in. */
static void av__js_value_done(struct av_jsp *p)
{
    p->st = p->depth == 0 ? JS_DONE : JS_NEXT;
}

static bool av__js_value(struct av_jsp *p, char ch)
{
    static const char *const lits[] = {"true", "false", "null"};

    if (p->mac_key && ch != '"')
        return false;
    if (ch == '{' || ch == '[') {
        if (p->depth == AV_JS_DEPTH)
            return false;
        p->stack[p->depth++] = ch;
        p->st = ch == '{' ? JS_KEY_OR_END : JS_VALUE_OR_END;
        return true;
    }
    if (ch == '"') {
        p->st = JS_STRING;
        p->key = false;
        p->in_mac = p->mac_key;
        p->mac_len = 0;
        return true;
    }
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        p->num = ch == '-' ? '-' : ch == '0' ? '0' : '1';
        p->st = JS_NUMBER;
        return true;
    }
    for (size_t i = 0; i < 3; i++) {
        if (ch == lits[i][0]) {
            p->lit = lits[i] + 1;
            p->st = JS_LITERAL;
            return true;
        }
    }
    return false;
}

static bool av__js_close(struct av_jsp *p, char ch)
{
    char open = ch == '}' ? '{' : '[';

    if (p->depth == 0 || p->stack[p->depth - 1] != open)
        return false;
    p->depth--;
    av__js_value_done(p);
    return true;
}

/* The seal's value: base64 only, exactly AUDIT_MAC_B64 - 1 characters. */
static bool av__js_in_mac(struct av_jsp *p, char ch)
{
    if (ch != '"')
        return av__b64char(ch) && ++p->mac_len < AUDIT_MAC_B64;
    if (p->mac_len != AUDIT_MAC_B64 - 1)
        return false;
    p->in_mac = p->mac_key = false;
    p->sealed = true;
    av__js_value_done(p);
    return true;
}

static bool av__js_in_string(struct av_jsp *p, char ch)
{
    if (p->in_mac)
        return av__js_in_mac(p, ch);
    if (p->st == JS_ESCAPE) {
        if (ch == 'u') {
            p->hex = 4;
            p->st = JS_HEX;
            return true;
        }
        p->st = JS_STRING;
        return strchr("\"\\/bfnrt", ch) != NULL && ch != '\0';
    }
    if (p->st == JS_HEX) {
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
            return false;
        if (--p->hex == 0)
            p->st = JS_STRING;
        return true;
    }
    if (ch == '\\') {
        p->st = JS_ESCAPE;
        p->keylen = (int)sizeof(p->keytext); /* an escaped key is never "mac" */
        return true;
    }
    if (ch == '"') {
        if (p->key) {
            p->st = JS_COLON;
            p->mac_key = p->depth == 1 && p->keylen == 3 && memcmp(p->keytext, "mac", 3) == 0;
        } else {
            av__js_value_done(p);
        }
        return true;
    }
    if (p->key && p->keylen < (int)sizeof(p->keytext))
        p->keytext[p->keylen++] = ch;
    return (unsigned char)ch >= 0x20;
}

static bool av__js_step(struct av_jsp *p, char ch)
{
    bool ws = ch == ' ' || ch == '\t' || ch == '\r';

    switch (p->st) {
    case JS_STRING:
    case JS_ESCAPE:
    case JS_HEX:
        return av__js_in_string(p, ch);
    case JS_LITERAL:
        if (*p->lit != ch)
            return false;
        if (*++p->lit == '\0')
            av__js_value_done(p);
        return true;
    case JS_NUMBER:
        if (av__num_step(&p->num, ch))
            return true;
        if (!av__num_complete(p->num))
            return false;
        av__js_value_done(p);
        return av__js_step(p, ch);
    case JS_VALUE_OR_END:
        if (ch == ']')
            return av__js_close(p, ch);
        /* fall through */
    case JS_VALUE:
        return ws || av__js_value(p, ch);
    case JS_KEY_OR_END:
        if (ch == '}')
            return av__js_close(p, ch);
        /* fall through */
    case JS_KEY:
        if (ch == '"') {
            p->st = JS_STRING;
            p->key = true;
            p->keylen = 0;
            return true;
        }
        return ws;
    case JS_COLON:
        if (ch == ':')
            p->st = JS_VALUE;
        return ws || ch == ':';
    case JS_NEXT:
        if (p->sealed && ch != '}')
            return false;
        if (ch == ',') {
            p->st = p->stack[p->depth - 1] == '{' ? JS_KEY : JS_VALUE;
            return true;
        }
        if (ch == '}' || ch == ']')
            return av__js_close(p, ch);
        return ws;
    case JS_DONE:
        break;
    }
    return false;
}

/* True if text could be the first len bytes of a sealed line, short of
 * the whole: what a crash leaves of a line. */
static bool av__fragment(const char *text, size_t len)
{
    struct av_jsp p = {.st = JS_VALUE};

    if (len == 0 || len > AV_LINE_MAX || text[0] != '{')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!av__js_step(&p, text[i]))
            return false;
    }
    return p.st != JS_DONE;
}

static enum av_kind av__kind(const char *type)
{
    static const struct {
        const char *type;
        enum av_kind kind;
    } kinds[] = {
        {"audit.open", AV_OPEN},
        {"audit.close", AV_CLOSE},
        {"audit.recovered", AV_RECOVERED},
        {"audit.purge", AV_PURGE},
    };

    for (size_t i = 0; type != NULL && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(type, kinds[i].type) == 0)
            return kinds[i].kind;
    }
    return AV_EVENT;
}

static uint64_t av__u64(const json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);

    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

/* Remembers what a sealed audit.purge vouches for. */
static int av__add_purge(struct av_ctx *c, const json_t *obj)
{
    const char *mac = json_string_value(json_object_get(obj, "last_mac"));
    struct av_purge p = {.first = av__u64(obj, "first_seq"), .last = av__u64(obj, "last_seq")};

    if (mac == NULL || strlen(mac) != AUDIT_MAC_B64 - 1 || p.first == 0 || p.last < p.first)
        return 0;
    memcpy(p.last_mac, mac, AUDIT_MAC_B64);
    if (c->npurges == c->cap_purges) {
        size_t cap = c->cap_purges ? c->cap_purges * 2 : 8;
        struct av_purge *np = realloc(c->purges, cap * sizeof(*np));

        if (np == NULL)
            return -1;
        c->purges = np;
        c->cap_purges = cap;
    }
    c->purges[c->npurges++] = p;
    return 0;
}

/* The base name of a previous_file value (the writer records base names;
 * a path is accepted too). */
static char *av__dup_base(const char *name)
{
    const char *slash = name ? strrchr(name, '/') : NULL;

    return name == NULL ? NULL : strdup(slash ? slash + 1 : name);
}

/* Judges one line's text. With collect, sealed purge records are kept and
 * per-key counts taken (the main pass); open_prev (if given) gets the
 * previous_file of an audit.open. Returns -1 only when out of memory. */
static int av__parse(struct av_ctx *c, const char *text, size_t len, struct av_line *l,
                     bool collect, char **open_prev)
{
    struct audit_line al = {.kid = -1};
    int rc = 0;

    if (len <= AV_LINE_MAX)
        l->st = audit_record_open(text, len, c->kr, c->h, &al);
    else
        l->st = AUDIT_LINE_NOT_JSON;
    l->len = len;
    l->kid = al.kid;
    if (al.obj != NULL) {
        l->seq = al.seq;
        memcpy(l->prev, al.prev, AUDIT_MAC_B64);
        memcpy(l->mac, al.mac, AUDIT_MAC_B64);
        l->kind = av__kind(al.type);
        l->torn_bytes = av__u64(al.obj, "torn_bytes");
        if (collect && l->st == AUDIT_LINE_OK && l->kind == AV_PURGE)
            rc = av__add_purge(c, al.obj);
        if (open_prev != NULL && l->kind == AV_OPEN)
            *open_prev = av__dup_base(json_string_value(json_object_get(al.obj,
                                                                        "previous_file")));
    } else if (l->st == AUDIT_LINE_NOT_JSON) {
        l->tail_mac = av__tail_mac(text, len, l->mac);
        l->fragment = av__fragment(text, len);
    }
    if (collect && l->st == AUDIT_LINE_OK) {
        c->ok_lines++;
        c->kid_ok[(uint8_t)l->kid]++;
    } else if (collect && l->st == AUDIT_LINE_BAD_MAC) {
        c->bad_mac_lines++;
        c->kid_bad[(uint8_t)l->kid]++;
    }
    audit_line_free(&al);
    return rc;
}

/* --- ordering the files --------------------------------------------------------- */

/* "PATH.YYYYMMDDTHHMMSSZ" gives its stamp; the active file has none. */
static void av__stamp(struct av_file *f)
{
    const char *dot = strrchr(f->base, '.');

    f->stamp[0] = '\0';
    if (dot != NULL && strlen(dot + 1) == AV_STAMP_LEN && dot[9] == 'T' &&
        dot[AV_STAMP_LEN] == 'Z')
        memcpy(f->stamp, dot + 1, AV_STAMP_LEN + 1);
}

/* Reads a file's head: its first line and the first seq that orders it. */
static int av__probe(struct av_ctx *c, struct av_file *f, FILE *fp, struct av_buf *b)
{
    uint64_t any_seq = 0;
    size_t len;
    bool nl;

    f->order_seq = UINT64_MAX;
    for (uint64_t no = 1; no <= AV_HEAD_SCAN; no++) {
        struct av_line l = {.no = no};
        int got = av__getline(fp, b, &len, &nl);

        if (got <= 0)
            return got;
        l.unterminated = !nl;
        if (av__parse(c, av__text(b), len, &l, false, no == 1 ? &f->open_prev : NULL) != 0)
            return -1;
        if (no == 1) {
            f->head = l;
            f->has_head = true;
        }
        if (l.seq > 0 && any_seq == 0)
            any_seq = l.seq;
        if (l.st == AUDIT_LINE_OK) {
            f->order_seq = l.seq;
            return 0;
        }
    }
    if (any_seq > 0)
        f->order_seq = any_seq;
    return 0;
}

static int av__by_seq(const void *a, const void *b)
{
    const struct av_file *x = a, *y = b;

    if (x->order_seq != y->order_seq)
        return x->order_seq < y->order_seq ? -1 : 1;
    /* Same (or no) seq: rotated files by stamp, the active file last. */
    if ((x->stamp[0] == '\0') != (y->stamp[0] == '\0'))
        return x->stamp[0] == '\0' ? 1 : -1;
    return strcmp(x->stamp, y->stamp) != 0 ? strcmp(x->stamp, y->stamp)
                                           : strcmp(x->path, y->path);
}

/* A file with no record to order it by (empty, or garbage only) goes where
 * its name puts it: before the first file with a later stamp. */
static void av__place_unordered(struct av_ctx *c)
{
    size_t ordered = 0;

    while (ordered < c->nfiles && c->files[ordered].order_seq != UINT64_MAX)
        ordered++;
    for (size_t i = ordered; i < c->nfiles; i++) {
        struct av_file f = c->files[i];
        size_t at = 0;

        if (f.stamp[0] == '\0')
            continue;
        while (at < i && (c->files[at].stamp[0] != '\0' &&
                          strcmp(c->files[at].stamp, f.stamp) < 0))
            at++;
        memmove(&c->files[at + 1], &c->files[at], (i - at) * sizeof(f));
        c->files[at] = f;
    }
}

static void av__unreadable(struct av_ctx *c, const char *path, const char *what)
{
    struct audit_report *out = c->out;

    out->problem = AUDIT_UNREADABLE;
    out->file = path;
    out->line = 0;
    snprintf(out->why, sizeof(out->why), "%s", what);
}

/* Opens every path, drops duplicates (the same file twice), reads heads
 * and orders them. Returns 1 when a file is unreadable (verdict set). */
static int av__collect(struct av_ctx *c, const char *const *paths, size_t n, struct av_buf *b)
{
    if ((c->files = calloc(n, sizeof(*c->files))) == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct av_file *f = &c->files[c->nfiles];
        FILE *fp = fopen(paths[i], "r");
        struct stat st;
        bool dup = false;
        int rc;

        if (fp == NULL || fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
            av__unreadable(c, paths[i], fp == NULL ? strerror(errno) : "not a regular file");
            if (fp != NULL)
                fclose(fp);
            return 1;
        }
        for (size_t j = 0; j < c->nfiles; j++)
            dup = dup || (c->files[j].dev == st.st_dev && c->files[j].ino == st.st_ino);
        if (dup) {
            fclose(fp);
            continue;
        }
        f->path = paths[i];
        f->base = strrchr(paths[i], '/') ? strrchr(paths[i], '/') + 1 : paths[i];
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        av__stamp(f);
        rc = av__probe(c, f, fp, b);
        fclose(fp);
        c->nfiles++;
        if (rc != 0)
            return -1;
    }
    qsort(c->files, c->nfiles, sizeof(*c->files), av__by_seq);
    av__place_unordered(c);
    return 0;
}

/* --- the verdict ---------------------------------------------------------------- */

static void av__event(struct av_ctx *c, struct av_event *ev, enum audit_problem p, size_t fi,
                      const struct av_line *l, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

static void av__event(struct av_ctx *c, struct av_event *ev, enum audit_problem p, size_t fi,
                      const struct av_line *l, const char *fmt, va_list ap)
{
    ev->p = p;
    ev->fi = fi;
    ev->line = l ? l->no : 0;
    ev->seq = l ? l->seq : 0;
    ev->kid = l ? l->kid : -1;
    ev->bad_mac = l && l->st == AUDIT_LINE_BAD_MAC;
    ev->ord = ++c->ord;
    vsnprintf(ev->why, sizeof(ev->why), fmt, ap);
}

static void av__fail(struct av_ctx *c, enum audit_problem p, size_t fi, const struct av_line *l,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Records the first failure; the walk goes on in resync mode. */
static void av__fail(struct av_ctx *c, enum audit_problem p, size_t fi, const struct av_line *l,
                     const char *fmt, ...)
{
    va_list ap;

    if (c->failed)
        return;
    va_start(ap, fmt);
    av__event(c, &c->fail, p, fi, l, fmt, ap);
    va_end(ap);
    c->failed = true;
}

static void av__torn(struct av_ctx *c, size_t fi, const struct av_line *l, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void av__torn(struct av_ctx *c, size_t fi, const struct av_line *l, const char *fmt, ...)
{
    va_list ap;

    if (c->out->torn++ > 0)
        return;
    va_start(ap, fmt);
    av__event(c, &c->torn, AUDIT_TORN, fi, l, fmt, ap);
    va_end(ap);
}

static int av__gap(struct av_ctx *c, size_t fi, const struct av_line *l, uint64_t lo,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A missing stretch ending just before l: a failure unless a purge record
 * vouches for it by the end. */
static int av__gap(struct av_ctx *c, size_t fi, const struct av_line *l, uint64_t lo,
                   const char *fmt, ...)
{
    struct av_gap *g = realloc(c->gaps, (c->ngaps + 1) * sizeof(*g));
    va_list ap;

    if (g == NULL)
        return -1;
    c->gaps = g;
    g = &c->gaps[c->ngaps++];
    va_start(ap, fmt);
    av__event(c, &g->ev, AUDIT_GAP, fi, l, fmt, ap);
    va_end(ap);
    g->lo = lo;
    g->hi = l->seq - 1;
    memcpy(g->prev, l->prev, AUDIT_MAC_B64);
    return 0;
}

static const struct av_purge *av__purge_ending(const struct av_ctx *c, uint64_t last,
                                               const char *mac)
{
    for (size_t i = 0; i < c->npurges; i++) {
        if (c->purges[i].last == last && (mac == NULL || strcmp(c->purges[i].last_mac, mac) == 0))
            return &c->purges[i];
    }
    return NULL;
}

/* True if purge records cover exactly seqs lo..hi, the last one ending in
 * the mac the record after the stretch names as prev. */
static bool av__vouched(const struct av_ctx *c, const struct av_gap *g)
{
    const struct av_purge *p = av__purge_ending(c, g->hi, g->prev);

    for (size_t steps = 0; p != NULL && steps <= c->npurges; steps++) {
        if (g->lo == 0 || p->first == g->lo)
            return true;
        if (p->first < g->lo)
            return false;
        p = av__purge_ending(c, p->first - 1, NULL);
    }
    return false;
}

/* The first problem: an unvouched gap or the first failure, whichever came
 * first. A failing seal is the wrong key when no line verifies at all, or
 * when nothing sealed under its key id does. */
static struct av_event *av__first(struct av_ctx *c)
{
    struct av_event *first = c->failed ? &c->fail : NULL;

    for (size_t i = 0; i < c->ngaps; i++) {
        if (!av__vouched(c, &c->gaps[i])) {
            if (first == NULL || c->gaps[i].ev.ord < first->ord)
                first = &c->gaps[i].ev;
            break;
        }
    }
    if (c->ok_lines == 0 && c->bad_mac_lines > 0 &&
        (first == NULL || first->p != AUDIT_UNKNOWN_KEY)) {
        first = &c->first_bad_mac;
        snprintf(first->why, sizeof(first->why),
                 "no line verifies: the log was sealed with another key than key id %d of the "
                 "key file",
                 first->kid);
    } else if (first != NULL && first->bad_mac && c->kid_ok[(uint8_t)first->kid] == 0 &&
               c->kid_bad[(uint8_t)first->kid] >= 2) {
        first->p = AUDIT_WRONG_KEY;
        snprintf(first->why, sizeof(first->why),
                 "no line sealed under key id %d verifies: the key file holds another key for "
                 "that id",
                 first->kid);
    }
    return first;
}

static void av__report(struct av_ctx *c)
{
    struct audit_report *out = c->out;
    const struct av_event *ev = av__first(c);

    if (ev == NULL && out->torn > 0)
        ev = &c->torn;
    out->clean = c->started && c->last_kind == AV_CLOSE;
    if (ev == NULL)
        return;
    out->problem = ev->p;
    out->file = c->files[ev->fi].path;
    out->line = ev->line;
    out->seq = ev->seq;
    snprintf(out->why, sizeof(out->why), "%s", ev->why);
}

/* --- the chain ------------------------------------------------------------------- */

/* "seq 7" or "seq 7-9". */
static const char *av__range(char *buf, size_t len, uint64_t lo, uint64_t hi)
{
    if (lo == hi)
        snprintf(buf, len, "seq %llu", (unsigned long long)lo);
    else
        snprintf(buf, len, "seq %llu-%llu", (unsigned long long)lo, (unsigned long long)hi);
    return buf;
}

static const char *av__expect_prev(const struct av_ctx *c)
{
    return c->started ? c->mac : AUDIT_GENESIS;
}

/* True if l is the record that comes next. */
static bool av__continues(const struct av_ctx *c, const struct av_line *l)
{
    if (!c->started)
        return l->seq == 1 && strcmp(l->prev, AUDIT_GENESIS) == 0;
    return l->seq == c->seq + 1 && strcmp(l->prev, c->mac) == 0;
}

static void av__link(struct av_ctx *c, const struct av_line *l)
{
    c->started = true;
    c->seq = l->seq;
    memcpy(c->mac, l->mac, AUDIT_MAC_B64);
}

static void av__accept(struct av_ctx *c, struct av_line *l)
{
    av__link(c, l);
    l->accepted = true;
    c->last_kind = l->kind;
    if (c->out->records++ == 0)
        c->out->first_seq = l->seq;
    c->out->last_seq = l->seq;
}

/* Line j of file fi, reaching into the next file's first line; NULL past
 * what is known. */
static const struct av_line *av__at(const struct av_ctx *c, size_t fi, size_t j)
{
    const struct av_file *f = &c->files[fi];

    if (j < f->n)
        return &f->lines[j];
    for (size_t k = fi + 1; j == f->n && k < c->nfiles; k++) {
        if (c->files[k].has_head)
            return &c->files[k].head;
    }
    return NULL;
}

/* True if nothing follows line j of file fi. */
static bool av__chain_ends(const struct av_ctx *c, size_t fi, size_t j)
{
    if (j + 1 < c->files[fi].n)
        return false;
    for (size_t k = fi + 1; k < c->nfiles; k++) {
        if (c->files[k].has_head)
            return false;
    }
    return true;
}

/* The record a restarted writer goes on with: audit.recovered after a torn
 * line it found, or audit.open when it had already ended the line. */
static bool av__is_restart(const struct av_ctx *c, const struct av_line *n)
{
    if (n == NULL || n->st != AUDIT_LINE_OK || (n->kind != AV_RECOVERED && n->kind != AV_OPEN))
        return false;
    return !c->started || (n->seq == c->seq + 1 && strcmp(n->prev, c->mac) == 0);
}

enum av_remnant { AV_NOT_TORN, AV_TORN, AV_TORN_RESIZED };

/* Is line i what a crash leaves: a fragment (or a line complete but for its
 * '\n', which the writer cannot tell from one), followed by more fragments
 * and then a restart that continues the chain from before it, or by
 * nothing? */
static enum av_remnant av__remnant(const struct av_ctx *c, size_t fi, size_t i)
{
    const struct av_line *l = &c->files[fi].lines[i], *n;

    if (l->st == AUDIT_LINE_OK) {
        n = av__at(c, fi, i + 1);
        if (!av__continues(c, l) || !av__is_restart(c, n) || n->seq != l->seq)
            return AV_NOT_TORN;
        return n->kind == AV_RECOVERED && n->torn_bytes != l->len ? AV_TORN_RESIZED : AV_TORN;
    }
    if (!l->fragment)
        return AV_NOT_TORN;
    for (size_t j = i + 1;; j++) {
        if ((n = av__at(c, fi, j)) == NULL)
            return av__chain_ends(c, fi, j - 1) ? AV_TORN : AV_NOT_TORN;
        if (av__is_restart(c, n))
            return j == i + 1 && n->kind == AV_RECOVERED && n->torn_bytes != l->len
                       ? AV_TORN_RESIZED
                       : AV_TORN;
        /* Fragments may follow each other (a restart that crashed too), but
         * only the next file's first line is known beyond this file. */
        if (!n->fragment || j >= c->files[fi].n)
            return AV_NOT_TORN;
    }
}

/* A line that is not a sealed record. */
static void av__unsealed(struct av_ctx *c, size_t fi, size_t i)
{
    const struct av_line *l = &c->files[fi].lines[i], *n = av__at(c, fi, i + 1);

    if (l->tail_mac && n != NULL && n->st == AUDIT_LINE_OK && strcmp(n->prev, l->mac) == 0)
        av__fail(c, AUDIT_EDITED, fi, l,
                 "no longer a JSON record, yet the next line's prev still names its mac: "
                 "its content was changed");
    else if (l->st == AUDIT_LINE_NO_SEAL)
        av__fail(c, AUDIT_INSERTED, fi, l, "a JSON line without a seal (seq, kid, prev, mac)");
    else if (l->unterminated && !av__chain_ends(c, fi, i))
        av__fail(c, AUDIT_TRUNCATED, fi, l,
                 "the file ends in an incomplete line, but the chain goes on after it: "
                 "bytes were cut from its end");
    else
        av__fail(c, AUDIT_TRUNCATED, fi, l,
                 "not a sealed record (%zu bytes of garbage, or a torn line no restart "
                 "recovered)",
                 l->len);
}

/* A line whose seal fails: what comes next tells an edit from a forgery. */
static void av__bad_mac(struct av_ctx *c, size_t fi, size_t i)
{
    const struct av_line *l = &c->files[fi].lines[i], *n = av__at(c, fi, i + 1);
    bool n_ok = n != NULL && n->st == AUDIT_LINE_OK;

    if (n_ok && strcmp(n->prev, l->mac) == 0)
        av__fail(c, AUDIT_EDITED, fi, l,
                 "its seal fails, yet the next line's prev still names its mac: its content "
                 "was changed after sealing");
    else if (n_ok && strcmp(n->prev, av__expect_prev(c)) == 0)
        av__fail(c, AUDIT_INSERTED, fi, l,
                 "its seal fails and the next line continues from the line before it: a "
                 "forged line was inserted");
    else if (av__continues(c, l))
        av__fail(c, AUDIT_EDITED, fi, l, "its seal fails: its content was changed after sealing");
    else
        av__fail(c, AUDIT_INSERTED, fi, l,
                 "its seal fails and it does not continue the chain: a forged line");
}

/* True if a sealed line with seq want comes later in the file. */
static bool av__seq_later(const struct av_file *f, size_t i, uint64_t want)
{
    for (size_t j = i + 1; j < f->n; j++) {
        if (f->lines[j].st == AUDIT_LINE_OK && f->lines[j].seq == want)
            return true;
    }
    return false;
}

/* The first record of the whole chain. */
static int av__chain_start(struct av_ctx *c, size_t fi, struct av_line *l)
{
    int rc = 0;

    if (strcmp(l->prev, AUDIT_GENESIS) == 0 && l->seq != 1)
        av__fail(c, AUDIT_GAP, fi, l, "it starts a chain (prev is the genesis value) at seq %llu",
                 (unsigned long long)l->seq);
    else if (strcmp(l->prev, AUDIT_GENESIS) != 0 && l->kind != AV_OPEN &&
             l->kind != AV_RECOVERED)
        av__fail(c, AUDIT_DELETED, fi, l,
                 "the earliest file begins at seq %llu without audit.open: records before it "
                 "were removed",
                 (unsigned long long)l->seq);
    else if (strcmp(l->prev, AUDIT_GENESIS) != 0)
        rc = av__gap(c, fi, l, 0,
                     "records before seq %llu are missing: the files before this one were not "
                     "given (or were deleted without an audit.purge record)",
                     (unsigned long long)l->seq);
    av__accept(c, l);
    return rc;
}

static bool av__names(const char *previous, const struct av_file *f)
{
    return previous != NULL && strcmp(previous, f->base) == 0;
}

/* The first line of file fi does not continue the last record of the file
 * before it. Whole records are missing between them or the files overlap. */
static int av__boundary(struct av_ctx *c, size_t fi, struct av_line *l)
{
    const struct av_file *x = &c->files[fi - 1], *y = &c->files[fi];
    unsigned long long lo = c->seq + 1, hi = l->seq - 1;
    bool y_open = l->kind == AV_OPEN;
    char r[48];

    if (l->seq <= c->seq) {
        av__fail(c, AUDIT_REORDERED, fi, l, "this file overlaps %s: seq %llu after seq %llu",
                 x->base, (unsigned long long)l->seq, (unsigned long long)c->seq);
        return 0;
    }
    if (l->seq == c->seq + 1) {
        av__fail(c, AUDIT_INSERTED, fi, l,
                 "its prev does not name the last record of %s: spliced from another chain",
                 x->base);
        return 0;
    }
    if (!x->ends_close && (!y_open || av__names(y->open_prev, x))) {
        struct av_line end = {.no = x->nlines + 1};

        if (x->nlines == 0)
            av__fail(c, AUDIT_TRUNCATED, fi - 1, &end,
                     "the file is empty, yet %s continues from it at seq %llu: %llu record(s) "
                     "were removed",
                     y->base, hi + 1, hi - lo + 1);
        else
            av__fail(c, AUDIT_TRUNCATED, fi - 1, &end,
                     "the file ends at seq %llu without audit.close and %s goes on at seq "
                     "%llu: %llu record(s) were cut from its end",
                     lo - 1, y->base, hi + 1, hi - lo + 1);
        return 0;
    }
    av__range(r, sizeof(r), lo, hi);
    if (!y_open || av__names(y->open_prev, x)) {
        av__fail(c, AUDIT_DELETED, fi, l,
                 "%s missing: %s ended with audit.close, but this file does not begin where it "
                 "ended",
                 r, x->base);
        return 0;
    }
    av__accept(c, l);
    if (y->open_prev != NULL)
        return av__gap(c, fi, l, lo, "%s missing: %s, the file before this one, was not given",
                       r, y->open_prev);
    return av__gap(c, fi, l, lo, "%s missing: a file between %s and this one was not given", r,
                   x->base);
}

/* A line with a good seal that does not continue the chain. */
static int av__misplaced(struct av_ctx *c, size_t fi, size_t i)
{
    struct av_file *f = &c->files[fi];
    struct av_line *l = &f->lines[i];
    const struct av_line *n = av__at(c, fi, i + 1);
    unsigned long long want = c->seq + 1;
    char r[48];

    if (i == 0 && fi > 0)
        return av__boundary(c, fi, l);
    if (l->seq > want && av__seq_later(f, i, want))
        av__fail(c, AUDIT_REORDERED, fi, l, "seq %llu comes before seq %llu",
                 (unsigned long long)l->seq, want);
    else if (l->seq > want)
        av__fail(c, AUDIT_DELETED, fi, l, "%llu record(s) missing before this line (%s)",
                 (unsigned long long)l->seq - want, av__range(r, sizeof(r), want, l->seq - 1));
    else if (l->seq < want && n != NULL && n->st == AUDIT_LINE_OK && n->seq == want &&
             strcmp(n->prev, c->mac) == 0)
        av__fail(c, AUDIT_INSERTED, fi, l,
                 "a copy of an earlier record (seq %llu) was inserted: the next line continues "
                 "from the line before it",
                 (unsigned long long)l->seq);
    else if (l->seq < want)
        av__fail(c, AUDIT_REORDERED, fi, l, "seq %llu comes after seq %llu",
                 (unsigned long long)l->seq, want - 1);
    else
        av__fail(c, AUDIT_INSERTED, fi, l,
                 "its prev does not name the line before it: spliced from another chain");
    return 0;
}

/* After the first failure: keep every sealed record that moves forward, so
 * that a forced export still has them. */
static void av__resync(struct av_ctx *c, struct av_line *l)
{
    if (l->st == AUDIT_LINE_OK && !l->accepted && (!c->started || l->seq > c->seq))
        av__accept(c, l);
}

static int av__check(struct av_ctx *c, size_t fi, size_t i)
{
    struct av_line *l = &c->files[fi].lines[i];
    enum av_remnant r;

    if (c->failed)
        return 0;
    if ((r = av__remnant(c, fi, i)) != AV_NOT_TORN) {
        if (r == AV_TORN_RESIZED)
            av__fail(c, AUDIT_EDITED, fi, l,
                     "torn line of %zu bytes, but the audit.recovered after it says otherwise",
                     l->len);
        else
            av__torn(c, fi, l, "torn line (%zu bytes%s) left by a crash while writing%s", l->len,
                     l->unterminated ? ", no newline" : "",
                     av__chain_ends(c, fi, i) ? "" : "; the writer recovered after it");
        return 0;
    }
    switch (l->st) {
    case AUDIT_LINE_NOT_JSON:
    case AUDIT_LINE_NO_SEAL:
        av__unsealed(c, fi, i);
        return 0;
    case AUDIT_LINE_UNKNOWN_KEY:
        av__fail(c, AUDIT_UNKNOWN_KEY, fi, l, "sealed under key id %d, which the key file lacks",
                 l->kid);
        return 0;
    case AUDIT_LINE_BAD_MAC:
        av__bad_mac(c, fi, i);
        return 0;
    case AUDIT_LINE_OK:
        break;
    }
    if (!c->started)
        return av__chain_start(c, fi, l);
    if (!av__continues(c, l))
        return av__misplaced(c, fi, i);
    av__accept(c, l);
    if (l->unterminated && av__chain_ends(c, fi, i))
        av__torn(c, fi, l, "the last line has no newline: cut by a crash while writing (the "
                           "record itself verifies)");
    return 0;
}

/* --- walking the files ----------------------------------------------------------- */

static int av__push(struct av_file *f, const struct av_line *l)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 256;
        struct av_line *lines = realloc(f->lines, cap * sizeof(*lines));

        if (lines == NULL)
            return -1;
        f->lines = lines;
        f->cap = cap;
    }
    f->lines[f->n++] = *l;
    return 0;
}

static int av__load(struct av_ctx *c, struct av_file *f, struct av_buf *b)
{
    FILE *fp = fopen(f->path, "r");
    size_t len;
    bool nl;
    int rc = 0;

    if (fp == NULL) {
        av__unreadable(c, f->path, strerror(errno));
        return 1;
    }
    for (uint64_t no = 1; rc == 0; no++) {
        struct av_line l = {.no = no};
        int got = av__getline(fp, b, &len, &nl);

        if (got <= 0) {
            rc = got;
            break;
        }
        l.unterminated = !nl;
        rc = av__parse(c, av__text(b), len, &l, true, NULL);
        if (rc == 0)
            rc = av__push(f, &l);
    }
    if (rc == 0 && ferror(fp)) {
        av__unreadable(c, f->path, "read error");
        rc = 1;
    }
    fclose(fp);
    return rc;
}

/* Hands the accepted records of f to fn. The file is read again (records
 * are not kept in memory); each line must still verify and carry the mac it
 * was accepted with, or the file changed under the walk. */
static int av__deliver(struct av_ctx *c, const struct av_file *f, audit_verify_fn fn, void *arg,
                       struct av_buf *b)
{
    FILE *fp = fopen(f->path, "r");
    size_t len, k = 0;
    bool nl;
    int rc = 0;

    for (; fp != NULL && rc == 0 && k < f->n && av__getline(fp, b, &len, &nl) > 0; k++) {
        struct audit_line al;

        if (!f->lines[k].accepted)
            continue;
        if (len > AV_LINE_MAX ||
            audit_record_open(av__text(b), len, c->kr, c->h, &al) != AUDIT_LINE_OK ||
            strcmp(al.mac, f->lines[k].mac) != 0)
            rc = -1;
        else if (fn(al.obj, f->path, f->lines[k].no, arg) != 0)
            rc = -2;
        audit_line_free(&al);
    }
    if (fp != NULL)
        fclose(fp);
    if (rc == 0 && k < f->n)
        rc = -1;
    if (rc == -1)
        snprintf(c->out->why, sizeof(c->out->why), "%s changed while it was being read",
                 f->path);
    else if (rc == -2)
        snprintf(c->out->why, sizeof(c->out->why), "stopped at a record of %s", f->path);
    return rc == 0 ? 0 : -1;
}

static void av__summarise(struct av_file *f)
{
    f->nlines = f->n;
    f->ends_close = false;
    for (size_t j = f->n; j > 0; j--) {
        if (f->lines[j - 1].st == AUDIT_LINE_OK) {
            f->ends_close = f->lines[j - 1].kind == AV_CLOSE;
            break;
        }
    }
}

/* Where the first line with a failing seal is, for a wrong-key verdict. */
static void av__note_bad_mac(struct av_ctx *c, size_t fi, const struct av_line *l)
{
    if (l->st != AUDIT_LINE_BAD_MAC || c->first_bad_mac.line != 0)
        return;
    c->first_bad_mac = (struct av_event){
        .p = AUDIT_WRONG_KEY, .fi = fi, .line = l->no, .seq = l->seq, .kid = l->kid,
        .bad_mac = true,
    };
}

/* Checks file fi, then frees its lines. */
static int av__file(struct av_ctx *c, size_t fi, audit_verify_fn fn, void *arg, struct av_buf *b)
{
    struct av_file *f = &c->files[fi];
    int rc = av__load(c, f, b);

    for (size_t i = 0; rc == 0 && i < f->n; i++) {
        rc = av__check(c, fi, i);
        if (c->failed)
            av__resync(c, &f->lines[i]);
        av__note_bad_mac(c, fi, &f->lines[i]);
    }
    av__summarise(f);
    if (rc == 0 && fn != NULL)
        rc = av__deliver(c, f, fn, arg, b);
    free(f->lines);
    f->lines = NULL;
    f->n = f->cap = 0;
    return rc;
}

static void av__free(struct av_ctx *c)
{
    for (size_t i = 0; c->files != NULL && i < c->nfiles; i++) {
        free(c->files[i].open_prev);
        free(c->files[i].lines);
    }
    free(c->files);
    free(c->gaps);
    free(c->purges);
    hmac_free(c->h);
}

int audit_verify_walk(const char *const *paths, size_t n, const struct keyring *kr,
                      audit_verify_fn fn, void *arg, struct audit_report *out)
{
    struct av_ctx c = {.kr = kr, .out = out};
    struct av_buf b = {0};
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (paths == NULL || n == 0 || kr == NULL) {
        snprintf(out->why, sizeof(out->why), "no files to verify");
        return -1;
    }
    if ((c.h = hmac_new(HMAC_SHA256)) == NULL)
        goto oom;
    if ((rc = av__collect(&c, paths, n, &b)) < 0)
        goto oom;
    for (size_t fi = 0; rc == 0 && fi < c.nfiles; fi++)
        rc = av__file(&c, fi, fn, arg, &b);
    out->files = c.nfiles;
    if (rc < 0 && out->why[0] == '\0')
        goto oom;
    if (rc == 0)
        av__report(&c);
    rc = rc < 0 ? -1 : 0;
    goto out;
oom:
    snprintf(out->why, sizeof(out->why), "out of memory");
    rc = -1;
out:
    free(b.data);
    av__free(&c);
    return rc;
}

int audit_verify_files(const char *const *paths, size_t n, const struct keyring *kr,
                       struct audit_report *out)
{
    return audit_verify_walk(paths, n, kr, NULL, NULL, out);
}
