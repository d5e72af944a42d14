/* The load tester itself, briefly, for correctness only (speed lives in the
 * benchmark): through the real relay every packet arrives intact, nothing is
 * lost on an idle machine, latency is recorded, over UDP and over ICE-TCP;
 * and its TURN client works against a real coturn process. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "world.h"

#define TURN_BIN "/usr/bin/turnserver"

/* A UDP port free right now on loopback. */
static int free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_DGRAM, 0), port = -1;

    sin.sin_addr.s_addr = htonl(0x7f000001);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static json_t *run_loadtest(const char *const *args, const char *json_path)
{
    const char *argv[32] = {QR_LOADTEST_BIN};
    int n = 1, code;
    json_error_t jerr;
    json_t *doc;
    char *out;

    for (int i = 0; args[i] != NULL && n < 29; i++)
        argv[n++] = args[i];
    argv[n++] = "--json";
    argv[n++] = json_path;
    argv[n] = NULL;
    out = run_command((char *const *)argv, &code);
    print_message("%s", out);
    free(out);
    assert_int_equal(code, 0);
    doc = json_load_file(json_path, 0, &jerr);
    assert_non_null(doc);
    return doc;
}

static long long num(json_t *doc, const char *key)
{
    return json_integer_value(json_object_get(doc, key));
}

static double real(json_t *doc, const char *key)
{
    return json_number_value(json_object_get(doc, key));
}

static void expect_clean(json_t *doc, long long min_sent)
{
    assert_true(num(doc, "sent") >= min_sent);
    assert_int_equal(num(doc, "received"), num(doc, "sent"));
    assert_int_equal(num(doc, "corrupt"), 0);
    assert_int_equal(num(doc, "duplicates"), 0);
    assert_int_equal(num(doc, "setup_failed"), 0);
    assert_true(real(doc, "loss") == 0.0);
    assert_true(real(doc, "latency_p50_us") > 0.0);
    assert_true(real(doc, "latency_p99_us") >= real(doc, "latency_p50_us"));
}

/* The relay alone; the teardown stops it even when a check fails (a
 * world started inside the test outlived a failed check). On the sockets:
 * the kernel path forwards in the sender's softirq, and the relay's own
 * CPU, which the load tester must be seen to measure, is then next to
 * nothing (loadtest/bench.py's relay-kernel arm accounts for that). */
static int relay_setup(void **state)
{
    static const char *const extra[] = {"--kernel-forward", "off", NULL};
    struct world_opts o = {.no_signal = true, .relay_extra = extra};

    return world_setup(state, &o);
}

static void test_through_the_relay(void **state)
{
    struct world *w = *state;
    struct relay_proc *r = &w->relay;
    char server[NETADDR_STRLEN], pid[16], json[HARNESS_PATH + 16];
    json_t *doc;

    netaddr_format(&r->listen[0], server, sizeof(server));
    snprintf(pid, sizeof(pid), "%d", (int)r->pid);
    snprintf(json, sizeof(json), "%s/lt.json", r->dir);
    {
        const char *args[] = {"--mode", "relay", "--server", server, "--secret-file", r->secret,
                              "--links", "20", "--seconds", "3", "--profile", "av",
                              "--server-pid", pid, NULL};

        doc = run_loadtest(args, json);
    }
    /* 20 links, 2 legs, 3 s of 30 fps x 5 video + 50 audio packets. */
    expect_clean(doc, 20 * 2 * 3 * 200 * 9 / 10);
    assert_true(real(doc, "server_cpu_s") > 0.0);
    json_decref(doc);
    {
        long long fwd = relay_stat(r, "packets", "forwarded");

        assert_true(fwd >= 20 * 2 * 3 * 200 * 9 / 10);
    }
}

/* The same over ICE-TCP: every leg its own connection to the relay's
 * --listen-tcp address, every packet framed; nothing lost, no connection
 * closed, and the relay counts the frames as TCP. */
static int tcp_setup(void **state)
{
    static const char *const extra[] = {"--listen-tcp", "127.0.0.1:0", NULL};
    struct world_opts o = {.no_signal = true, .relay_extra = extra};

    return world_setup(state, &o);
}

static void test_through_the_relay_over_tcp(void **state)
{
    struct world *w = *state;
    struct relay_proc *r = &w->relay;
    char server[NETADDR_STRLEN], pid[16], json[HARNESS_PATH + 16];
    json_t *doc;

    assert_int_equal(r->n_listen_tcp, 1);
    netaddr_format(&r->listen_tcp[0], server, sizeof(server));
    snprintf(pid, sizeof(pid), "%d", (int)r->pid);
    snprintf(json, sizeof(json), "%s/lt.json", r->dir);
    {
        const char *args[] = {"--mode", "relay", "--transport", "tcp", "--server", server,
                              "--secret-file", r->secret, "--links", "10", "--seconds", "2",
                              "--profile", "av", "--server-pid", pid, NULL};

        doc = run_loadtest(args, json);
    }
    /* 10 links, 2 legs, 2 s of 30 fps x 5 video + 50 audio packets. */
    expect_clean(doc, 10 * 2 * 2 * 200 * 9 / 10);
    assert_string_equal(json_string_value(json_object_get(doc, "transport")), "tcp");
    assert_int_equal(num(doc, "tcp_closed"), 0);
    assert_true(relay_stat(r, "tcp", "packets_forwarded") >= num(doc, "received"));
    assert_int_equal(relay_stat(r, "tcp_connections", "accepted"), 10 * 2);
    json_decref(doc);
}

/* A soak longer than twice the relay's consent-timeout (4 s here, 30 s by
 * default): the load tester refreshes consent as a browser does, so no leg
 * is closed under it and nothing is lost. Without the refreshes every leg
 * closes after 4 s and two thirds of the run is lost. */
static int soak_setup(void **state)
{
    static const char *const extra[] = {"--consent-timeout", "4", NULL};
    struct world_opts o = {.no_signal = true, .relay_extra = extra};

    return world_setup(state, &o);
}

static void test_soak_keeps_consent(void **state)
{
    struct world *w = *state;
    struct relay_proc *r = &w->relay;
    char server[NETADDR_STRLEN], json[HARNESS_PATH + 16];
    json_t *doc;

    netaddr_format(&r->listen[0], server, sizeof(server));
    snprintf(json, sizeof(json), "%s/lt.json", r->dir);
    {
        const char *args[] = {"--mode", "relay", "--server", server, "--secret-file", r->secret,
                              "--links", "20", "--seconds", "12", "--profile", "audio",
                              /* As a browser's 5 s against a 30 s timeout. */
                              "--consent-ms", "700", NULL};

        doc = run_loadtest(args, json);
    }
    /* 20 links, 2 legs, 12 s of 50 audio packets a second. */
    expect_clean(doc, 20 * 2 * 12 * 50 * 9 / 10);
    /* Every leg checked many times during media, and answered. */
    assert_true(num(doc, "consent_checks_sent") >= 20 * 2 * 12);
    assert_true(num(doc, "consent_checks_answered") >= num(doc, "consent_checks_sent") * 9 / 10);
    json_decref(doc);
}

/* coturn for one test: started by the setup, stopped by the teardown, so
 * that a failed check does not leave it running (it held the test's output
 * pipe open after the test had ended). */
struct turn {
    char dir[32];
    char server[32];
    pid_t pid;
};

static int turn_setup(void **state)
{
    struct turn *t = calloc(1, sizeof(*t));
    char log[64], listen[48], db[64];
    int port = free_port();
    char *argv[] = {TURN_BIN, "-n", "--listening-ip=127.0.0.1", listen,
                    "--relay-ip=127.0.0.1", "--min-port=49200", "--max-port=49999",
                    "--lt-cred-mech", "--user=lt:lt-secret", "--realm=quietroom", "--no-tls",
                    "--no-dtls", "--no-cli", "--allow-loopback-peers", "--simple-log",
                    "--log-file=stdout", "--userdb", db, NULL};

    *state = t;
    if (t == NULL || port <= 0)
        return -1;
    snprintf(t->dir, sizeof(t->dir), "/tmp/qr-turn-XXXXXX");
    if (mkdtemp(t->dir) == NULL)
        return -1;
    snprintf(listen, sizeof(listen), "--listening-port=%d", port);
    snprintf(t->server, sizeof(t->server), "127.0.0.1:%d", port);
    snprintf(log, sizeof(log), "%s/turn.log", t->dir);
    snprintf(db, sizeof(db), "%s/turndb", t->dir);
    if ((t->pid = fork()) == 0) {
        FILE *f = freopen(log, "w", stdout);

        (void)f;
        execv(argv[0], argv);
        _exit(127);
    }
    usleep(700 * 1000);
    return t->pid > 0 ? 0 : -1;
}

static int turn_teardown(void **state)
{
    struct turn *t = *state;
    char cmd[64];
    int status;

    if (t == NULL)
        return 0;
    if (t->pid > 0) {
        kill(t->pid, SIGTERM);
        waitpid(t->pid, &status, 0);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
    if (t->dir[0] != '\0' && system(cmd) != 0)
        return -1;
    free(t);
    *state = NULL;
    return 0;
}

static void test_turn_client_against_coturn(void **state)
{
    struct turn *t = *state;
    char json[64];
    json_t *doc;

    snprintf(json, sizeof(json), "%s/lt.json", t->dir);
    {
        const char *args[] = {"--mode", "turn", "--server", t->server, "--turn-user",
                              "lt", "--turn-pass", "lt-secret", "--links", "10", "--seconds",
                              "2", "--profile", "audio", NULL};

        doc = run_loadtest(args, json);
    }
    expect_clean(doc, 10 * 2 * 2 * 50 * 9 / 10);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_through_the_relay, relay_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_through_the_relay_over_tcp, tcp_setup,
                                        world_teardown),
        cmocka_unit_test_setup_teardown(test_soak_keeps_consent, soak_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_turn_client_against_coturn, turn_setup,
                                        turn_teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
