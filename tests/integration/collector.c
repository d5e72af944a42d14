/* rsyslogd as the audit collector of a test: a CA and certificates made by
 * the openssl CLI, a configuration of our own (no system sockets, no
 * kernel log, its own work directory), TLS on a loopback port, and a
 * witness file in rsyslog's standard RFC 5424 template. */
#include "collector.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define COLLECTOR_START_MS 10000
#define COLLECTOR_STOP_MS 10000
#define COLLECTOR_IO_MS 2000
#define COLLECTOR_MSG_MAX 4096

/* One certificate the CA signs: file stem, subject CN and extensions. */
struct collector_leaf {
    const char *stem;
    const char *cn;
    const char *ext;
};

static const struct collector_leaf collector_leaves[] = {
    {"server-localhost", "localhost",
     "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
     "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"},
    {"server-wrong", "wrong.example",
     "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
     "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:wrong.example\n"},
    {"client", "quietroom-audit-shipper",
     "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
     "extendedKeyUsage=clientAuth\n"},
};

/* The server certificate's file stem for each enum collector_cert. */
static const char *const collector_cert_stem[] = {"server-localhost", "server-wrong"};

/* Runs argv to completion; 0 if it exited 0, else -1 with its output printed. */
static int collector_run(char *const argv[])
{
    int code;
    char *out = run_command(argv, &code);

    if (code != 0)
        fprintf(stderr, "collector: %s exited %d:\n%s\n", argv[0], code, out ? out : "");
    free(out);
    return code == 0 ? 0 : -1;
}

static int collector_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* The test CA, and each leaf signed by it. Keys are P-256: both rsyslog
 * drivers and the daemons take them. */
static int collector_make_certs(struct collector *c)
{
    char key[HARNESS_PATH], crt[HARNESS_PATH], csr[HARNESS_PATH], ext[HARNESS_PATH];
    char cakey[HARNESS_PATH], subj[96], serial[16];
    char *ca_argv[] = {QR_OPENSSL_BIN, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                       "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                       "/CN=Quietroom test collector CA", "-keyout", cakey, "-out", c->ca, NULL};
    char *req_argv[] = {QR_OPENSSL_BIN, "req", "-new", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-subj", subj, "-keyout", key,
                        "-out", csr, NULL};
    char *sign_argv[] = {QR_OPENSSL_BIN, "x509", "-req", "-in", csr, "-CA", c->ca, "-CAkey",
                         cakey, "-set_serial", serial, "-days", "2", "-extfile", ext, "-out",
                         crt, NULL};

    snprintf(cakey, sizeof(cakey), "%s/ca.key", c->dir);
    snprintf(c->ca, sizeof(c->ca), "%s/ca.crt", c->dir);
    if (collector_run(ca_argv) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(collector_leaves) / sizeof(collector_leaves[0]); i++) {
        const struct collector_leaf *l = &collector_leaves[i];

        snprintf(key, sizeof(key), "%s/%s.key", c->dir, l->stem);
        snprintf(crt, sizeof(crt), "%s/%s.crt", c->dir, l->stem);
        snprintf(csr, sizeof(csr), "%s/%s.csr", c->dir, l->stem);
        snprintf(ext, sizeof(ext), "%s/%s.ext", c->dir, l->stem);
        snprintf(subj, sizeof(subj), "/CN=%s", l->cn);
        snprintf(serial, sizeof(serial), "%zu", i + 2);
        if (collector_write_file(ext, l->ext) != 0 || collector_run(req_argv) != 0 ||
            collector_run(sign_argv) != 0)
            return -1;
    }
    snprintf(c->client_cert, sizeof(c->client_cert), "%s/client.crt", c->dir);
    snprintf(c->client_key, sizeof(c->client_key), "%s/client.key", c->dir);
    return 0;
}

/* A loopback TCP port nobody listens on now. rsyslog binds it a moment
 * later; another process taking it in between would fail the start
 * loudly, not silently. */
static int collector_free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

/* Replaces the one occurrence of from in *text by to; -1 if from is not
 * there (the shipped configuration changed: the test must follow it). */
static int collector_subst(char **text, const char *from, const char *to)
{
    char *at = strstr(*text, from), *out;
    size_t head, fl = strlen(from), tl = strlen(to), len = strlen(*text);

    if (at == NULL) {
        fprintf(stderr, "collector: \"%s\" not in %s\n", from, QR_COLLECTOR_CONF);
        return -1;
    }
    head = (size_t)(at - *text);
    if ((out = malloc(len - fl + tl + 1)) == NULL)
        return -1;
    memcpy(out, *text, head);
    memcpy(out + head, to, tl);
    memcpy(out + head + tl, at + fl, len - head - fl + 1);
    free(*text);
    *text = out;
    return 0;
}

/* The configuration operators are given (deploy/collector/
 * rsyslog-quietroom.conf), with this test's paths, port, driver and client
 * authentication put in, and a work directory of its own. */
static int collector_write_conf(const struct collector *c)
{
    const char *stem = collector_cert_stem[c->cert];
    char *text = read_text(QR_COLLECTOR_CONF), cert[PATH_MAX + 32], key[PATH_MAX + 32],
         listen[64], ddriver[64], mdriver[64], global[PATH_MAX + 64];
    int rc = -1;

    if (text == NULL)
        return -1;
    snprintf(cert, sizeof(cert), "%s/%s.crt", c->dir, stem);
    snprintf(key, sizeof(key), "%s/%s.key", c->dir, stem);
    snprintf(listen, sizeof(listen), "address=\"127.0.0.1\" port=\"%d\"", c->port);
    snprintf(ddriver, sizeof(ddriver), "DefaultNetstreamDriver=\"%s\"", c->driver);
    snprintf(mdriver, sizeof(mdriver), "StreamDriver.Name=\"%s\"", c->driver);
    snprintf(global, sizeof(global), "global(workDirectory=\"%s/work\")\n", c->dir);
    if (collector_subst(&text, "/etc/rsyslog-tls/ca.pem", c->ca) == 0 &&
        collector_subst(&text, "/etc/rsyslog-tls/collector.pem", cert) == 0 &&
        collector_subst(&text, "/etc/rsyslog-tls/collector.key", key) == 0 &&
        collector_subst(&text, "/var/log/quietroom/audit-witness.log", c->witness) == 0 &&
        collector_subst(&text, "port=\"6514\"", listen) == 0 &&
        collector_subst(&text, "DefaultNetstreamDriver=\"ossl\"", ddriver) == 0 &&
        collector_subst(&text, "StreamDriver.Name=\"ossl\"", mdriver) == 0 &&
        (c->require_client_cert ||
         collector_subst(&text, "AuthMode=\"x509/certvalid\"", "AuthMode=\"anon\"") == 0))
        rc = collector_write_file(c->conf, global) == 0 ? 0 : -1;
    if (rc == 0) {
        FILE *f = fopen(c->conf, "a");

        rc = f != NULL && fputs(text, f) >= 0 && fclose(f) == 0 ? 0 : -1;
    }
    free(text);
    return rc;
}

int collector_check(const char **driver, char *why, size_t whylen)
{
    static const char *const drivers[] = {"ossl", "gtls"};
    char conf[] = "/tmp/qr-rsyslog-check-XXXXXX";
    int fd;

    *driver = NULL;
    if (access(QR_RSYSLOGD_BIN, X_OK) != 0) {
        snprintf(why, whylen, "no rsyslogd (%s): apt-get install rsyslog rsyslog-openssl",
                 QR_RSYSLOGD_BIN);
        return -1;
    }
    if (access(QR_OPENSSL_BIN, X_OK) != 0) {
        snprintf(why, whylen, "no openssl CLI (%s)", QR_OPENSSL_BIN);
        return -1;
    }
    if ((fd = mkstemp(conf)) < 0) {
        snprintf(why, whylen, "mkstemp: %s", strerror(errno));
        return -1;
    }
    close(fd);
    /* A configuration check loads the modules it names: a driver that is
     * not installed fails it. */
    for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]) && *driver == NULL; i++) {
        char text[128], *out;
        char *argv[] = {QR_RSYSLOGD_BIN, "-N1", "-f", conf, NULL};
        int code;

        snprintf(text, sizeof(text), "module(load=\"lmnsd_%s\")\naction(type=\"omfile\" "
                                     "file=\"/dev/null\")\n", drivers[i]);
        if (collector_write_file(conf, text) != 0)
            break;
        out = run_command(argv, &code);
        free(out);
        if (code == 0)
            *driver = drivers[i];
    }
    unlink(conf);
    if (*driver == NULL) {
        snprintf(why, whylen, "rsyslogd has no TLS driver: apt-get install rsyslog-openssl "
                              "(or rsyslog-gnutls)");
        return -1;
    }
    return 0;
}

/* --- TLS client ---------------------------------------------------------------- */

struct collector_conn {
    int fd;
    SSL *ssl;
};

static void collector_close(struct collector_conn *k)
{
    if (k->ssl != NULL) {
        SSL_shutdown(k->ssl);
        SSL_free(k->ssl);
    }
    if (k->fd >= 0)
        close(k->fd);
    k->ssl = NULL;
    k->fd = -1;
}

/* Connects and completes a handshake that verifies the collector under the
 * test CA for name (an IP address or a DNS name), or for the name its
 * current certificate carries if name is NULL: proof that it is up and
 * presents the certificate asked for. */
static int collector_connect(const struct collector *c, const char *name,
                             struct collector_conn *k, char *why, size_t whylen)
{
    struct in_addr ip;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    struct timeval tv = {.tv_sec = COLLECTOR_IO_MS / 1000};
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    X509_VERIFY_PARAM *param;
    int rc = -1;

    k->fd = -1;
    k->ssl = NULL;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, c->ca, NULL) != 1) {
        snprintf(why, whylen, "cannot load %s", c->ca);
        goto out;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (c->require_client_cert &&
        (SSL_CTX_use_certificate_file(ctx, c->client_cert, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx, c->client_key, SSL_FILETYPE_PEM) != 1)) {
        snprintf(why, whylen, "cannot load %s", c->client_cert);
        goto out;
    }
    if ((k->ssl = SSL_new(ctx)) == NULL)
        goto out;
    param = SSL_get0_param(k->ssl);
    if (name == NULL)
        name = c->cert == COLLECTOR_CERT_LOCALHOST ? "127.0.0.1" : "wrong.example";
    if (inet_pton(AF_INET, name, &ip) == 1)
        X509_VERIFY_PARAM_set1_ip_asc(param, name);
    else
        X509_VERIFY_PARAM_set1_host(param, name, 0);
    if ((k->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(k->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(k->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(k->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        snprintf(why, whylen, "connect 127.0.0.1:%d: %s", c->port, strerror(errno));
        goto out;
    }
    SSL_set_fd(k->ssl, k->fd);
    if (SSL_connect(k->ssl) != 1) {
        const char *reason = ERR_reason_error_string(ERR_peek_last_error());

        snprintf(why, whylen, "TLS handshake: %s (verify: %s)", reason ? reason : "failed",
                 X509_verify_cert_error_string(SSL_get_verify_result(k->ssl)));
        ERR_clear_error();
        goto out;
    }
    rc = 0;
out:
    SSL_CTX_free(ctx);
    if (rc != 0)
        collector_close(k);
    return rc;
}

int collector_handshake(const struct collector *c, const char *name, char *why, size_t whylen)
{
    struct collector_conn k;

    if (collector_connect(c, name, &k, why, whylen) != 0)
        return -1;
    collector_close(&k);
    return 0;
}

int collector_send(const struct collector *c, const char *app, const char *msgid,
                   const char *msg, char *why, size_t whylen)
{
    char host[64] = "localhost", stamp[32], body[COLLECTOR_MSG_MAX], frame[COLLECTOR_MSG_MAX + 16];
    struct timespec ts;
    struct tm tm;
    struct collector_conn k;
    int n, m, rc = -1;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    gethostname(host, sizeof(host) - 1);
    /* <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG; PRI 110 is
     * facility log audit (13), severity info. */
    n = snprintf(body, sizeof(body), "<110>1 %s.%03ldZ %s %s %ld %s - %s", stamp,
                 ts.tv_nsec / 1000000, host, app, (long)getpid(), msgid, msg);
    if (n < 0 || (size_t)n >= sizeof(body)) {
        snprintf(why, whylen, "message too long");
        return -1;
    }
    m = snprintf(frame, sizeof(frame), "%d %s", n, body);
    if (collector_connect(c, NULL, &k, why, whylen) != 0)
        return -1;
    if (SSL_write(k.ssl, frame, m) == m)
        rc = 0;
    else
        snprintf(why, whylen, "TLS write failed");
    collector_close(&k);
    return rc;
}

/* --- the process ----------------------------------------------------------------- */

static pid_t collector_spawn(const struct collector *c)
{
    char *argv[] = {QR_RSYSLOGD_BIN, "-n", "-f", (char *)c->conf, "-i", (char *)c->pidfile, NULL};
    pid_t parent = getpid(), pid = fork();

    if (pid == 0) {
        int fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

        /* A test that dies (a crash, ctest's timeout) takes rsyslogd with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(null, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static void collector_print_log(const struct collector *c, const char *why)
{
    char *log = read_text(c->log);

    fprintf(stderr, "collector: %s; rsyslogd's output:\n%s\n", why, log ? log : "(none)");
    free(log);
}

/* Starts rsyslogd on c's configuration and waits for a verified handshake. */
static int collector_launch(struct collector *c, enum collector_cert cert)
{
    char why[256] = "did not listen";
    int status;

    c->cert = cert;
    if (collector_write_conf(c) != 0 || (c->pid = collector_spawn(c)) < 0) {
        c->pid = 0;
        return -1;
    }
    for (uint64_t deadline = now_ms() + COLLECTOR_START_MS; now_ms() < deadline;
         usleep(50000)) {
        struct collector_conn k;

        if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
            c->pid = 0;
            collector_print_log(c, "rsyslogd exited at start");
            return -1;
        }
        if (collector_connect(c, NULL, &k, why, sizeof(why)) == 0) {
            collector_close(&k);
            return 0;
        }
    }
    collector_print_log(c, why);
    collector_stop(c);
    return -1;
}

int collector_start(struct collector *c, enum collector_cert cert, bool require_client_cert)
{
    char why[256];

    memset(c, 0, sizeof(*c));
    c->require_client_cert = require_client_cert;
    if (collector_check(&c->driver, why, sizeof(why)) != 0) {
        fprintf(stderr, "collector: %s\n", why);
        return -1;
    }
    snprintf(c->dir, sizeof(c->dir), "/tmp/qr-syslog-XXXXXX");
    if (mkdtemp(c->dir) == NULL)
        return -1;
    snprintf(c->witness, sizeof(c->witness), "%s/witness.log", c->dir);
    snprintf(c->conf, sizeof(c->conf), "%s/rsyslog.conf", c->dir);
    snprintf(c->pidfile, sizeof(c->pidfile), "%s/rsyslogd.pid", c->dir);
    snprintf(c->log, sizeof(c->log), "%s/rsyslogd.out", c->dir);
    snprintf(why, sizeof(why), "%s/work", c->dir);
    if (mkdir(why, 0700) != 0 || collector_make_certs(c) != 0 ||
        (c->port = collector_free_port()) <= 0)
        return -1;
    snprintf(c->addr, sizeof(c->addr), "127.0.0.1:%d", c->port);
    return collector_launch(c, cert);
}

int collector_restart(struct collector *c, enum collector_cert cert)
{
    if (c->pid != 0 || c->port <= 0)
        return -1;
    return collector_launch(c, cert);
}

int collector_stop(struct collector *c)
{
    int status;

    if (c->pid <= 0)
        return -1;
    kill(c->pid, SIGTERM);
    for (uint64_t deadline = now_ms() + COLLECTOR_STOP_MS; now_ms() < deadline; usleep(10000)) {
        if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
            c->pid = 0;
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
        }
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &status, 0);
    c->pid = 0;
    return -1;
}

int collector_survivors(const struct collector *c)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    if (d == NULL || c->conf[0] == '\0') {
        if (d != NULL)
            closedir(d);
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        char path[300], cmdline[1024];
        size_t len;
        FILE *f;

        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        len = fread(cmdline, 1, sizeof(cmdline) - 1, f);
        fclose(f);
        /* argv is NUL-separated: compare argument by argument. */
        for (size_t i = 0; i < len; i += strlen(cmdline + i) + 1) {
            cmdline[len] = '\0';
            if (strcmp(cmdline + i, c->conf) == 0) {
                n++;
                break;
            }
        }
    }
    closedir(d);
    return n;
}

int collector_cleanup(struct collector *c)
{
    char cmd[HARNESS_PATH + 16];
    int rc = 0;

    if (c->pid > 0 && collector_stop(c) != 0) {
        collector_print_log(c, "rsyslogd did not stop cleanly");
        rc = -1;
    }
    if (collector_survivors(c) != 0) {
        fprintf(stderr, "collector: an rsyslogd on %s still runs\n", c->conf);
        rc = -1;
    }
    if (c->dir[0] != '\0' && getenv("QR_KEEP_TEST_DIRS") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf %s", c->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", c->dir);
    }
    memset(c, 0, sizeof(*c));
    return rc;
}

char *collector_witness(const struct collector *c)
{
    char *text = read_text(c->witness);

    return text != NULL ? text : strdup("");
}

bool collector_wait_for(const struct collector *c, const char *needle, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        char *text = collector_witness(c);
        bool found = strstr(text, needle) != NULL;

        free(text);
        if (found)
            return true;
        if (now_ms() >= deadline)
            return false;
        usleep(20000);
    }
}
