/* Shipping audit records to a syslog collector over TLS (audit_ship.c,
 * audit_syslog.c), against a real TLS collector in this process: an
 * OpenSSL server thread that reads RFC 5425 octet-counted frames, with
 * certificates made by the openssl command for the test.
 *   - the frame, the target syntax and the option checks, on their own;
 *   - every record reaches the collector, in order, byte-identical to the
 *     local line, through rotations;
 *   - the collector dropping the connection: records are sent again, none
 *     is missing, and the chain records the stop and the resumption;
 *   - a collector whose certificate names another host gets nothing;
 *   - closing the log delivers what is queued. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "quietroom/audit/audit.h"
#include "quietroom/audit/audit_settings.h"
#include "quietroom/audit/audit_ship.h"
#include "quietroom/audit/audit_syslog.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/limits.h"

#define KEY_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define WAIT_MS 10000
#define MSGS_MAX 32768

/* --- the collector ------------------------------------------------------------------- */

struct collector {
    SSL_CTX *ctx;
    int lfd;
    uint16_t port;
    pthread_t thread;
    pthread_mutex_t lock;
    bool stop;
    bool drop;               /* close the current connection now */
    bool slam;               /* close every connection after its handshake */
    bool paused;             /* accept nothing (connections wait in the backlog) */
    bool stall;              /* read nothing (the socket buffer fills) */
    unsigned connections, handshakes_failed;
    char *msgs[MSGS_MAX];    /* each received SYSLOG-MSG, in order */
    size_t n;
};

static char dir[] = "/tmp/qr-ship-XXXXXX";

static int read_full(SSL *ssl, char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        int n = SSL_read(ssl, buf + got, (int)(len - got));

        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

/* One octet-counted frame: its SYSLOG-MSG (malloc'd), or NULL at the end. */
static char *read_frame(SSL *ssl)
{
    char digits[12], *msg;
    size_t k = 0, len;

    for (;;) {
        if (k == sizeof(digits) - 1 || read_full(ssl, &digits[k], 1) != 0)
            return NULL;
        if (digits[k] == ' ')
            break;
        k++;
    }
    digits[k] = '\0';
    len = strtoul(digits, NULL, 10);
    if (len == 0 || len > 1024 * 1024 || (msg = malloc(len + 1)) == NULL)
        return NULL;
    if (read_full(ssl, msg, len) != 0) {
        free(msg);
        return NULL;
    }
    msg[len] = '\0';
    return msg;
}

static bool collector_dropping(struct collector *c)
{
    pthread_mutex_lock(&c->lock);
    bool drop = c->drop || c->stop;
    c->drop = false;
    pthread_mutex_unlock(&c->lock);
    return drop;
}

static void collector_serve(struct collector *c, int fd)
{
    SSL *ssl = SSL_new(c->ctx);
    struct pollfd p = {.fd = fd, .events = POLLIN};

    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) {
        pthread_mutex_lock(&c->lock);
        c->handshakes_failed++;
        pthread_mutex_unlock(&c->lock);
        goto out;
    }
    pthread_mutex_lock(&c->lock);
    c->connections++;
    bool slam = c->slam;
    pthread_mutex_unlock(&c->lock);
    if (slam)
        goto out;
    while (!collector_dropping(c)) {
        char *msg;

        pthread_mutex_lock(&c->lock);
        bool stall = c->stall;
        pthread_mutex_unlock(&c->lock);
        if (stall) {
            usleep(20000);
            continue;
        }
        if (SSL_pending(ssl) == 0 && poll(&p, 1, 20) != 1)
            continue;
        if ((msg = read_frame(ssl)) == NULL)
            break;
        pthread_mutex_lock(&c->lock);
        if (c->n < MSGS_MAX)
            c->msgs[c->n++] = msg;
        else
            free(msg);
        pthread_mutex_unlock(&c->lock);
    }
out:
    SSL_free(ssl);
    close(fd);
    ERR_clear_error();
}

static void *collector_main(void *arg)
{
    struct collector *c = arg;
    struct pollfd p = {.fd = c->lfd, .events = POLLIN};

    for (;;) {
        pthread_mutex_lock(&c->lock);
        bool stop = c->stop;
        pthread_mutex_unlock(&c->lock);
        if (stop)
            break;
        pthread_mutex_lock(&c->lock);
        bool paused = c->paused;
        pthread_mutex_unlock(&c->lock);
        if (paused) {
            usleep(20000);
            continue;
        }
        if (poll(&p, 1, 20) == 1) {
            int fd = accept(c->lfd, NULL, NULL);

            if (fd >= 0)
                collector_serve(c, fd);
        }
    }
    return NULL;
}

/* A collector presenting cert (a name under dir) on a fresh loopback port. */
static struct collector *collector_start(const char *cert)
{
    struct collector *c = calloc(1, sizeof(*c));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    char crt[256], key[256];

    assert_non_null(c);
    snprintf(crt, sizeof(crt), "%s/%s.pem", dir, cert);
    snprintf(key, sizeof(key), "%s/%s.key", dir, cert);
    pthread_mutex_init(&c->lock, NULL);
    assert_non_null(c->ctx = SSL_CTX_new(TLS_server_method()));
    assert_int_equal(SSL_CTX_use_certificate_file(c->ctx, crt, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM), 1);
    assert_true((c->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
    assert_int_equal(bind(c->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(c->lfd, 8), 0);
    assert_int_equal(getsockname(c->lfd, (struct sockaddr *)&a, &al), 0);
    c->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&c->thread, NULL, collector_main, c), 0);
    return c;
}

static void collector_stop(struct collector *c)
{
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    close(c->lfd);
    SSL_CTX_free(c->ctx);
    for (size_t i = 0; i < c->n; i++)
        free(c->msgs[i]);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static void collector_set(struct collector *c, bool *flag, bool v)
{
    pthread_mutex_lock(&c->lock);
    *flag = v;
    pthread_mutex_unlock(&c->lock);
}

static size_t collector_count(struct collector *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->n;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* The MSG of a SYSLOG-MSG: what follows its seven header fields. */
static const char *msg_of(const char *syslog_msg)
{
    const char *p = syslog_msg;

    for (int spaces = 0; spaces < 7; spaces++) {
        p = strchr(p, ' ');
        assert_non_null(p);
        p++;
    }
    return p;
}

/* --- fixtures --------------------------------------------------------------------- */

static int make_certs(void **state)
{
    char cmd[2048];

    (void)state;
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd),
             "set -e; cd %s; "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
             "-out ca.pem -days 2 -subj /CN=qr-test-ca; "
             "for n in localhost wrong; do "
             "  if [ $n = localhost ]; then san='DNS:localhost,IP:127.0.0.1'; "
             "  else san='DNS:wrong.example'; fi; "
             "  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key "
             "    -out $n.csr -subj /CN=$n; "
             "  printf 'subjectAltName=%%s\\n' \"$san\" > $n.ext; "
             "  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "    -out $n.pem -days 2 -extfile $n.ext; "
             "done 2>/dev/null; "
             "printf '1 %s\\n' > audit.key; chmod 600 audit.key",
             dir, KEY_HEX);
    return system(cmd) == 0 ? 0 : -1;
}

static int remove_certs(void **state)
{
    char cmd[256];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

struct shipped {
    struct audit_log *log;
    char path[256];
    struct keyring keys;
};

static void ship_config(struct audit_ship_config *c, const char *host, uint16_t port)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->host, sizeof(c->host), "%s", host);
    snprintf(c->port, sizeof(c->port), "%u", port);
    snprintf(c->ca_file, sizeof(c->ca_file), "%s/ca.pem", dir);
}

/* A fresh log shipping to host:port; rotate_bytes 0 is the default. */
static void open_log(struct shipped *s, const char *name, const struct audit_ship_config *ship,
                     uint64_t rotate_bytes)
{
    char keyfile[256], err[256] = "";
    struct audit_config cfg = {.node = "n1", .ship = ship, .program = "qr-test",
                               .rotate_bytes = rotate_bytes};

    snprintf(s->path, sizeof(s->path), "%s/%s.jsonl", dir, name);
    snprintf(keyfile, sizeof(keyfile), "%s/audit.key", dir);
    assert_int_equal(keyring_load(keyfile, &s->keys, err, sizeof(err)), 0);
    cfg.path = s->path;
    cfg.keys = &s->keys;
    s->log = audit_open(&cfg, err, sizeof(err));
    if (s->log == NULL)
        fail_msg("audit_open: %s", err);
}

static void emit(struct shipped *s, int n)
{
    for (int i = 0; i < n; i++) {
        json_t *ev = audit_event("test.event", 'E', AUDIT_SUCCESS);

        audit_event_detail(ev, "i", json_integer(i));
        assert_int_equal(audit_emit(s->log, ev), 0);
    }
    audit_flush(s->log);
}

/* Every line of the log's files (active and rotated, oldest first). */
static size_t local_lines(const struct shipped *s, char ***out)
{
    char cmd[1024], *line = NULL, **lines = NULL, files[64][256];
    size_t cap = 0, n = 0, nf = 0;
    FILE *fp;

    snprintf(cmd, sizeof(cmd), "ls %s.2* 2>/dev/null | sort; echo %s", s->path, s->path);
    assert_non_null(fp = popen(cmd, "r"));
    while (nf < 64 && fgets(files[nf], sizeof(files[nf]), fp) != NULL) {
        files[nf][strcspn(files[nf], "\n")] = '\0';
        nf++;
    }
    pclose(fp);
    for (size_t f = 0; f < nf; f++) {
        FILE *lf = fopen(files[f], "r");
        ssize_t len;

        assert_non_null(lf);
        while ((len = getline(&line, &cap, lf)) > 0) {
            line[len - 1] = '\0';
            assert_non_null(lines = realloc(lines, (n + 1) * sizeof(*lines)));
            assert_non_null(lines[n++] = strdup(line));
        }
        fclose(lf);
    }
    free(line);
    *out = lines;
    return n;
}

static void free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

/* Checks that every local line reached the collector, the first copies in
 * order, and that every message received is a local line (duplicates
 * byte-identical). False with why if not (yet); dups counts the copies. */
static bool witnessed(struct collector *c, const struct shipped *s, size_t *dups, char *why,
                      size_t len)
{
    char **lines;
    size_t n = local_lines(s, &lines), next = 0;
    bool ok = true;

    /* A line too long to be a record is not shipped (test_overlong_line). */
    for (size_t i = 0; i < n; i++) {
        if (strlen(lines[i]) > QR_AUDIT_SHIP_LINE_MAX) {
            free(lines[i]);
            memmove(&lines[i], &lines[i + 1], (n - i - 1) * sizeof(*lines));
            n--;
            i--;
        }
    }

    *dups = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n && ok; i++) {
        const char *m = msg_of(c->msgs[i]);
        size_t k;

        if (next < n && strcmp(m, lines[next]) == 0) {
            next++;
            continue;
        }
        for (k = 0; k < next && strcmp(m, lines[k]) != 0; k++)
            ;
        if (k == next) {
            snprintf(why, len, "message %zu is not the next local line (%zu): %.80s", i, next, m);
            ok = false;
        }
        (*dups)++;
    }
    pthread_mutex_unlock(&c->lock);
    if (ok && next != n) {
        snprintf(why, len, "the collector has %zu of %zu local lines", next, n);
        ok = false;
    }
    free_lines(lines, n);
    return ok;
}

static size_t assert_witnessed(struct collector *c, const struct shipped *s)
{
    char why[256];
    size_t dups;

    if (!witnessed(c, s, &dups, why, sizeof(why)))
        fail_msg("%s", why);
    return dups;
}

/* Waits until the collector holds every local line. */
static void wait_witnessed(struct collector *c, const struct shipped *s)
{
    uint64_t until = clock_mono_ms() + WAIT_MS;
    char why[256];
    size_t dups;

    while (!witnessed(c, s, &dups, why, sizeof(why))) {
        if (clock_mono_ms() > until)
            fail_msg("after %d ms: %s", WAIT_MS, why);
        usleep(20000);
    }
}

static void wait_count(struct collector *c, size_t want)
{
    uint64_t until = clock_mono_ms() + WAIT_MS;

    while (collector_count(c) < want && clock_mono_ms() < until)
        usleep(10000);
    if (collector_count(c) < want)
        fail_msg("the collector has %zu messages, want %zu", collector_count(c), want);
}

/* Closes the log, checks the collector has every record, stops it. */
static void finish(struct collector *c, struct shipped *s)
{
    audit_close(s->log);
    assert_witnessed(c, s);
    keyring_wipe(&s->keys);
    collector_stop(c);
}

/* --- the frame and the options ------------------------------------------------------- */

static void test_frame(void **state)
{
    struct audit_syslog_head h = {.severity = 5,
                                  .timestamp = "2026-12-05T16:22:18.772Z",
                                  .hostname = "vm1",
                                  .app = "quietroom-relay",
                                  .procid = 4242,
                                  .msgid = "audit.open"};
    const char *msg = "{\"seq\":1}";
    const char *want = "<85>1 2026-12-05T16:22:18.772Z vm1 quietroom-relay 4242 audit.open - "
                       "{\"seq\":1}";
    char out[512], expect[512];
    size_t n;

    (void)state;
    snprintf(expect, sizeof(expect), "%zu %s", strlen(want), want);
    n = audit_syslog_frame(out, sizeof(out), &h, msg, strlen(msg));
    assert_int_equal(n, strlen(expect));
    assert_memory_equal(out, expect, n);
    /* Fields that RFC 5424 would not allow become NILVALUE. */
    h = (struct audit_syslog_head){.severity = 3, .hostname = "two words", .app = "",
                                   .msgid = "a-msgid-longer-than-thirty-two-characters"};
    n = audit_syslog_frame(out, sizeof(out), &h, msg, strlen(msg));
    out[n] = '\0';
    assert_string_equal(out, "27 <83>1 - - - - - - {\"seq\":1}");
    /* No room: nothing. */
    assert_int_equal(audit_syslog_frame(out, 10, &h, msg, strlen(msg)), 0);
    assert_int_equal(audit_syslog_severity(0), 5);
    assert_int_equal(audit_syslog_severity(4), 4);
    assert_int_equal(audit_syslog_severity(8), 3);
    assert_int_equal(audit_syslog_severity(12), 3);
}

static void test_target(void **state)
{
    static const char *const bad[] = {"host",       "host:0",     "host:65536", ":6514",
                                      "[::1]6514",  "host:65a",   "[::1]:",     "a b:6514",
                                      "[]:6514",    "host:-1"};
    struct audit_ship_config c;
    char err[128];

    (void)state;
    assert_int_equal(audit_ship_parse_target(&c, "collector.example:6514", err, sizeof(err)), 0);
    assert_string_equal(c.host, "collector.example");
    assert_string_equal(c.port, "6514");
    assert_int_equal(audit_ship_parse_target(&c, "[::1]:10514", err, sizeof(err)), 0);
    assert_string_equal(c.host, "::1");
    assert_string_equal(c.port, "10514");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (audit_ship_parse_target(&c, bad[i], err, sizeof(err)) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_non_null(strstr(err, "HOST:PORT"));
    }
}

static int set_option(struct audit_settings *s, const char *name, const char *value)
{
    char err[256];

    for (size_t i = 0; i < AUDIT_SETTINGS_N_OPTIONS; i++) {
        if (strcmp(audit_settings_options[i].name, name) == 0)
            return audit_settings_options[i].set(s, value, err, sizeof(err));
    }
    fail_msg("no option %s", name);
    return -1;
}

/* The shipping options make sense only together; each refusal says why. */
static void test_options(void **state)
{
    struct audit_settings s;
    char err[512], path[256], keyfile[256];

    (void)state;
    snprintf(path, sizeof(path), "%s/options.jsonl", dir);
    snprintf(keyfile, sizeof(keyfile), "%s/audit.key", dir);
    memset(&s, 0, sizeof(s));
    set_option(&s, "audit-log", path);
    set_option(&s, "audit-key-file", keyfile);
    assert_int_equal(set_option(&s, "audit-syslog", "localhost:6514"), 0);
    assert_null(audit_settings_open(&s, "n1", "qr-test", err, sizeof(err)));
    assert_non_null(strstr(err, "audit-syslog-ca"));
    set_option(&s, "audit-syslog-ca", "/nonexistent/ca.pem");
    assert_null(audit_settings_open(&s, "n1", "qr-test", err, sizeof(err)));
    assert_non_null(strstr(err, "CA file"));
    set_option(&s, "audit-syslog-cert", "/tmp/c.pem");
    assert_null(audit_settings_open(&s, "n1", "qr-test", err, sizeof(err)));
    assert_non_null(strstr(err, "go together"));
    assert_int_not_equal(set_option(&s, "audit-syslog-name", "two words"), 0);
    memset(&s, 0, sizeof(s));
    set_option(&s, "audit-log", path);
    set_option(&s, "audit-key-file", keyfile);
    set_option(&s, "audit-syslog-ca", "/tmp/ca.pem");
    assert_null(audit_settings_open(&s, "n1", "qr-test", err, sizeof(err)));
    assert_non_null(strstr(err, "need audit-syslog HOST:PORT"));
}

/* --- shipping --------------------------------------------------------------------------- */

/* Every record, in order, byte-identical, with the header the issue names;
 * the rotations (a small rotate size) are followed. */
static void test_every_record_in_order(void **state)
{
    struct collector *c = collector_start("localhost");
    struct audit_ship_config cfg;
    struct audit_ship_counters k;
    struct shipped s;

    (void)state;
    ship_config(&cfg, "localhost", c->port);
    open_log(&s, "order", &cfg, 16 * 1024);
    /* Rotation names have one-second stamps: two bursts, two rotations. */
    emit(&s, 150);
    usleep(1100 * 1000);
    emit(&s, 150);
    assert_true(audit_get_ship_counters(s.log, &k));
    audit_close(s.log);
    assert_int_equal(assert_witnessed(c, &s), 0);
    /* The header: facility 10, the APP-NAME given, the record's type. */
    pthread_mutex_lock(&c->lock);
    assert_non_null(strstr(c->msgs[0], "<85>1 "));
    assert_non_null(strstr(c->msgs[0], " qr-test "));
    assert_non_null(strstr(c->msgs[0], " audit.open - {"));
    assert_non_null(strstr(c->msgs[c->n - 1], " audit.close - {"));
    pthread_mutex_unlock(&c->lock);
    {
        char cmd[1024];

        /* It did rotate, more than once. */
        snprintf(cmd, sizeof(cmd), "test $(ls %s.2* | wc -l) -ge 2", s.path);
        assert_int_equal(system(cmd), 0);
    }
    keyring_wipe(&s.keys);
    collector_stop(c);
}

static bool chain_has(const struct shipped *s, const char *fragment)
{
    char **lines;
    size_t n = local_lines(s, &lines);
    bool found = false;

    for (size_t i = 0; i < n && !found; i++)
        found = strstr(lines[i], fragment) != NULL;
    free_lines(lines, n);
    return found;
}

static void wait_chain_has(const struct shipped *s, const char *fragment)
{
    uint64_t until = clock_mono_ms() + WAIT_MS;

    while (!chain_has(s, fragment)) {
        if (clock_mono_ms() > until)
            fail_msg("no record with %s", fragment);
        usleep(20000);
    }
}

/* The collector drops the connection twice while records are made: the
 * shipper reconnects and sends again what was not known delivered. Only
 * a connection that delivered counts as shipping resumed. */
static void test_dropped_connection_loses_nothing(void **state)
{
    struct collector *c = collector_start("localhost");
    struct audit_ship_config cfg;
    struct audit_ship_counters k;
    struct shipped s;

    (void)state;
    ship_config(&cfg, "127.0.0.1", c->port);
    open_log(&s, "drop", &cfg, 0);
    emit(&s, 50);
    wait_count(c, 51); /* audit.open and 50 */
    for (int round = 0; round < 2; round++) {
        pthread_mutex_lock(&c->lock);
        c->drop = true;
        pthread_mutex_unlock(&c->lock);
        emit(&s, 50);
    }
    emit(&s, 10);
    wait_chain_has(&s, "\"reason\":\"resumed\"");
    wait_witnessed(c, &s);
    assert_true(audit_get_ship_counters(s.log, &k));
    assert_true(k.connects_ok >= 2);
    assert_true(k.resent > 0);
    audit_close(s.log);
    print_message("duplicates at the collector: %zu (resent %llu)\n", assert_witnessed(c, &s),
                  (unsigned long long)k.resent);
    assert_true(chain_has(&s, "\"type\":\"audit.ship\",\"action\":\"E\",\"outcome\":4,"
                              "\"reason\":\"stopped\""));
    assert_true(chain_has(&s, "\"reason\":\"resumed\""));
    keyring_wipe(&s.keys);
    collector_stop(c);
}

/* A certificate for another name: refused, nothing sent; the log works. */
static void test_wrong_name_gets_nothing(void **state)
{
    struct collector *c = collector_start("wrong");
    struct audit_ship_config cfg;
    struct audit_ship_counters k;
    struct shipped s;
    uint64_t until = clock_mono_ms() + WAIT_MS;

    (void)state;
    ship_config(&cfg, "localhost", c->port);
    open_log(&s, "wrong", &cfg, 0);
    emit(&s, 20);
    do {
        usleep(20000);
        assert_true(audit_get_ship_counters(s.log, &k));
    } while (k.refused_certificate < 2 && clock_mono_ms() < until);
    assert_true(k.refused_certificate >= 2);
    assert_int_equal(k.connects_ok, 0);
    assert_int_equal(k.sent, 0);
    assert_false(k.connected);
    assert_true(k.behind_ms > 0);
    audit_close(s.log);
    assert_int_equal(collector_count(c), 0);
    assert_true(chain_has(&s, "\"error\":\"certificate\""));
    keyring_wipe(&s.keys);
    collector_stop(c);
}

static size_t chain_count(const struct shipped *s, const char *fragment)
{
    char **lines;
    size_t n = local_lines(s, &lines), found = 0;

    for (size_t i = 0; i < n; i++)
        found += strstr(lines[i], fragment) != NULL;
    free_lines(lines, n);
    return found;
}

/* A collector that completes the handshake and then closes (what one that
 * requires a client certificate does under TLS 1.3) is not shipping: one
 * "stopped" record, no "resumed", and reconnects back off. */
static void test_closed_after_handshake_is_not_resumed(void **state)
{
    struct collector *c = collector_start("localhost");
    struct audit_ship_config cfg;
    struct audit_ship_counters k;
    struct shipped s;

    (void)state;
    pthread_mutex_lock(&c->lock);
    c->slam = true;
    pthread_mutex_unlock(&c->lock);
    ship_config(&cfg, "localhost", c->port);
    open_log(&s, "slam", &cfg, 0);
    emit(&s, 5);
    usleep(3000 * 1000);
    assert_true(audit_get_ship_counters(s.log, &k));
    print_message("connections in 3 s: %llu\n", (unsigned long long)k.connects_ok);
    /* 100, 200, 400, 800, 1600 ms: about 5; without backoff, dozens. */
    assert_true(k.connects_ok >= 2 && k.connects_ok <= 7);
    assert_int_equal(chain_count(&s, "\"reason\":\"stopped\""), 1);
    assert_int_equal(chain_count(&s, "\"reason\":\"resumed\""), 0);
    assert_true(k.behind_ms > 0);
    audit_close(s.log);
    keyring_wipe(&s.keys);
    collector_stop(c);
}

/* The collector out of reach while the log rotates twice: when it is back,
 * every file reaches it, the one between the two rotations too. */
static void test_rotations_while_behind(void **state)
{
    struct collector *c = collector_start("localhost");
    struct audit_ship_config cfg;
    struct shipped s;
    char cmd[1024];

    (void)state;
    collector_set(c, &c->paused, true);
    ship_config(&cfg, "localhost", c->port);
    open_log(&s, "behind", &cfg, 8 * 1024);
    for (int round = 0; round < 3; round++) {
        emit(&s, 60);
        usleep(1100 * 1000); /* rotation names have one-second stamps */
    }
    emit(&s, 5);
    snprintf(cmd, sizeof(cmd), "test $(ls %s.2* | wc -l) -ge 2", s.path);
    assert_int_equal(system(cmd), 0);
    collector_set(c, &c->paused, false);
    wait_witnessed(c, &s);
    finish(c, &s);
}

/* A collector that stops reading keeps acknowledging into its socket
 * buffer; restarted, it has lost that buffer. Records it acknowledged but
 * never read are sent again. */
static void test_collector_that_stopped_reading(void **state)
{
    struct collector *c = collector_start("localhost");
    struct audit_ship_config cfg;
    struct shipped s;
    size_t before;

    (void)state;
    ship_config(&cfg, "localhost", c->port);
    open_log(&s, "stall", &cfg, 0);
    emit(&s, 10);
    wait_count(c, 11);
    collector_set(c, &c->stall, true);
    /* Fewer than its socket buffer holds: all acknowledged, none read. */
    emit(&s, 60);
    usleep(3000 * 1000); /* more than the hold */
    before = collector_count(c);
    collector_set(c, &c->drop, true); /* closed unread: its buffer is gone */
    collector_set(c, &c->stall, false);
    wait_witnessed(c, &s);
    print_message("read before the stall ended: %zu\n", before);
    finish(c, &s);
}

/* More records than the window holds, at once: the window is released in
 * bulk as the collector reads, so every record gets through. */
static void test_more_than_the_window(void **state)
{
    struct collector *c = collector_start("localhost");
    struct audit_ship_config cfg;
    struct shipped s;

    (void)state;
    ship_config(&cfg, "localhost", c->port);
    open_log(&s, "many", &cfg, 0);
    /* In groups the audit queue takes (emit waits for each to be written). */
    for (int i = 0; i < (QR_AUDIT_SHIP_WINDOW + 3000) / 1000; i++)
        emit(&s, 1000);
    wait_witnessed(c, &s);
    finish(c, &s);
}

/* A line too long to be a record is skipped, not read forever: the records
 * after it are shipped and the log closes. */
static void test_overlong_line(void **state)
{
    struct collector *c = collector_start("localhost");
    struct audit_ship_config cfg;
    struct shipped s;
    json_t *big = audit_event("test.big", 'E', AUDIT_SUCCESS);
    char *blob = malloc(QR_AUDIT_SHIP_LINE_MAX + 1024);

    (void)state;
    assert_non_null(blob);
    memset(blob, 'x', QR_AUDIT_SHIP_LINE_MAX + 1023);
    blob[QR_AUDIT_SHIP_LINE_MAX + 1023] = '\0';
    audit_event_detail(big, "blob", json_string(blob));
    free(blob);
    ship_config(&cfg, "localhost", c->port);
    open_log(&s, "long", &cfg, 0);
    emit(&s, 3);
    assert_int_equal(audit_emit(s.log, big), 0);
    emit(&s, 3);
    wait_witnessed(c, &s);
    finish(c, &s);
}

/* The daemon restarted while the collector was out of reach, and the log
 * rotated meanwhile: the next run sends what the last one could not,
 * before its own records. */
static void test_restart_sends_what_the_last_run_could_not(void **state)
{
    struct collector *c = collector_start("localhost");
    struct audit_ship_config cfg;
    struct shipped s;
    char cmd[1024];

    (void)state;
    ship_config(&cfg, "localhost", c->port);
    open_log(&s, "restart", &cfg, 8 * 1024);
    emit(&s, 5);
    wait_witnessed(c, &s);
    usleep(QR_AUDIT_SHIP_HOLD_MS * 1000 + 300 * 1000); /* released, and noted */
    collector_set(c, &c->paused, true);
    collector_set(c, &c->drop, true);
    emit(&s, 40);
    usleep(1100 * 1000);
    emit(&s, 40);
    audit_close(s.log); /* the drain ends with the collector still away */
    keyring_wipe(&s.keys);
    snprintf(cmd, sizeof(cmd), "test $(ls %s.2* | wc -l) -ge 1", s.path);
    assert_int_equal(system(cmd), 0);
    collector_set(c, &c->paused, false);
    open_log(&s, "restart", &cfg, 8 * 1024);
    emit(&s, 3);
    wait_witnessed(c, &s);
    finish(c, &s);
}

/* Stopping while the collector reads nothing: the wait is bounded (the
 * drain, plus one send that times out). */
static void test_close_is_bounded(void **state)
{
    struct collector *c = collector_start("localhost");
    struct audit_ship_config cfg;
    struct shipped s;
    uint64_t t0;

    (void)state;
    ship_config(&cfg, "localhost", c->port);
    open_log(&s, "bounded", &cfg, 0);
    emit(&s, 5);
    wait_count(c, 6);
    collector_set(c, &c->stall, true);
    for (int i = 0; i < 20; i++)
        emit(&s, 200);
    t0 = clock_mono_ms();
    audit_close(s.log);
    print_message("audit_close took %llu ms\n", (unsigned long long)(clock_mono_ms() - t0));
    assert_true(clock_mono_ms() - t0 < QR_AUDIT_SHIP_DRAIN_MS + QR_AUDIT_SHIP_CONNECT_MS + 2000);
    keyring_wipe(&s.keys);
    collector_stop(c);
}

/* Closing the log right after a burst: the burst and the close record
 * reach the collector before audit_close returns. */
static void test_close_delivers_the_queue(void **state)
{
    struct collector *c = collector_start("localhost");
    struct audit_ship_config cfg;
    struct shipped s;

    (void)state;
    ship_config(&cfg, "localhost", c->port);
    open_log(&s, "close", &cfg, 0);
    for (int i = 0; i < 500; i++)
        audit_emit(s.log, audit_event("test.burst", 'E', AUDIT_SUCCESS));
    audit_close(s.log);
    assert_int_equal(assert_witnessed(c, &s), 0);
    keyring_wipe(&s.keys);
    collector_stop(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_target),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_every_record_in_order),
        cmocka_unit_test(test_dropped_connection_loses_nothing),
        cmocka_unit_test(test_wrong_name_gets_nothing),
        cmocka_unit_test(test_closed_after_handshake_is_not_resumed),
        cmocka_unit_test(test_close_delivers_the_queue),
        cmocka_unit_test(test_rotations_while_behind),
        cmocka_unit_test(test_collector_that_stopped_reading),
        cmocka_unit_test(test_overlong_line),
        cmocka_unit_test(test_more_than_the_window),
        cmocka_unit_test(test_close_is_bounded),
        cmocka_unit_test(test_restart_sends_what_the_last_run_could_not),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
