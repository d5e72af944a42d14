/* flock(2) locks with their holder named. Lock files are never removed:
 * unlinking a lock file while another process waits to open it would let
 * two processes each hold a lock on a different file of the same name. */
#include "quietroom/base/lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOCKFILE_LINE 256

/* One line of /proc/locks: "1: FLOCK  ADVISORY  WRITE 1234 fd:00:5678 0 EOF".
 * Waiters ("1: -> FLOCK ...") hold nothing and are skipped. Returns the
 * holder's pid if the line is a lock on (dev, ino) (0 when the holder is
 * in a PID namespace we cannot see), else -1. */
static long lockfile__line_pid(char *line, const struct stat *st)
{
    char *tok[6], *save = NULL;
    unsigned maj, min;
    unsigned long ino;
    long pid;
    int n = 0;

    for (char *t = strtok_r(line, " \t\n", &save); t != NULL && n < 6;
         t = strtok_r(NULL, " \t\n", &save))
        tok[n++] = t;
    if (n < 6 || strcmp(tok[1], "->") == 0)
        return -1;
    if (sscanf(tok[5], "%x:%x:%lu", &maj, &min, &ino) != 3 || maj != major(st->st_dev) ||
        min != minor(st->st_dev) || ino != (unsigned long)st->st_ino)
        return -1;
    pid = strtol(tok[4], NULL, 10);
    return pid > 0 ? pid : 0;
}

/* The holder's program name from its argv[0] (comm is cut at 15 bytes:
 * "quietroom-signa"). */
static void lockfile__program(long pid, char *out, size_t len)
{
    char path[64], cmd[PATH_MAX];
    const char *base;
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
    out[0] = '\0';
    if ((f = fopen(path, "re")) == NULL)
        return;
    n = fread(cmd, 1, sizeof(cmd) - 1, f);
    fclose(f);
    cmd[n] = '\0';
    base = strrchr(cmd, '/');
    base = base ? base + 1 : cmd;
    n = strnlen(base, len - 1);
    memcpy(out, base, n);
    out[n] = '\0';
}

/* The pid a lock file was stamped with (lockfile__stamp), or 0. */
static long lockfile__stamped(int fd)
{
    char text[24], *end;
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    long pid;

    if (n <= 1)
        return 0;
    text[n] = '\0';
    pid = strtol(text, &end, 10);
    return end != text && *end == '\n' && pid > 0 ? pid : 0;
}

void lockfile_holder(int fd, char *out, size_t len)
{
    char line[LOCKFILE_LINE], prog[64];
    struct stat st;
    long pid = -1;
    FILE *f;

    snprintf(out, len, "another process");
    if (fstat(fd, &st) != 0)
        return;
    if ((f = fopen("/proc/locks", "re")) != NULL) {
        while (pid < 0 && fgets(line, sizeof(line), f) != NULL)
            pid = lockfile__line_pid(line, &st);
        fclose(f);
    }
    if (pid == 0) {
        /* The pid stamped in the file would be another namespace's. */
        snprintf(out, len, "a process in another PID namespace");
        return;
    }
    if (pid < 0)
        pid = lockfile__stamped(fd);
    if (pid <= 0)
        return;
    lockfile__program(pid, prog, sizeof(prog));
    snprintf(out, len, "pid %ld (%s)", pid, prog[0] ? prog : "?");
}

static int lockfile__set_dir(void *arg, const char *value, char *err, size_t errlen)
{
    struct lockfile_settings *s = arg;

    return config_string(s->runtime_dir, sizeof(s->runtime_dir), value, "runtime-dir", err,
                         errlen);
}

const struct config_option lockfile_options[LOCKFILE_N_OPTIONS] = {
    {"runtime-dir", "DIR", lockfile__set_dir,
     "lock files keeping a second copy off our addresses (/run/PROGRAM)"},
};

int lockfile_try(int fd, const char *what, char *err, size_t errlen)
{
    char who[128];

    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    if (errno != EWOULDBLOCK) {
        snprintf(err, errlen, "%s: cannot lock: %s", what, strerror(errno));
        return -1;
    }
    lockfile_holder(fd, who, sizeof(who));
    snprintf(err, errlen, "%s is held by %s", what, who);
    return -1;
}

int lockfile_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;

    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "runtime-dir %s: %s", dir, strerror(errno));
        return -1;
    }
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "runtime-dir %s: not a directory", dir);
        return -1;
    }
    return 0;
}

void lockfile_set_init(struct lockfile_set *set)
{
    set->n = 0;
    for (unsigned i = 0; i < QR_LOCKS_MAX; i++)
        set->fd[i] = -1;
}

/* Records the holder in the file for a person reading it; the lock itself
 * is what counts. */
static void lockfile__stamp(int fd)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());

    if (ftruncate(fd, 0) == 0 && pwrite(fd, text, (size_t)n, 0) != n)
        return;
}

/* Whether a socket of another process (which no lock file of ours tells
 * of: another runtime-dir, another program) has the address now. A bind
 * without SO_REUSEPORT fails against any socket on it, so a relay's
 * SO_REUSEPORT group can never take in another process's sockets unseen.
 * TCP sets SO_REUSEADDR as the real listener does: a restart is not kept
 * out by its predecessor's connections in TIME_WAIT. */
static int lockfile__probe(const char *proto, const union netaddr *a, const char *what,
                           char *err, size_t errlen)
{
    bool udp = strcmp(proto, "udp") == 0;
    int fd = socket(a->sa.sa_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    int one = 1, rc = -1;

    if (fd < 0 ||
        (!udp && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) ||
        (a->sa.sa_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)) {
        snprintf(err, errlen, "%s: %s", what, strerror(errno));
        goto out;
    }
    if (bind(fd, &a->sa, netaddr_len(a)) != 0) {
        snprintf(err, errlen, "%s: %s%s", what, strerror(errno),
                 errno == EADDRINUSE ? " (by another process: ss -lnp shows which)" : "");
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* A lock file we may trust and write: a plain file of ours with one name.
 * Anything else (a FIFO, a device, a hard link to some other file, a file
 * another user put in a shared directory) is refused, not written. */
static int lockfile__ours(int fd, const char *path, char *err, size_t errlen)
{
    struct stat st;

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        st.st_nlink != 1) {
        snprintf(err, errlen, "%s: not a plain file of this user with one name; remove it", path);
        return -1;
    }
    return 0;
}

int lockfile_open(const char *path, const char *what, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);

    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (lockfile__ours(fd, path, err, errlen) != 0 || lockfile_try(fd, what, err, errlen) != 0) {
        size_t used = strlen(err);

        snprintf(err + used, errlen - used, " (lock %s)", path);
        close(fd);
        return -1;
    }
    lockfile__stamp(fd);
    return fd;
}

int lockfile_address(struct lockfile_set *set, const char *dir, const char *proto,
                     const union netaddr *a, char *err, size_t errlen)
{
    char host[NETADDR_STRLEN], what[NETADDR_STRLEN + 8], path[PATH_MAX];
    int fd;

    if (netaddr_port(a) == 0)
        return 0;
    if (set->n == QR_LOCKS_MAX) {
        snprintf(err, errlen, "too many addresses to lock");
        return -1;
    }
    netaddr_format_host(a, host, sizeof(host));
    snprintf(path, sizeof(path), "%s/%s-%s-%u.lock", dir, proto, host, netaddr_port(a));
    snprintf(what, sizeof(what), "%s %s", proto, netaddr_format(a, host, sizeof(host)));
    if ((fd = lockfile_open(path, what, err, errlen)) < 0)
        return -1;
    set->fd[set->n++] = fd;
    return lockfile__probe(proto, a, what, err, errlen);
}

void lockfile_set_release(struct lockfile_set *set)
{
    for (unsigned i = 0; i < set->n; i++) {
        if (set->fd[i] >= 0)
            close(set->fd[i]);
        set->fd[i] = -1;
    }
    set->n = 0;
}
