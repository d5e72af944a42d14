/* posix_spawn with stdout and stderr redirected to temporary files, polled
 * to its end or killed at the limit. */
#include "ctlrun.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

extern char **environ;

#define CTLRUN_POLL_MS 20

static int ctlrun__wait(pid_t pid, int limit_s, int *status)
{
    uint64_t end = now_ms() + (uint64_t)limit_s * 1000;
    struct timespec ts = {.tv_nsec = CTLRUN_POLL_MS * 1000000L};

    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);

        if (w == pid)
            return 0;
        if (w < 0)
            return -1;
        if (now_ms() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, status, 0);
            return -1;
        }
        nanosleep(&ts, NULL);
    }
}

int ctlrun(char *const argv[], int limit_s, struct ctlrun *r)
{
    char out[] = "/tmp/ctlrun-out-XXXXXX", err[] = "/tmp/ctlrun-err-XXXXXX";
    int fo = mkstemp(out), fe = mkstemp(err), status = 0, ret = -1;
    posix_spawn_file_actions_t fa;
    uint64_t t0 = now_ms();
    pid_t pid;

    memset(r, 0, sizeof(*r));
    r->exit_code = -1;
    if (fo < 0 || fe < 0)
        goto out;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fo, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, fe, STDERR_FILENO);
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) == 0) {
        if (ctlrun__wait(pid, limit_s, &status) == 0 && WIFEXITED(status))
            r->exit_code = WEXITSTATUS(status);
        ret = 0;
    }
    posix_spawn_file_actions_destroy(&fa);
    r->seconds = (double)(now_ms() - t0) / 1000.0;
    r->out = read_text(out);
    r->err = read_text(err);
out:
    if (fo >= 0) {
        close(fo);
        unlink(out);
    }
    if (fe >= 0) {
        close(fe);
        unlink(err);
    }
    return ret;
}

void ctlrun_free(struct ctlrun *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}
