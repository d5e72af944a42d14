/* See natscluster.h. The servers are configured by file, since routes and
 * per-server store_dir do not fit the command line well. */
#include "natscluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Debian installs it in sbin; QR_NATS_SERVER names another binary. */
#define NATSCLUSTER_BIN "/usr/sbin/nats-server"
#define NATSCLUSTER_READY_MS 30000
#define NATSCLUSTER_ATTEMPTS 3

static int64_t natscluster__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void natscluster__sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

/* A loopback TCP socket bound to a port the kernel picks; the caller keeps
 * it open until every port of the cluster is chosen, so the set is
 * distinct. Another process could still take a port between the close and
 * the server's bind: natscluster__start tries again with new ports then. */
static int natscluster__port_socket(uint16_t *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static int natscluster__write_conf(const struct natscluster *c, unsigned i)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/n%u.conf", c->dir, i);
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "server_name: n%u\nlisten: \"127.0.0.1:%u\"\nhttp: \"127.0.0.1:%u\"\n", i,
            c->port[i], c->mon[i]);
    fprintf(f, "jetstream { store_dir: \"%s/n%u\" }\n", c->dir, i);
    if (c->tls_cert[0] != '\0') {
        fprintf(f, "tls {\n  cert_file: \"%s\"\n  key_file: \"%s\"\n", c->tls_cert, c->tls_key);
        if (c->tls_ca[0] != '\0')
            fprintf(f, "  ca_file: \"%s\"\n  verify: true\n", c->tls_ca);
        fprintf(f, "}\n");
    }
    if (c->n > 1) {
        fprintf(f, "cluster {\n  name: qrtest\n  listen: \"127.0.0.1:%u\"\n  routes: [\n",
                c->route[i]);
        for (unsigned j = 0; j < c->n; j++)
            if (j != i)
                fprintf(f, "    \"nats-route://127.0.0.1:%u\"\n", c->route[j]);
        fprintf(f, "  ]\n}\n");
    }
    return fclose(f) == 0 ? 0 : -1;
}

static int natscluster__spawn(struct natscluster *c, unsigned i)
{
    char conf[256], log[256];
    pid_t pid;

    snprintf(conf, sizeof(conf), "%s/n%u.conf", c->dir, i);
    snprintf(log, sizeof(log), "%s/n%u.log", c->dir, i);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);

        /* A crashed test must not leave servers behind. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        const char *bin = getenv("QR_NATS_SERVER");

        if (bin == NULL || bin[0] == '\0')
            bin = NATSCLUSTER_BIN;
        execl(bin, bin, "-c", conf, (char *)NULL);
        _exit(127);
    }
    c->pid[i] = pid;
    return 0;
}

/* 1 when GET /healthz on the monitoring port answers 200. */
static int natscluster__healthy(uint16_t mon)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(mon),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    static const char req[] = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    char buf[64] = {0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok = 0;

    if (fd < 0)
        return 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1) &&
        read(fd, buf, sizeof(buf) - 1) > 0)
        ok = strncmp(buf, "HTTP/1.", 7) == 0 && strncmp(buf + 8, " 200", 4) == 0;
    close(fd);
    return ok;
}

/* 0 healthy, -1 no answer in time, -2 it or another server started with
 * it exited (the others are waited for next: one that exits while this one
 * waits for its routes would leave it unhealthy until the time is up). */
static int natscluster__wait_healthy(struct natscluster *c, unsigned i)
{
    int64_t end = natscluster__now_ms() + NATSCLUSTER_READY_MS;

    while (natscluster__now_ms() < end) {
        for (unsigned j = 0; j < c->n; j++) {
            int st;

            if (c->pid[j] > 0 && waitpid(c->pid[j], &st, WNOHANG) == c->pid[j]) {
                c->pid[j] = 0;
                return -2;
            }
        }
        if (natscluster__healthy(c->mon[i]))
            return 0;
        natscluster__sleep_ms(50);
    }
    return -1;
}

/* Copies the server's log to stderr, so a failed start says why. */
static void natscluster__show_log(const struct natscluster *c, unsigned i)
{
    char path[256], line[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/n%u.log", c->dir, i);
    f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL)
        fprintf(stderr, "natscluster: n%u: %s", i, line);
    fclose(f);
}

static int natscluster__ports(struct natscluster *c)
{
    int fd[3 * NATSCLUSTER_MAX];
    unsigned nfd = 0, ok = 1;
    size_t off = 0;

    for (unsigned i = 0; i < c->n && ok; i++) {
        uint16_t *want[3] = {&c->port[i], &c->route[i], &c->mon[i]};

        for (unsigned k = 0; k < 3 && ok; k++) {
            fd[nfd] = natscluster__port_socket(want[k]);
            ok = fd[nfd] >= 0;
            nfd += ok;
        }
        snprintf(c->url[i], sizeof(c->url[i]), "nats://127.0.0.1:%u", c->port[i]);
        off += (size_t)snprintf(c->urls + off, sizeof(c->urls) - off, "%s%s", i ? "," : "",
                                c->url[i]);
    }
    while (nfd > 0)
        close(fd[--nfd]);
    return ok ? 0 : -1;
}

/* One try: 0, -1 failed, -2 a server exited before it was healthy (most
 * likely a port taken by another test since it was chosen). */
static int natscluster__try(struct natscluster *c, char *err, size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    int rc = -1;

    snprintf(c->dir, sizeof(c->dir), "%s/qr-nats-XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(c->dir) == NULL) {
        snprintf(err, errlen, "natscluster: mkdtemp: %s", strerror(errno));
        c->dir[0] = '\0';
        return -1;
    }
    c->urls[0] = '\0';
    if (natscluster__ports(c) != 0) {
        snprintf(err, errlen, "natscluster: no free loopback port");
        goto fail;
    }
    for (unsigned i = 0; i < c->n; i++)
        if (natscluster__write_conf(c, i) != 0 || natscluster__spawn(c, i) != 0) {
            snprintf(err, errlen, "natscluster: cannot start server %u", i);
            goto fail;
        }
    for (unsigned i = 0; i < c->n; i++)
        if ((rc = natscluster__wait_healthy(c, i)) != 0) {
            snprintf(err, errlen, "natscluster: server %u %s", i,
                     rc == -2 ? "or another exited before it was healthy" : "not healthy in time");
            for (unsigned j = 0; j < c->n; j++)
                natscluster__show_log(c, j);
            goto fail;
        }
    return 0;
fail:
    natscluster_stop(c);
    return rc;
}

static int natscluster__start(struct natscluster *c, unsigned n, char *err, size_t errlen)
{
    int rc = -2;

    if (n == 0 || n > NATSCLUSTER_MAX) {
        snprintf(err, errlen, "natscluster: 1 to %d servers", NATSCLUSTER_MAX);
        return -1;
    }
    c->n = n;
    for (unsigned attempt = 0; attempt < NATSCLUSTER_ATTEMPTS && rc == -2; attempt++)
        rc = natscluster__try(c, err, errlen);
    return rc == 0 ? 0 : -1;
}

int natscluster_start(struct natscluster *c, unsigned n, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    return natscluster__start(c, n, err, errlen);
}

int natscluster_start_tls(struct natscluster *c, unsigned n, const char *cert, const char *key,
                          const char *ca, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->tls_cert, sizeof(c->tls_cert), "%s", cert);
    snprintf(c->tls_key, sizeof(c->tls_key), "%s", key);
    snprintf(c->tls_ca, sizeof(c->tls_ca), "%s", ca != NULL ? ca : "");
    return natscluster__start(c, n, err, errlen);
}

const char *natscluster_url(const struct natscluster *c, unsigned i)
{
    return i < c->n ? c->url[i] : "";
}

const char *natscluster_urls(const struct natscluster *c)
{
    return c->urls;
}

static void natscluster__kill(struct natscluster *c, unsigned i, int sig)
{
    int64_t end = natscluster__now_ms() + 5000;
    int st;

    if (c->pid[i] <= 0)
        return;
    kill(c->pid[i], sig);
    while (waitpid(c->pid[i], &st, WNOHANG) == 0) {
        if (natscluster__now_ms() > end) {
            kill(c->pid[i], SIGKILL);
            waitpid(c->pid[i], &st, 0);
            break;
        }
        natscluster__sleep_ms(10);
    }
    c->pid[i] = 0;
}

void natscluster_stop_one(struct natscluster *c, unsigned i)
{
    if (i < c->n)
        natscluster__kill(c, i, SIGKILL);
}

int natscluster_restart_one(struct natscluster *c, unsigned i)
{
    if (i >= c->n || c->pid[i] > 0)
        return -1;
    if (natscluster__spawn(c, i) != 0)
        return -1;
    return natscluster__wait_healthy(c, i) == 0 ? 0 : -1;
}

static int natscluster__rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void natscluster_stop(struct natscluster *c)
{
    for (unsigned i = 0; i < c->n; i++)
        natscluster__kill(c, i, SIGTERM);
    if (c->dir[0] != '\0' && getenv("QR_KEEP_NATS") == NULL)
        nftw(c->dir, natscluster__rm, 16, FTW_DEPTH | FTW_PHYS);
    c->dir[0] = '\0';
}
