/* The options and start-up steps both daemons share (common/base/daemon.c):
 * the option group parses and range-checks, the configuration outcome maps
 * to the documented exit codes, the ready file appears whole or not at all,
 * and a claimed address cannot be claimed twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "quietroom/base/daemon.h"
#include "quietroom/base/limits.h"
#include "quietroom/base/log.h"

struct test_cfg {
    struct daemon_settings daemon;
};

static void *select_daemon(void *cfg)
{
    return &((struct test_cfg *)cfg)->daemon;
}

static void *select_instance(void *cfg)
{
    return &((struct test_cfg *)cfg)->daemon.instance;
}

static const struct config_spec spec = {
    .program = "test-daemon",
    .version = "0",
    .usage = "usage: test-daemon [options]\n",
    .section = "test",
    .groups = {{daemon_options, DAEMON_N_OPTIONS, select_daemon},
               {lockfile_options, LOCKFILE_N_OPTIONS, select_instance}},
};

/* Loads argv (NULL-terminated, program name first) over the defaults. */
static enum config_result load(struct test_cfg *cfg, char **argv, char *err, size_t errlen)
{
    int argc = 0;

    while (argv[argc] != NULL)
        argc++;
    daemon_settings_defaults(&cfg->daemon, "fallback", "/run/test-daemon");
    return config_load(&spec, cfg, argc, argv, err, errlen);
}

static void test_defaults(void **state)
{
    struct daemon_settings s;

    (void)state;
    daemon_settings_defaults(&s, "fallback", "/run/test-daemon");
    assert_int_equal(s.log_level, LOG_LEVEL_INFO);
    assert_false(s.has_ops);
    assert_string_equal(s.ops_token_file, "");
    assert_int_equal(s.drain_timeout_s, QR_DRAIN_TIMEOUT_DEFAULT_S);
    assert_string_equal(s.instance.runtime_dir, "/run/test-daemon");
    assert_true(s.node_id[0] != '\0');
}

static void test_parse(void **state)
{
    char *argv[] = {"t",           "--node-id",        "edge-1",   "--log-level",
                    "debug",       "--ops-listen",     "127.0.0.1:9100",
                    "--ops-token-file", "/etc/tok",   "--drain-timeout", "0",
                    "--runtime-dir", "/tmp/rd",        NULL};
    struct test_cfg cfg;
    char err[256];

    (void)state;
    assert_int_equal(load(&cfg, argv, err, sizeof(err)), CONFIG_OK);
    assert_string_equal(cfg.daemon.node_id, "edge-1");
    assert_int_equal(cfg.daemon.log_level, LOG_LEVEL_DEBUG);
    assert_true(cfg.daemon.has_ops);
    assert_int_equal(netaddr_port(&cfg.daemon.ops_listen), 9100);
    assert_string_equal(cfg.daemon.ops_token_file, "/etc/tok");
    assert_int_equal(cfg.daemon.drain_timeout_s, 0);
    assert_string_equal(cfg.daemon.instance.runtime_dir, "/tmp/rd");
}

static void test_parse_file(void **state)
{
    char path[] = "/tmp/qr-daemon-ini-XXXXXX";
    char *argv[] = {"t", "--config", path, NULL};
    const char *text = "[test]\nlog-level = warn\ndrain-timeout = 86400\nnode-id = n2\n";
    struct test_cfg cfg;
    char err[256];
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(load(&cfg, argv, err, sizeof(err)), CONFIG_OK);
    assert_int_equal(cfg.daemon.log_level, LOG_LEVEL_WARN);
    assert_int_equal(cfg.daemon.drain_timeout_s, QR_DRAIN_TIMEOUT_MAX_S);
    assert_string_equal(cfg.daemon.node_id, "n2");
    assert_false(cfg.daemon.has_ops);
    unlink(path);
}

/* Every mistake is refused with the option's name in the message. */
static void test_refused(void **state)
{
    static const char *const bad[][3] = {
        {"--drain-timeout", "86401", "drain-timeout"},
        {"--drain-timeout", "-1", "drain-timeout"},
        {"--drain-timeout", "soon", "drain-timeout"},
        {"--log-level", "verbose", "log-level"},
        {"--ops-listen", "localhost", "ops-listen"},
        {"--node-id", "", "node-id"},
        {"--ops-token-file", "", "ops-token-file"},
    };
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[] = {"t", (char *)bad[i][0], (char *)bad[i][1], NULL};
        struct test_cfg cfg;

        err[0] = '\0';
        assert_int_equal(load(&cfg, argv, err, sizeof(err)), CONFIG_ERROR);
        assert_non_null(strstr(err, bad[i][2]));
    }
}

static void test_begin_exit_codes(void **state)
{
    struct daemon_settings s;
    int code = -7;

    (void)state;
    daemon_settings_defaults(&s, "fallback", "/run/test-daemon");
    assert_int_equal(daemon_begin(CONFIG_EXIT, "test-daemon", "", &s, &code), -1);
    assert_int_equal(code, 0);
    assert_int_equal(daemon_begin(CONFIG_ERROR, "test-daemon", "bad option", &s, &code), -1);
    assert_int_equal(code, 2);
    assert_int_equal(daemon_begin(CONFIG_OK, "test-daemon", "", &s, &code), 0);
    assert_int_equal(code, 1);
}

static char *read_all(const char *path)
{
    static char text[256];
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return NULL;
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* The file is replaced by rename: a reader holding the old one still reads
 * it whole, and no temporary file is left behind. */
static void test_ready_file(void **state)
{
    char dir[] = "/tmp/qr-daemon-ready-XXXXXX", path[64], tmp[80], old[32];
    json_t *doc = json_pack("{s:i}", "port", 4242);
    FILE *held;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/ready.json", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    held = fopen(path, "w");
    assert_non_null(held);
    fputs("{\"old\":1}", held);
    fclose(held);
    held = fopen(path, "r");
    assert_non_null(held);
    assert_int_equal(daemon_write_ready_file(path, doc), 0);
    assert_string_equal(read_all(path), "{\"port\":4242}");
    assert_int_equal(access(tmp, F_OK), -1);
    assert_non_null(fgets(old, sizeof(old), held));
    assert_string_equal(old, "{\"old\":1}");
    fclose(held);
    unlink(path);
    rmdir(dir);
    json_decref(doc);
}

static void test_ready_file_fails(void **state)
{
    json_t *doc = json_pack("{s:i}", "port", 1);

    (void)state;
    assert_int_equal(daemon_write_ready_file("/nonexistent-qr-dir/ready.json", doc), -1);
    assert_int_equal(daemon_write_ready_file("/tmp/qr-daemon-null.json", NULL), -1);
    assert_int_equal(access("/tmp/qr-daemon-null.json", F_OK), -1);
    assert_int_equal(access("/tmp/qr-daemon-null.json.tmp", F_OK), -1);
    json_decref(doc);
}

/* A free TCP port on loopback (bound, read, released). */
static uint16_t free_port(void)
{
    union netaddr a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uint16_t port;

    netaddr_parse("127.0.0.1:0", &a);
    assert_int_equal(bind(fd, &a.sa, netaddr_len(&a)), 0);
    assert_int_equal(getsockname(fd, &a.sa, &len), 0);
    port = netaddr_port(&a);
    close(fd);
    return port;
}

/* daemon_claim expected to fail; returns what it logged (stderr). */
static char *stderr_of_claim(struct lockfile_set *set, const char *dir,
                             const struct daemon_address *addrs, unsigned n)
{
    char path[] = "/tmp/qr-daemon-err-XXXXXX", *text = calloc(1, 1024);
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);

    assert_true(fd >= 0 && saved >= 0 && text != NULL);
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    assert_int_equal(daemon_claim(set, dir, addrs, n), -1);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_true(pread(fd, text, 1023, 0) > 0);
    close(fd);
    unlink(path);
    return text;
}

static void test_claim_twice(void **state)
{
    char dir[] = "/tmp/qr-daemon-claim-XXXXXX", rundir[64], text[32];
    union netaddr tcp, zero;
    struct lockfile_set first, second;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(rundir, sizeof(rundir), "%s/run", dir);
    snprintf(text, sizeof(text), "127.0.0.1:%u", free_port());
    netaddr_parse(text, &tcp);
    netaddr_parse("127.0.0.1:0", &zero);
    {
        struct daemon_address addrs[] = {{"tcp", &tcp}, {"udp", &zero}};

        char *said, want[96];

        assert_int_equal(daemon_claim(&first, rundir, addrs, 2), 0);
        assert_int_equal(first.n, 1); /* port 0 is not claimed */
        said = stderr_of_claim(&second, rundir, addrs, 2);
        /* Refused by the lock, naming the holder: this very process. */
        snprintf(want, sizeof(want), "tcp %s is held by pid %ld (", text, (long)getpid());
        assert_non_null(strstr(said, want));
        free(said);
        lockfile_set_release(&second);
        lockfile_set_release(&first);
        /* Released, the address can be claimed again (the file stays). */
        assert_int_equal(daemon_claim(&first, rundir, addrs, 2), 0);
        lockfile_set_release(&first);
    }
    {
        char lock[128];

        snprintf(lock, sizeof(lock), "%s/tcp-127.0.0.1-%u.lock", rundir, netaddr_port(&tcp));
        unlink(lock);
    }
    rmdir(rundir);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_file),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_begin_exit_codes),
        cmocka_unit_test(test_ready_file),
        cmocka_unit_test(test_ready_file_fails),
        cmocka_unit_test(test_claim_twice),
    };

    log_init("test_daemon", LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
