/* Reading one line of an audit file and judging its text: opened against
 * the keyring, or, when it is not a record, recognised as a crash's or an
 * edit's remains. What the line says is kept in a struct av_line; its text
 * is not. */
#include <stdlib.h>
#include <string.h>

#include "audit_verify_internal.h"

/* getc_unlocked: the file is this thread's alone, and a lock per byte
 * would dominate reading a large log. */
int audit_verify__getline(FILE *fp, struct av_buf *b, size_t *len, bool *nl)
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
const char *audit_verify__text(const struct av_buf *b)
{
    return b->data != NULL ? b->data : "";
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

/* A line that does not parse is judged by its shape: what a crash leaves
 * (a fragment) or what an edit leaves (its mac member at the end). */
int audit_verify__parse(struct av_ctx *c, const char *text, size_t len, struct av_line *l,
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
        l->tail_mac = audit_json_tail_mac(text, len, l->mac);
        l->fragment = audit_json_is_fragment(text, len);
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
