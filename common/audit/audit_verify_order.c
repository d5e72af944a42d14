/* Finding the chain order of the files given: each file's head is read
 * for the first seq that orders it (and its first line, which the chain
 * check looks ahead to), duplicates are dropped, and files without a record
 * go where their rotation stamp puts them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit_verify_internal.h"

/* Lines read at the head of a file to find the seq that orders it. */
#define AV_HEAD_SCAN 64

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
        int got = audit_verify__getline(fp, b, &len, &nl);

        if (got <= 0)
            return got;
        l.unterminated = !nl;
        if (audit_verify__parse(c, audit_verify__text(b), len, &l, false,
                                no == 1 ? &f->open_prev : NULL) != 0)
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

/* Files are given in any order: the seq at each head, not the name, says
 * where a file belongs. */
int audit_verify__collect(struct av_ctx *c, const char *const *paths, size_t n,
                          struct av_buf *b)
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
            audit_verify__unreadable(c, paths[i],
                                     fp == NULL ? strerror(errno) : "not a regular file");
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
