/* Internals of the audit writer shared by audit.c (queue and thread) and
 * audit_file.c (the files: continuing a chain, rotation, retention). */
#ifndef QUIETROOM_AUDIT_INTERNAL_H
#define QUIETROOM_AUDIT_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "quietroom/audit/audit_record.h"
#include "quietroom/base/hmac.h"
#include "quietroom/base/keyring.h"

/* Rotated files are PATH.YYYYMMDDTHHMMSSZ. */
#define AUDIT_STAMP_LEN 16

/* The file being written and where its chain stands. Writer thread only. */
struct audit_file {
    char path[PATH_MAX];
    char dir[PATH_MAX];
    char base[NAME_MAX + 1];
    int fd;
    ino_t ino;                    /* of fd: a rotation gives PATH a new one */
    uint64_t size;
    int day;                      /* UTC yyyymmdd when opened: rotation is daily */
    uint64_t seq;                 /* of the last sealed record, 0 if none */
    char prev[AUDIT_MAC_B64];     /* its MAC, or AUDIT_GENESIS */
    struct keyring keys;
    struct hmac *h;
    const char *node;
    bool hash_addresses;
};

/* A buffer of sealed lines waiting for one write, and where the chain
 * stood before its first line (to step back if the write fails). */
struct audit_buf {
    char *data;
    size_t len, cap;
    uint64_t start_seq;
    char start_prev[AUDIT_MAC_B64];
};

/* Opens path for appending, mode 0600, under an exclusive lock (refused,
 * naming the holder, if another process has it), then finds the last
 * sealed record in it (or, if it has none, in its newest rotated file). Sets *torn to
 * the length of a torn last line (0 if none) and previous to the rotated
 * file continued from (empty if none). Returns 0 or -1 with err. */
int audit_file_open(struct audit_file *f, size_t *torn, char *previous, size_t plen, char *err,
                    size_t errlen);

/* Adds "time" (if absent) and "node", hashes addresses if configured, seals
 * ev (consumed) after the last record and appends the line to b. */
int audit_file_seal(struct audit_file *f, json_t *ev, struct audit_buf *b);

/* Writes b and makes it durable (fdatasync). Returns 0, or -1 (errno set)
 * with the file cut back and the chain stepped back to before b. */
int audit_file_commit(struct audit_file *f, struct audit_buf *b);

/* The name (without directory) the active file gets when rotated now;
 * false if a file of that name already exists. */
bool audit_file_rotation_name(const struct audit_file *f, char *name, size_t len);

/* Gives the active file the name `rotated` (in the same directory) and puts
 * a fresh, locked file at PATH, with no moment when PATH is missing or
 * unlocked. The caller seals audit.close before and audit.open
 * after. Returns 0 or -1 with err. */
int audit_file_rotate(struct audit_file *f, const char *rotated, char *err, size_t errlen);

/* Deletes rotated files older than days and appends an "audit.purge"
 * record for each to b. Returns how many were purged. */
int audit_file_purge(struct audit_file *f, uint32_t days, uint64_t now_s, struct audit_buf *b);

/* True if the active file should rotate now (size or UTC date). */
bool audit_file_due(const struct audit_file *f, uint64_t rotate_bytes, uint64_t now_s);

void audit_file_close(struct audit_file *f);

/* UTC date as yyyymmdd. */
int audit_utc_day(uint64_t unix_s);

#endif
