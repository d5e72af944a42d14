/* Exclusive ownership that a second copy of a daemon can see: flock(2) on
 * a file, and the holder named (pid and program) when the lock is taken.
 * The kernel drops a lock when its holder dies, so a kill -9 never leaves a
 * stale one behind. */
#ifndef QUIETROOM_LOCKFILE_H
#define QUIETROOM_LOCKFILE_H

#include <limits.h>
#include <stddef.h>

#include "quietroom/base/config.h"
#include "quietroom/base/limits.h"
#include "quietroom/base/netaddr.h"

/* The address locks a daemon holds for its lifetime. */
struct lockfile_set {
    int fd[QR_LOCKS_MAX];
    unsigned n;
};

/* The runtime directory option both daemons take (--runtime-dir), as a
 * config_group whose select returns a struct lockfile_settings. */
struct lockfile_settings {
    char runtime_dir[PATH_MAX];
};

#define LOCKFILE_N_OPTIONS 1
extern const struct config_option lockfile_options[LOCKFILE_N_OPTIONS];

/* Takes an exclusive lock on the open file fd without waiting. If another
 * process holds it, writes "WHAT is held by pid N (PROGRAM)" into err and
 * returns -1; any other failure is also -1 with err set. */
int lockfile_try(int fd, const char *what, char *err, size_t errlen);

/* Writes "pid N (PROGRAM)" for the process holding a lock on the file fd
 * refers to, as /proc/locks tells (or, where /proc is hidden as systemd's
 * ProcSubset=pid does, the pid a lock file names); "another process" if it
 * cannot say. */
void lockfile_holder(int fd, char *out, size_t len);

/* Opens (creating, mode 0644) and locks the lock file at path for the
 * life of the process, and writes our pid into it; the fd, or -1 with err
 * naming the holder. The file must be a plain file of ours with one name. */
int lockfile_open(const char *path, const char *what, char *err, size_t errlen);

/* Creates the runtime directory (mode 0755) if it does not exist. */
int lockfile_dir(const char *dir, char *err, size_t errlen);

/* Claims an address ("udp" or "tcp") before it is bound: locks
 * DIR/PROTO-ADDR-PORT.lock (udp-127.0.0.1-3478.lock) for the life of the
 * process, writes our pid into it, then checks with a trial bind that no
 * socket of any other process has the address. Returns -1 with err naming
 * the holder when either fails. An address with port 0 is unique by
 * construction and is not claimed. */
int lockfile_address(struct lockfile_set *set, const char *dir, const char *proto,
                     const union netaddr *a, char *err, size_t errlen);

void lockfile_set_init(struct lockfile_set *set);
/* Releases every lock (closing the files; they stay, empty of meaning). */
void lockfile_set_release(struct lockfile_set *set);

#endif
