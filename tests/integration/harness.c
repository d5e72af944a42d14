/* Integration-test harness: real processes, real sockets, loopback only. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "quietroom/ctlproto.h"

#define HARNESS_START_MS 10000
#define HARNESS_STOP_MS 10000
#define HARNESS_ARGS_MAX 48

uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL)
        return NULL;
    do {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

/* Runs argv, capturing stdout (and stderr too if merge) into a string
 * (caller frees). */
static char *harness_spawn_capture(char *const argv[], bool merge, int *status)
{
    int fds[2];
    pid_t pid;
    char *out = NULL;
    size_t len = 0, cap = 0;

    if (pipe(fds) != 0)
        return NULL;
    if ((pid = fork()) == 0) {
        dup2(fds[1], STDOUT_FILENO);
        if (merge)
            dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        ssize_t n;

        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            out = realloc(out, cap);
        }
        if ((n = read(fds[0], out + len, cap - len - 1)) <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(fds[0]);
    waitpid(pid, status, 0);
    return out;
}

static char *harness_run(char *const argv[], int *status)
{
    return harness_spawn_capture(argv, false, status);
}

char *run_command(char *const argv[], int *exit_code)
{
    int status;
    char *out = harness_spawn_capture(argv, true, &status);

    *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return out;
}

static int harness_ready(struct relay_proc *r, const char *ready)
{
    json_error_t jerr;
    json_t *doc = json_load_file(ready, 0, &jerr), *l;
    size_t i;

    if (doc == NULL)
        return -1;
    snprintf(r->control, sizeof(r->control), "%s",
             json_string_value(json_object_get(doc, "control")));
    r->n_listen = 0;
    json_array_foreach(json_object_get(doc, "listen"), i, l)
    {
        if (r->n_listen < 2 && netaddr_parse(json_string_value(l), &r->listen[r->n_listen]) == 0)
            r->n_listen++;
    }
    json_decref(doc);
    return r->n_listen > 0 ? 0 : -1;
}

static pid_t harness_spawn(struct relay_proc *r, const char *ready, const char *const *listen,
                           const char *const *extra)
{
    const char *argv[HARNESS_ARGS_MAX];
    int n = 0;
    pid_t pid;

    argv[n++] = QR_RELAY_BIN;
    for (int i = 0; listen[i] != NULL && n < HARNESS_ARGS_MAX - 20; i++) {
        argv[n++] = "--listen";
        argv[n++] = listen[i];
    }
    argv[n++] = "--control";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--secret-file";
    argv[n++] = r->secret;
    argv[n++] = "--audit-log";
    argv[n++] = r->audit;
    argv[n++] = "--ready-file";
    argv[n++] = ready;
    argv[n++] = "--workers";
    argv[n++] = "2";
    argv[n++] = "--log-level";
    argv[n++] = "debug";
    for (int i = 0; extra != NULL && extra[i] != NULL && n < HARNESS_ARGS_MAX - 1; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    if ((pid = fork()) == 0) {
        int fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int relay_start(struct relay_proc *r, const char *const *listen, const char *const *extra)
{
    char ready[HARNESS_PATH], err[256];
    char *secret_argv[] = {QR_CTL_BIN, "secret", "--out", r->secret, NULL};
    int status;
    uint64_t deadline;

    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/qr-it-XXXXXX");
    if (mkdtemp(r->dir) == NULL)
        return -1;
    snprintf(r->secret, sizeof(r->secret), "%s/relay.secret", r->dir);
    snprintf(r->audit, sizeof(r->audit), "%s/audit.jsonl", r->dir);
    snprintf(r->log, sizeof(r->log), "%s/relay.log", r->dir);
    snprintf(ready, sizeof(ready), "%s/ready.json", r->dir);
    free(harness_run(secret_argv, &status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        keyring_load(r->secret, &r->keys, err, sizeof(err)) != 0)
        return -1;
    if ((r->pid = harness_spawn(r, ready, listen, extra)) < 0)
        return -1;
    for (deadline = now_ms() + HARNESS_START_MS; now_ms() < deadline;) {
        if (harness_ready(r, ready) == 0)
            return 0;
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0;
            return -1;
        }
        usleep(20000);
    }
    return -1;
}

int relay_stop(struct relay_proc *r)
{
    uint64_t deadline = now_ms() + HARNESS_STOP_MS;
    int status;

    if (r->pid <= 0)
        return -1;
    kill(r->pid, SIGTERM);
    while (now_ms() < deadline) {
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0;
            r->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            return r->exit_status;
        }
        usleep(10000);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, &status, 0);
    r->pid = 0;
    r->exit_status = -1;
    return -1;
}

int relay_cleanup(struct relay_proc *r)
{
    char cmd[HARNESS_PATH + 16];
    int rc = 0;

    if (r->pid > 0)
        r->exit_status = relay_stop(r);
    if (r->exit_status != 0) {
        char *log = read_text(r->log);

        fprintf(stderr, "relay exited with status %d; its log:\n%s\n", r->exit_status,
                log ? log : "(none)");
        free(log);
        rc = -1;
    }
    keyring_wipe(&r->keys);
    if (r->dir[0] != '\0' && getenv("QR_KEEP_TEST_DIRS") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", r->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", r->dir);
    }
    return rc;
}

json_t *relay_call(struct relay_proc *r, const char *op, const char *session)
{
    char err[256];
    struct ctlclient *c = ctlclient_connect(r->control, &r->keys, 5000, err, sizeof(err));
    json_t *req, *resp;

    if (c == NULL) {
        fprintf(stderr, "control: %s\n", err);
        return NULL;
    }
    req = json_pack("{s:s}", "op", op);
    if (session != NULL)
        json_object_set_new(req, "session", json_string(session));
    resp = ctlclient_call(c, req, 5000, err, sizeof(err));
    if (resp == NULL)
        fprintf(stderr, "control: %s\n", err);
    json_decref(req);
    ctlclient_close(c);
    return resp;
}

long long relay_stat(struct relay_proc *r, const char *group, const char *name)
{
    json_t *resp = relay_call(r, "stats", NULL);
    long long v = -1;

    if (resp != NULL)
        v = json_integer_value(
            json_object_get(json_object_get(json_object_get(resp, "stats"), group), name));
    json_decref(resp);
    return v;
}

json_t *ctl_creds(struct relay_proc *r, const char *sid, int links)
{
    char nlinks[16];
    char *argv[] = {QR_CTL_BIN, "creds", "--secret-file", r->secret, "--session", (char *)sid,
                    "--links", nlinks, NULL};
    json_error_t jerr;
    json_t *doc;
    char *out;
    int status;

    snprintf(nlinks, sizeof(nlinks), "%d", links);
    if ((out = harness_run(argv, &status)) == NULL)
        return NULL;
    doc = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? json_loads(out, 0, &jerr) : NULL;
    free(out);
    return doc;
}

static json_t *creds_leg(json_t *creds, int link, int side)
{
    return json_object_get(json_array_get(json_object_get(creds, "links"), (size_t)link),
                           side == 0 ? "a" : "b");
}

const char *creds_ufrag(json_t *creds, int link, int side)
{
    return json_string_value(json_object_get(creds_leg(creds, link, side), "ufrag"));
}

const char *creds_pwd(json_t *creds, int link, int side)
{
    return json_string_value(json_object_get(creds_leg(creds, link, side), "pwd"));
}

/* --- raw UDP peers ---------------------------------------------------------- */

int peer_open(struct udp_peer *p, const char *bind_addr)
{
    union netaddr a;
    socklen_t len = sizeof(p->local);

    if (netaddr_parse(bind_addr, &a) != 0)
        return -1;
    if ((p->fd = socket(a.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    if (bind(p->fd, &a.sa, netaddr_len(&a)) != 0 ||
        getsockname(p->fd, &p->local.sa, &len) != 0) {
        close(p->fd);
        return -1;
    }
    return 0;
}

void peer_close(struct udp_peer *p)
{
    if (p->fd > 0)
        close(p->fd);
    p->fd = -1;
}

int peer_send(struct udp_peer *p, const union netaddr *to, const void *buf, size_t len)
{
    return sendto(p->fd, buf, len, 0, &to->sa, netaddr_len(to)) == (ssize_t)len ? 0 : -1;
}

int peer_recv(struct udp_peer *p, void *buf, size_t cap, int timeout_ms, union netaddr *from)
{
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
    union netaddr dummy;
    socklen_t len = sizeof(dummy);
    ssize_t n;

    if (poll(&pfd, 1, timeout_ms) != 1)
        return -1;
    n = recvfrom(p->fd, buf, cap, 0, &(from ? from : &dummy)->sa, &len);
    return n < 0 ? -1 : (int)n;
}

int peer_check(struct udp_peer *p, const union netaddr *relay, const struct check *c,
               struct stun_msg *resp, uint8_t *raw, int timeout_ms)
{
    char username[128];
    uint8_t req[512];
    struct stun_request r = {
        .username = username,
        .key = (const uint8_t *)c->pwd,
        .key_len = strlen(c->pwd),
        .has_priority = !c->no_priority,
        .priority = 0x6e7f1eff,
        .use_candidate = c->nominate,
        .ice_controlling = !c->controlled,
        .ice_controlled = c->controlled,
        .tiebreaker = 0x1122334455667788ull,
        .fingerprint = true,
    };
    struct hmac *h = hmac_new(HMAC_SHA1);
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    size_t n;
    int rc = 0;

    snprintf(username, sizeof(username), "%s:peer", c->ufrag);
    RAND_bytes(r.txid, sizeof(r.txid));
    n = stun_build_request(req, sizeof(req), &r, h);
    hmac_free(h);
    if (n == 0 || peer_send(p, relay, req, n) != 0)
        return -1;
    while (now_ms() < deadline) {
        int got = peer_recv(p, raw, 2048, (int)(deadline - now_ms()), NULL);

        if (got < 0)
            break;
        if (stun_parse(raw, (size_t)got, resp) == STUN_PARSE_OK &&
            memcmp(resp->txid, r.txid, STUN_TXID_LEN) == 0) {
            rc = 1;
            break;
        }
    }
    return rc;
}
