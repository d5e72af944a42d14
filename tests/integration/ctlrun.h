/* Runs the real quietroomctl (or any program) with stdout and stderr kept
 * apart, as an operator's cron job or a monitoring agent would see them,
 * and with a hard time limit. For the probe and status tests. */
#ifndef QUIETROOM_TEST_CTLRUN_H
#define QUIETROOM_TEST_CTLRUN_H

struct ctlrun {
    int exit_code;      /* -1 if killed at the limit or by a signal */
    char *out, *err;    /* whole stdout and stderr, NUL-terminated (owned) */
    double seconds;     /* wall time it ran */
};

/* Runs argv (NULL-terminated) for at most limit_s seconds. 0, or -1 if it
 * could not be started. Release with ctlrun_free. */
int ctlrun(char *const argv[], int limit_s, struct ctlrun *r);
void ctlrun_free(struct ctlrun *r);

#endif
