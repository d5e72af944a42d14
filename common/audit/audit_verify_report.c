/* Problems and the verdict: the first failure, the first torn line, the
 * gaps held until the end (when purge records may vouch for them), and the
 * choice of the one problem the report names. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_verify_internal.h"

void audit_verify__unreadable(struct av_ctx *c, const char *path, const char *what)
{
    struct audit_report *out = c->out;

    out->problem = AUDIT_UNREADABLE;
    out->file = path;
    out->line = 0;
    snprintf(out->why, sizeof(out->why), "%s", what);
}

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

/* Only the first failure is kept: after it the chain state is a guess, so
 * later problems would mostly be echoes of the first. */
void audit_verify__fail(struct av_ctx *c, enum audit_problem p, size_t fi,
                        const struct av_line *l, const char *fmt, ...)
{
    va_list ap;

    if (c->failed)
        return;
    va_start(ap, fmt);
    av__event(c, &c->fail, p, fi, l, fmt, ap);
    va_end(ap);
    c->failed = true;
}

void audit_verify__torn(struct av_ctx *c, size_t fi, const struct av_line *l, const char *fmt,
                        ...)
{
    va_list ap;

    if (c->out->torn++ > 0)
        return;
    va_start(ap, fmt);
    av__event(c, &c->torn, AUDIT_TORN, fi, l, fmt, ap);
    va_end(ap);
}

/* Held, not failed at once: the purge record that vouches for a stretch
 * may come in a later file. */
int audit_verify__gap(struct av_ctx *c, size_t fi, const struct av_line *l, uint64_t lo,
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

void audit_verify__report(struct av_ctx *c)
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
