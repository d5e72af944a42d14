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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/rand.h>

#include "quietroom/wire/ctlproto.h"
#include "quietroom/base/limits.h"

#define HARNESS_START_MS 10000
#define HARNESS_STOP_MS 10000
#define HARNESS_ARGS_MAX 48
#define HARNESS_PREFIX_MAX 16

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
    r->ops_port = (int)json_integer_value(json_object_get(doc, "ops_port"));
    r->n_listen = 0;
    json_array_foreach(json_object_get(doc, "listen"), i, l)
    {
        if (r->n_listen < 2 && netaddr_parse(json_string_value(l), &r->listen[r->n_listen]) == 0)
            r->n_listen++;
    }
    r->n_listen_tcp = 0;
    json_array_foreach(json_object_get(doc, "listen_tcp"), i, l)
    {
        if (r->n_listen_tcp < 2 &&
            netaddr_parse(json_string_value(l), &r->listen_tcp[r->n_listen_tcp]) == 0)
            r->n_listen_tcp++;
    }
    json_decref(doc);
    return r->n_listen > 0 ? 0 : -1;
}

/* QR_RELAY_PREFIX, split on blanks, goes before the relay's own argv: a
 * wrapper that runs it with fewer capabilities ("setpriv --bounding-set=..."
 * for the *_nocaps runs) or in another network namespace ("ip netns exec
 * NS"). The words live in prefix (cap bytes). Returns how many it added. */
static int harness_prefix(const char **argv, int max, char *prefix, size_t cap)
{
    const char *env = getenv("QR_RELAY_PREFIX");
    char *save = NULL;
    int n = 0;

    if (env == NULL || env[0] == '\0')
        return 0;
    snprintf(prefix, cap, "%s", env);
    for (char *w = strtok_r(prefix, " \t", &save); w != NULL && n < max;
         w = strtok_r(NULL, " \t", &save))
        argv[n++] = w;
    return n;
}

static pid_t harness_spawn(struct relay_proc *r, const char *ready, const char *const *listen,
                           const char *const *extra)
{
    const char *argv[HARNESS_ARGS_MAX + HARNESS_PREFIX_MAX];
    char runtime[HARNESS_PATH], prefix[512];
    int n = harness_prefix(argv, HARNESS_PREFIX_MAX, prefix, sizeof(prefix)), end;
    pid_t pid;

    snprintf(runtime, sizeof(runtime), "%s/run", r->dir);
    end = n + HARNESS_ARGS_MAX;
    argv[n++] = QR_RELAY_BIN;
    for (int i = 0; listen[i] != NULL && n < end - 20; i++) {
        argv[n++] = "--listen";
        argv[n++] = listen[i];
    }
    argv[n++] = "--control";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--secret-file";
    argv[n++] = r->secret;
    argv[n++] = "--audit-log";
    argv[n++] = r->audit;
    argv[n++] = "--audit-key-file";
    argv[n++] = r->audit_key;
    argv[n++] = "--runtime-dir";
    argv[n++] = runtime;
    argv[n++] = "--ready-file";
    argv[n++] = ready;
    argv[n++] = "--workers";
    argv[n++] = "2";
    argv[n++] = "--log-level";
    argv[n++] = "debug";
    for (int i = 0; extra != NULL && extra[i] != NULL && n < end - 1; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    if ((pid = fork()) == 0) {
        int fd = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* QR_RELAY_EXPECT_LOG: a line the relay must have logged once it serves
 * (the *_nocaps runs: "kernel path off: no_privileges", so that a wrapper
 * that took nothing away cannot pass as a fallback). 0, or -1 with the log
 * printed. */
static int harness_expect_log(const struct relay_proc *r)
{
    const char *want = getenv("QR_RELAY_EXPECT_LOG");
    char *log;
    int rc;

    if (want == NULL || want[0] == '\0')
        return 0;
    log = read_text(r->log);
    rc = log != NULL && strstr(log, want) != NULL ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "QR_RELAY_EXPECT_LOG: \"%s\" is not in the relay's log:\n%s\n", want,
                log ? log : "(none)");
    free(log);
    return rc;
}

/* Waits for the ready file; a relay that exits first leaves its status in
 * r->exit_status (pid 0). */
static int harness_wait_ready(struct relay_proc *r, const char *ready)
{
    int status;

    for (uint64_t deadline = now_ms() + HARNESS_START_MS; now_ms() < deadline; usleep(20000)) {
        if (harness_ready(r, ready) == 0)
            return harness_expect_log(r);
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0;
            r->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            return -1;
        }
    }
    return -1;
}

int relay_start(struct relay_proc *r, const char *const *listen, const char *const *extra)
{
    char ready[HARNESS_PATH], err[256];
    char *secret_argv[] = {QR_CTL_BIN, "secret", "--out", r->secret, NULL};
    char *audit_argv[] = {QR_CTL_BIN, "secret", "--out", r->audit_key, NULL};
    int status;

    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/qr-it-XXXXXX");
    if (mkdtemp(r->dir) == NULL)
        return -1;
    snprintf(r->secret, sizeof(r->secret), "%s/relay.secret", r->dir);
    snprintf(r->audit, sizeof(r->audit), "%s/audit.jsonl", r->dir);
    snprintf(r->log, sizeof(r->log), "%s/relay.log", r->dir);
    snprintf(r->audit_key, sizeof(r->audit_key), "%s/audit.key", r->dir);
    snprintf(ready, sizeof(ready), "%s/ready.json", r->dir);
    free(harness_run(audit_argv, &status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    free(harness_run(secret_argv, &status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        keyring_load(r->secret, &r->keys, err, sizeof(err)) != 0)
        return -1;
    if ((r->pid = harness_spawn(r, ready, listen, extra)) < 0)
        return -1;
    return harness_wait_ready(r, ready);
}

int relay_restart(struct relay_proc *r, const char *const *extra)
{
    const char *listen[3] = {NULL, NULL, NULL}, *args[HARNESS_ARGS_MAX];
    char addrs[2][NETADDR_STRLEN], ready[HARNESS_PATH];
    int n = 0;

    if (r->pid != 0 || r->n_listen < 1)
        return -1;
    for (int i = 0; i < r->n_listen && i < 2; i++) {
        netaddr_format(&r->listen[i], addrs[i], sizeof(addrs[i]));
        listen[i] = addrs[i];
    }
    /* After the defaults harness_spawn gives: the later option wins. */
    args[n++] = "--control";
    args[n++] = r->control;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < HARNESS_ARGS_MAX - 1; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    snprintf(ready, sizeof(ready), "%s/ready.json", r->dir);
    unlink(ready);
    r->exit_status = 0;
    if ((r->pid = harness_spawn(r, ready, listen, args)) < 0)
        return -1;
    return harness_wait_ready(r, ready);
}

int relay_wait(struct relay_proc *r, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    int status;

    while (r->pid > 0 && now_ms() < deadline) {
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0;
            r->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            return r->exit_status;
        }
        usleep(5000);
    }
    return r->pid > 0 ? -2 : r->exit_status;
}

int relay_stop(struct relay_proc *r)
{
    uint64_t deadline = now_ms() + HARNESS_STOP_MS;
    int status;

    if (r->pid <= 0)
        return -1;
    /* The first SIGTERM drains; a second one while calls go on stops now. */
    kill(r->pid, SIGTERM);
    if (relay_wait(r, 100) != -2)
        return r->exit_status;
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

int relay_kill9(struct relay_proc *r)
{
    int status;

    if (r->pid <= 0 || kill(r->pid, SIGKILL) != 0 || waitpid(r->pid, &status, 0) != r->pid)
        return -1;
    r->pid = 0;
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 0 : -1;
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

size_t check_request(const struct check *c, uint8_t *req, size_t cap,
                     uint8_t txid[STUN_TXID_LEN])
{
    char username[128];
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
    size_t n;

    snprintf(username, sizeof(username), "%s:peer", c->ufrag);
    RAND_bytes(r.txid, sizeof(r.txid));
    memcpy(txid, r.txid, STUN_TXID_LEN);
    n = h != NULL ? stun_build_request(req, cap, &r, h) : 0;
    hmac_free(h);
    return n;
}

int peer_check(struct udp_peer *p, const union netaddr *relay, const struct check *c,
               struct stun_msg *resp, uint8_t *raw, int timeout_ms)
{
    uint8_t req[512], txid[STUN_TXID_LEN];
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    size_t n = check_request(c, req, sizeof(req), txid);
    int rc = 0;

    if (n == 0 || peer_send(p, relay, req, n) != 0)
        return -1;
    while (now_ms() < deadline) {
        int got = peer_recv(p, raw, 2048, (int)(deadline - now_ms()), NULL);

        if (got < 0)
            break;
        if (stun_parse(raw, (size_t)got, resp) == STUN_PARSE_OK &&
            memcmp(resp->txid, txid, STUN_TXID_LEN) == 0) {
            rc = 1;
            break;
        }
    }
    return rc;
}

/* --- signaling ------------------------------------------------------------- */

int relay_conf_line(const struct relay_proc *r, const char *name, char *out, size_t len)
{
    char text[NETADDR_STRLEN];
    size_t n;

    if (r->n_listen < 1)
        return -1;
    n = (size_t)snprintf(out, len, "relay = %s %s", name, r->control);
    for (int i = 0; i < r->n_listen && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, " %s",
                              netaddr_format(&r->listen[i], text, sizeof(text)));
    for (int i = 0; i < r->n_listen_tcp && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, " tcp:%s",
                              netaddr_format(&r->listen_tcp[i], text, sizeof(text)));
    return n < len ? 0 : -1;
}

static int harness_write_conf(struct signal_proc *s, const struct relay_proc *r, bool tls,
                              const char *const *extra)
{
    char line[RELAY_CONF_LINE_MAX];
    FILE *f;

    if (relay_conf_line(r, "r1", line, sizeof(line)) != 0 || (f = fopen(s->conf, "w")) == NULL)
        return -1;
    fprintf(f, "[relay]\nignored = by signaling\n\n[signal]\nlisten = 127.0.0.1:0\n");
    fprintf(f, "origin = %s\nstatic-dir = %s/signaling/web\n", TEST_ORIGIN, QR_SOURCE_DIR);
    fprintf(f, "ehr-jwks = %s/ehr.jwks.json\nissuer = %s\naudience = %s\n", s->dir, TEST_ISSUER,
            TEST_AUDIENCE);
    fprintf(f, "%s\nrelay-secret-file = %s\n", line, r->secret);
    fprintf(f, "audit-log = %s\naudit-key-file = %s\nready-file = %s/ready.json\n", s->audit,
            s->audit_key, s->dir);
    fprintf(f, "log-level = debug\nruntime-dir = %s/run\nstate-dir = %s/state\n", s->dir,
            s->dir);
    if (tls)
        fprintf(f, "tls-cert = %s\ntls-key = %s/tls.key\n", s->cert, s->dir);
    for (int i = 0; extra != NULL && extra[i] != NULL; i++)
        fprintf(f, "%s\n", extra[i]);
    return fclose(f);
}

static int harness_make_cert(struct signal_proc *s)
{
    char cmd[1024];

    snprintf(s->cert, sizeof(s->cert), "%s/tls.crt", s->dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
             "-keyout %s/tls.key -out %s 2>/dev/null",
             s->dir, s->cert);
    return system(cmd) == 0 ? 0 : -1;
}

static int harness_signal_ready(struct signal_proc *s)
{
    char ready[HARNESS_PATH];
    json_error_t jerr;
    json_t *doc;

    snprintf(ready, sizeof(ready), "%s/ready.json", s->dir);
    if ((doc = json_load_file(ready, 0, &jerr)) == NULL)
        return -1;
    s->port = (int)json_integer_value(json_object_get(doc, "port"));
    s->ops_port = (int)json_integer_value(json_object_get(doc, "ops_port"));
    json_decref(doc);
    return s->port > 0 ? 0 : -1;
}

int signal_relays_healthy(const struct signal_proc *s)
{
    char *resp = http_get(s->port, "/healthz");
    const char *at = resp != NULL ? strstr(resp, "\"relays_healthy\":") : NULL;
    int n = -1;

    if (at != NULL)
        n = atoi(at + strlen("\"relays_healthy\":"));
    free(resp);
    return n;
}

/* At least one relay healthy (a configuration may name several). */
static bool harness_relays_healthy(struct signal_proc *s, bool tls)
{
    if (tls)
        return true; /* our tiny HTTP client does not speak TLS; wait instead */
    return signal_relays_healthy(s) >= 1;
}

/* Runs signaling on s->conf and waits until it serves with a healthy relay. */
static int harness_signal_spawn(struct signal_proc *s, bool tls)
{
    char *argv[] = {QR_SIGNAL_BIN, "--config", s->conf, NULL};
    uint64_t deadline;
    int status;

    if ((s->pid = fork()) == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
        execv(argv[0], argv);
        _exit(127);
    }
    for (deadline = now_ms() + HARNESS_START_MS; now_ms() < deadline; usleep(20000)) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            return -1;
        }
        if (harness_signal_ready(s) == 0 && harness_relays_healthy(s, tls)) {
            if (tls)
                usleep(QR_RELAY_POLL_MS * 1000 + 500000);
            return 0;
        }
    }
    return -1;
}

/* Copies the file name from dir `from` into dir `to`; 0 or -1. */
static int harness_copy(const char *from, const char *to, const char *name)
{
    char src[HARNESS_PATH], dst[HARNESS_PATH];
    char *text;
    FILE *f;
    int rc;

    snprintf(src, sizeof(src), "%s/%s", from, name);
    snprintf(dst, sizeof(dst), "%s/%s", to, name);
    if ((text = read_text(src)) == NULL || (f = fopen(dst, "w")) == NULL) {
        free(text);
        return -1;
    }
    rc = fputs(text, f) >= 0 ? 0 : -1;
    chmod(dst, 0600);
    free(text);
    return fclose(f) == 0 ? rc : -1;
}

int signal_start_replica(struct signal_proc *s, const struct signal_proc *first,
                         const struct relay_proc *r, const char *const *extra)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/qr-sig-XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        return -1;
    snprintf(s->conf, sizeof(s->conf), "%s/signal.ini", s->dir);
    snprintf(s->audit, sizeof(s->audit), "%s/audit.jsonl", s->dir);
    snprintf(s->log, sizeof(s->log), "%s/signal.log", s->dir);
    snprintf(s->ehr_key, sizeof(s->ehr_key), "%s/ehr.key", s->dir);
    snprintf(s->audit_key, sizeof(s->audit_key), "%s/audit.key", s->dir);
    if (harness_copy(first->dir, s->dir, "ehr.key") != 0 ||
        harness_copy(first->dir, s->dir, "ehr.jwks.json") != 0 ||
        harness_copy(first->dir, s->dir, "audit.key") != 0 ||
        harness_write_conf(s, r, false, extra) != 0)
        return -1;
    return harness_signal_spawn(s, false);
}

int signal_restart(struct signal_proc *s)
{
    char ready[HARNESS_PATH];
    FILE *f;

    if (s->pid != 0 || s->port <= 0 || (f = fopen(s->conf, "a")) == NULL)
        return -1;
    /* The last listen line wins: the same port, as a restarted server has. */
    fprintf(f, "listen = 127.0.0.1:%d\n", s->port);
    if (fclose(f) != 0)
        return -1;
    snprintf(ready, sizeof(ready), "%s/ready.json", s->dir);
    unlink(ready);
    return harness_signal_spawn(s, s->cert[0] != '\0');
}

int signal_start(struct signal_proc *s, const struct relay_proc *r, bool tls,
                 const char *const *extra)
{
    char prefix[HARNESS_PATH];
    char *keygen[] = {QR_CTL_BIN, "keygen", "--type", "ec", "--out", prefix, "--kid", "ehr-1",
                      NULL};
    char *audit_argv[] = {QR_CTL_BIN, "secret", "--out", s->audit_key, NULL};
    int status;

    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/qr-sig-XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        return -1;
    snprintf(s->conf, sizeof(s->conf), "%s/signal.ini", s->dir);
    snprintf(s->audit, sizeof(s->audit), "%s/audit.jsonl", s->dir);
    snprintf(s->log, sizeof(s->log), "%s/signal.log", s->dir);
    snprintf(prefix, sizeof(prefix), "%s/ehr", s->dir);
    snprintf(s->ehr_key, sizeof(s->ehr_key), "%s/ehr.key", s->dir);
    snprintf(s->audit_key, sizeof(s->audit_key), "%s/audit.key", s->dir);
    free(harness_run(keygen, &status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    free(harness_run(audit_argv, &status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    if ((tls && harness_make_cert(s) != 0) || harness_write_conf(s, r, tls, extra) != 0)
        return -1;
    return harness_signal_spawn(s, tls);
}

int signal_stop(struct signal_proc *s)
{
    struct relay_proc as_relay = {.pid = s->pid};
    int rc = relay_stop(&as_relay);

    s->pid = 0;
    s->exit_status = rc;
    return rc;
}

int signal_wait_exit(struct signal_proc *s, int timeout_ms)
{
    struct relay_proc as_relay = {.pid = s->pid};
    int rc = relay_wait(&as_relay, timeout_ms);

    if (rc != -2) {
        s->pid = 0;
        s->exit_status = rc;
    }
    return rc;
}

int signal_cleanup(struct signal_proc *s)
{
    char cmd[HARNESS_PATH + 16];
    int rc = 0;

    if (s->pid > 0)
        signal_stop(s);
    if (s->exit_status != 0) {
        char *log = read_text(s->log);

        fprintf(stderr, "signal exited with status %d; its log:\n%s\n", s->exit_status,
                log ? log : "(none)");
        free(log);
        rc = -1;
    }
    if (s->dir[0] != '\0' && getenv("QR_KEEP_TEST_DIRS") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", s->dir);
    }
    return rc;
}

char *http_get(int port, const char *path)
{
    return http_request(port, path, NULL);
}

char *http_request(int port, const char *path, const char *headers)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char req[1024], *out = NULL;
    size_t len = 0, cap = 0;
    int fd;

    sin.sin_addr.s_addr = htonl(0x7f000001);
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return NULL;
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n",
             path, headers ? headers : "");
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        close(fd);
        return NULL;
    }
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            out = realloc(out, cap);
        }
        if (poll(&p, 1, 2000) != 1 || (n = read(fd, out + len, cap - len - 1)) <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (out != NULL)
        out[len] = '\0';
    return out;
}

int http_status(const char *response)
{
    int code;

    if (response == NULL || sscanf(response, "HTTP/1.%*d %d", &code) != 1)
        return -1;
    return code;
}

const char *http_body(const char *response)
{
    const char *p = response ? strstr(response, "\r\n\r\n") : NULL;

    return p ? p + 4 : NULL;
}

char *mint_token(const struct signal_proc *s, const char *sid, const char *role, const char *sub,
                 const char *const *more)
{
    const char *argv[40] = {QR_CTL_BIN, "token", "--key", s->ehr_key, "--kid", "ehr-1",
                            "--sid", sid, "--role", role, "--sub", sub, "--iss", TEST_ISSUER,
                            "--aud", TEST_AUDIENCE};
    int n = 16, status;
    char *out;

    for (int i = 0; more != NULL && more[i] != NULL && n < 39; i++)
        argv[n++] = more[i];
    argv[n] = NULL;
    out = harness_run((char *const *)argv, &status);
    if (out == NULL || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        free(out);
        return NULL;
    }
    out[strcspn(out, "\r\n")] = '\0';
    return out;
}
