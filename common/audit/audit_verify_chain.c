/* Judging each line against the chain so far: a record that continues it
 * is accepted; anything else is told apart (torn by a crash, edited,
 * inserted, deleted, reordered, truncated) by looking at the lines after
 * it, reaching into the next file's first line at a file's end. */
#include <stdio.h>
#include <string.h>

#include "audit_verify_internal.h"

const char *audit_verify__range(char *buf, size_t len, uint64_t lo, uint64_t hi)
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
        audit_verify__fail(
            c, AUDIT_EDITED, fi, l,
            "no longer a JSON record, yet the next line's prev still names its mac: "
            "its content was changed");
    else if (l->st == AUDIT_LINE_NO_SEAL)
        audit_verify__fail(c, AUDIT_INSERTED, fi, l,
                           "a JSON line without a seal (seq, kid, prev, mac)");
    else if (l->unterminated && !av__chain_ends(c, fi, i))
        audit_verify__fail(c, AUDIT_TRUNCATED, fi, l,
                           "the file ends in an incomplete line, but the chain goes on after it: "
                           "bytes were cut from its end");
    else
        audit_verify__fail(c, AUDIT_TRUNCATED, fi, l,
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
        audit_verify__fail(
            c, AUDIT_EDITED, fi, l,
            "its seal fails, yet the next line's prev still names its mac: its content "
            "was changed after sealing");
    else if (n_ok && strcmp(n->prev, av__expect_prev(c)) == 0)
        audit_verify__fail(c, AUDIT_INSERTED, fi, l,
                           "its seal fails and the next line continues from the line before it: a "
                           "forged line was inserted");
    else if (av__continues(c, l))
        audit_verify__fail(c, AUDIT_EDITED, fi, l,
                           "its seal fails: its content was changed after sealing");
    else
        audit_verify__fail(c, AUDIT_INSERTED, fi, l,
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
        audit_verify__fail(c, AUDIT_GAP, fi, l,
                           "it starts a chain (prev is the genesis value) at seq %llu",
                           (unsigned long long)l->seq);
    else if (strcmp(l->prev, AUDIT_GENESIS) != 0 && l->kind != AV_OPEN && l->kind != AV_RECOVERED)
        audit_verify__fail(
            c, AUDIT_DELETED, fi, l,
            "the earliest file begins at seq %llu without audit.open: records before it "
            "were removed",
            (unsigned long long)l->seq);
    else if (strcmp(l->prev, AUDIT_GENESIS) != 0)
        rc = audit_verify__gap(
            c, fi, l, 0,
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
        audit_verify__fail(c, AUDIT_REORDERED, fi, l,
                           "this file overlaps %s: seq %llu after seq %llu", x->base,
                           (unsigned long long)l->seq, (unsigned long long)c->seq);
        return 0;
    }
    if (l->seq == c->seq + 1) {
        audit_verify__fail(
            c, AUDIT_INSERTED, fi, l,
            "its prev does not name the last record of %s: spliced from another chain", x->base);
        return 0;
    }
    if (!x->ends_close && (!y_open || av__names(y->open_prev, x))) {
        struct av_line end = {.no = x->nlines + 1};

        if (x->nlines == 0)
            audit_verify__fail(
                c, AUDIT_TRUNCATED, fi - 1, &end,
                "the file is empty, yet %s continues from it at seq %llu: %llu record(s) "
                "were removed",
                y->base, hi + 1, hi - lo + 1);
        else
            audit_verify__fail(
                c, AUDIT_TRUNCATED, fi - 1, &end,
                "the file ends at seq %llu without audit.close and %s goes on at seq "
                "%llu: %llu record(s) were cut from its end",
                lo - 1, y->base, hi + 1, hi - lo + 1);
        return 0;
    }
    audit_verify__range(r, sizeof(r), lo, hi);
    if (!y_open || av__names(y->open_prev, x)) {
        audit_verify__fail(
            c, AUDIT_DELETED, fi, l,
            "%s missing: %s ended with audit.close, but this file does not begin where it "
            "ended",
            r, x->base);
        return 0;
    }
    av__accept(c, l);
    if (y->open_prev != NULL)
        return audit_verify__gap(c, fi, l, lo,
                                 "%s missing: %s, the file before this one, was not given", r,
                                 y->open_prev);
    return audit_verify__gap(
        c, fi, l, lo, "%s missing: a file between %s and this one was not given", r, x->base);
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
        audit_verify__fail(c, AUDIT_REORDERED, fi, l, "seq %llu comes before seq %llu",
                           (unsigned long long)l->seq, want);
    else if (l->seq > want)
        audit_verify__fail(c, AUDIT_DELETED, fi, l, "%llu record(s) missing before this line (%s)",
                           (unsigned long long)l->seq - want,
                           audit_verify__range(r, sizeof(r), want, l->seq - 1));
    else if (l->seq < want && n != NULL && n->st == AUDIT_LINE_OK && n->seq == want &&
             strcmp(n->prev, c->mac) == 0)
        audit_verify__fail(
            c, AUDIT_INSERTED, fi, l,
            "a copy of an earlier record (seq %llu) was inserted: the next line continues "
            "from the line before it",
            (unsigned long long)l->seq);
    else if (l->seq < want)
        audit_verify__fail(c, AUDIT_REORDERED, fi, l, "seq %llu comes after seq %llu",
                           (unsigned long long)l->seq, want - 1);
    else
        audit_verify__fail(
            c, AUDIT_INSERTED, fi, l,
            "its prev does not name the line before it: spliced from another chain");
    return 0;
}

void audit_verify__resync(struct av_ctx *c, struct av_line *l)
{
    if (l->st == AUDIT_LINE_OK && !l->accepted && (!c->started || l->seq > c->seq))
        av__accept(c, l);
}

int audit_verify__check(struct av_ctx *c, size_t fi, size_t i)
{
    struct av_line *l = &c->files[fi].lines[i];
    enum av_remnant r;

    if (c->failed)
        return 0;
    if ((r = av__remnant(c, fi, i)) != AV_NOT_TORN) {
        if (r == AV_TORN_RESIZED)
            audit_verify__fail(
                c, AUDIT_EDITED, fi, l,
                "torn line of %zu bytes, but the audit.recovered after it says otherwise", l->len);
        else
            audit_verify__torn(c, fi, l, "torn line (%zu bytes%s) left by a crash while writing%s",
                               l->len, l->unterminated ? ", no newline" : "",
                               av__chain_ends(c, fi, i) ? "" : "; the writer recovered after it");
        return 0;
    }
    switch (l->st) {
    case AUDIT_LINE_NOT_JSON:
    case AUDIT_LINE_NO_SEAL:
        av__unsealed(c, fi, i);
        return 0;
    case AUDIT_LINE_UNKNOWN_KEY:
        audit_verify__fail(c, AUDIT_UNKNOWN_KEY, fi, l,
                           "sealed under key id %d, which the key file lacks", l->kid);
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
        audit_verify__torn(c, fi, l,
                           "the last line has no newline: cut by a crash while writing (the "
                           "record itself verifies)");
    return 0;
}
