/* The relay's and quietroomctl's command lines as an operator meets them:
 * a configuration file with the same keys as the options, and a precise
 * message and exit code for each mistake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "world.h"
#include "quietroom/base/clock.h"

struct fixture {
    char dir[64];
    char secret[128];
};

static int setup(void **state)
{
    static struct fixture f;
    char err[128];

    snprintf(f.dir, sizeof(f.dir), "/tmp/qr-cli-XXXXXX");
    if (mkdtemp(f.dir) == NULL)
        return -1;
    snprintf(f.secret, sizeof(f.secret), "%s/relay.secret", f.dir);
    if (keyring_generate(f.secret, 1, err, sizeof(err)) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs the relay (or quietroomctl) with args; expects exit code and a
 * fragment of its output. */
static void expect(char *const argv[], int code, const char *fragment)
{
    int got;
    char *out = run_command(argv, &got);

    assert_non_null(out);
    if (got != code || (fragment != NULL && strstr(out, fragment) == NULL))
        fail_msg("%s %s: exit %d (want %d), output:\n%s", argv[0], argv[1] ? argv[1] : "", got,
                 code, out);
    free(out);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_config_file_starts_the_relay(void **state)
{
    struct fixture *f = *state;
    char conf[160], ready[160], text[1024];
    char *argv[] = {QR_RELAY_BIN, "--config", conf, NULL};
    pid_t pid;
    int status = -1;
    uint64_t deadline;

    snprintf(conf, sizeof(conf), "%s/relay.ini", f->dir);
    snprintf(ready, sizeof(ready), "%s/ready.json", f->dir);
    snprintf(text, sizeof(text),
             "; shared by several programs\n[signal]\nport = 443\n\n[relay]\n"
             "listen = 127.0.0.1:0\nlisten = [::1]:0\ncontrol = 127.0.0.1:0\n"
             "secret-file = %s\nworkers = 1\nmax-links = 64\nready-file = %s\n"
             "log-level = warn\n",
             f->secret, ready);
    write_file(conf, text);
    if ((pid = fork()) == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    for (deadline = now_ms() + 5000; now_ms() < deadline && access(ready, F_OK) != 0;)
        usleep(20000);
    assert_int_equal(access(ready, F_OK), 0);
    {
        char *doc = read_text(ready);

        assert_non_null(strstr(doc, "\"listen\":[\"127.0.0.1:"));
        assert_non_null(strstr(doc, "\"[::1]:"));
        free(doc);
    }
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_relay_mistakes(void **state)
{
    struct fixture *f = *state;
    char conf[160], loose[160];

    snprintf(conf, sizeof(conf), "%s/bad.ini", f->dir);
    write_file(conf, "listen = 127.0.0.1:0\nlisten_port = 9\n");
    {
        char *argv[] = {QR_RELAY_BIN, "--config", conf, NULL};

        expect(argv, 2, "bad.ini:2: unknown key \"listen_port\"");
    }
    {
        char *argv[] = {QR_RELAY_BIN, "--listen", "0.0.0.0:3478", "--secret-file", f->secret,
                        NULL};

        expect(argv, 2, "wildcard");
    }
    {
        char *argv[] = {QR_RELAY_BIN, "--listen", "127.0.0.1:99999", NULL};

        expect(argv, 2, "is not ADDR:PORT");
    }
    {
        char *argv[] = {QR_RELAY_BIN, "--listen", "127.0.0.1:0", NULL};

        expect(argv, 2, "no --secret-file");
    }
    {
        char *argv[] = {QR_RELAY_BIN, "--listen", "127.0.0.1:0", "--secret-file", f->secret,
                        "--workers", "999", NULL};

        expect(argv, 2, "workers: expected a number from 0 to 64");
    }
    {
        char *argv[] = {QR_RELAY_BIN, "--bogus", "1", NULL};

        expect(argv, 2, "unknown option --bogus");
    }
    snprintf(loose, sizeof(loose), "%s/loose.secret", f->dir);
    {
        char err[128];

        assert_int_equal(keyring_generate(loose, 1, err, sizeof(err)), 0);
        assert_int_equal(chmod(loose, 0644), 0);
    }
    {
        char *argv[] = {QR_RELAY_BIN, "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
                        "--secret-file", loose, NULL};

        expect(argv, 1, "chmod 600");
    }
    {
        char *argv[] = {QR_RELAY_BIN, "--help", NULL};

        expect(argv, 0, "--consent-timeout");
    }
}

static void test_ctl_creds_output(void **state)
{
    struct fixture *f = *state;
    char *argv[] = {QR_CTL_BIN, "creds", "--secret-file", f->secret, "--session", "visit-9",
                    "--ttl", "600", "--links", "3", NULL};
    json_error_t jerr;
    json_t *doc;
    char *out;
    int code;
    uint32_t now = clock_wall_s();

    out = run_command(argv, &code);
    assert_int_equal(code, 0);
    doc = json_loads(out, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "session")), "visit-9");
    assert_true(json_integer_value(json_object_get(doc, "expires")) >= now + 599);
    assert_true(json_integer_value(json_object_get(doc, "expires")) <= now + 601);
    assert_int_equal(json_array_size(json_object_get(doc, "links")), 3);
    for (int l = 0; l < 3; l++) {
        for (int side = 0; side < 2; side++) {
            assert_int_equal(strlen(creds_ufrag(doc, l, side)), CREDS_UFRAG_LEN);
            assert_int_equal(strlen(creds_pwd(doc, l, side)), CREDS_PWD_LEN);
        }
    }
    json_decref(doc);
    free(out);
}

static void test_ctl_mistakes(void **state)
{
    struct fixture *f = *state;

    {
        char *argv[] = {QR_CTL_BIN, "creds", "--secret-file", f->secret, NULL};

        expect(argv, 2, "usage: quietroomctl creds");
    }
    {
        char *argv[] = {QR_CTL_BIN, "creds", "--secret-file", f->secret, "--session", "s",
                        "--links", "0", NULL};

        expect(argv, 2, "--links: 1 to 64");
    }
    {
        char *argv[] = {QR_CTL_BIN, "creds", "--session", "s", NULL};

        expect(argv, 1, "--secret-file is required");
    }
    {
        char *argv[] = {QR_CTL_BIN, "frobnicate", NULL};

        expect(argv, 2, "unknown command");
    }
    {
        char *argv[] = {QR_CTL_BIN, "stats", "--secret-file", f->secret, "--control",
                        "127.0.0.1:1", NULL};

        expect(argv, 1, "connect 127.0.0.1:1");
    }
}

/* A client holding a different secret is refused by the relay, and a relay
 * holding a different secret is refused by the client. */
static void test_control_rejects_wrong_secret(void **state)
{
    struct world_opts o = {.no_signal = true};
    struct fixture *f = *state;
    struct world w;
    char *argv[] = {QR_CTL_BIN, "stats", "--secret-file", f->secret, "--control", NULL, NULL};

    assert_int_equal(world_start(&w, &o), 0);
    argv[5] = w.relay.control;
    expect(argv, 1, "relay authentication failed (auth_failed)");
    argv[3] = w.relay.secret;
    expect(argv, 0, "\"packets\"");
    assert_int_equal(world_stop(&w), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_file_starts_the_relay),
        cmocka_unit_test(test_relay_mistakes),
        cmocka_unit_test(test_ctl_creds_output),
        cmocka_unit_test(test_ctl_mistakes),
        cmocka_unit_test(test_control_rejects_wrong_secret),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
