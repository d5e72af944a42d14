/* Verifying a chain of audit files. Files are ordered by their first record,
 * then read one at a time (memory stays bounded by the largest file): each
 * line is opened against the keyring and judged with the chain state and a
 * look at the lines after it, because what follows a bad line tells what
 * happened to it. A missing stretch between files is held as pending until
 * the end, when an "audit.purge" record may vouch for it. This file is the
 * walk itself (load, check, hand on, free, one file at a time); the parts it
 * drives are listed in audit_verify_internal.h. */
#include "quietroom/audit/audit_verify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_verify_internal.h"

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
        audit_verify__unreadable(c, f->path, strerror(errno));
        return 1;
    }
    for (uint64_t no = 1; rc == 0; no++) {
        struct av_line l = {.no = no};
        int got = audit_verify__getline(fp, b, &len, &nl);

        if (got <= 0) {
            rc = got;
            break;
        }
        l.unterminated = !nl;
        rc = audit_verify__parse(c, audit_verify__text(b), len, &l, true, NULL);
        if (rc == 0)
            rc = av__push(f, &l);
    }
    if (rc == 0 && ferror(fp)) {
        audit_verify__unreadable(c, f->path, "read error");
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

    for (; fp != NULL && rc == 0 && k < f->n && audit_verify__getline(fp, b, &len, &nl) > 0; k++) {
        struct audit_line al;

        if (!f->lines[k].accepted)
            continue;
        if (len > AV_LINE_MAX ||
            audit_record_open(audit_verify__text(b), len, c->kr, c->h, &al) != AUDIT_LINE_OK ||
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
        rc = audit_verify__check(c, fi, i);
        if (c->failed)
            audit_verify__resync(c, &f->lines[i]);
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
    if ((rc = audit_verify__collect(&c, paths, n, &b)) < 0)
        goto oom;
    for (size_t fi = 0; rc == 0 && fi < c.nfiles; fi++)
        rc = av__file(&c, fi, fn, arg, &b);
    out->files = c.nfiles;
    if (rc < 0 && out->why[0] == '\0')
        goto oom;
    if (rc == 0)
        audit_verify__report(&c);
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
