/* A process that appends to an audit log as fast as it can from several
 * threads and reports each record on stdout the moment audit_write has
 * acknowledged it: the crash test kills it with SIGKILL at random points. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quietroom/audit/audit.h"
#include "quietroom/base/keyring.h"

#define CHILD_THREADS 4

struct child {
    struct audit_log *log;
    int thread;
    long base;
};

static void *child__writer(void *arg)
{
    struct child *c = arg;

    for (long n = c->base;; n++) {
        json_t *ev = audit_event("test.record", 'C', AUDIT_SUCCESS);
        char ack[64];
        int len;

        audit_event_agent(ev, "load-tester", "observer", true, "127.0.0.1");
        audit_event_detail(ev, "n", json_integer(n));
        audit_event_detail(ev, "padding", json_string("................................"));
        if (audit_write(c->log, ev) != 0)
            return NULL;
        len = snprintf(ack, sizeof(ack), "%ld\n", n);
        if (write(STDOUT_FILENO, ack, (size_t)len) != len)
            return NULL;
    }
}

int main(int argc, char **argv)
{
    struct audit_config cfg = {.node = "crash-child", .checkpoint_every = 50};
    struct child c[CHILD_THREADS];
    pthread_t th[CHILD_THREADS];
    struct keyring keys;
    char err[256];
    long round;

    if (argc != 5) {
        fprintf(stderr, "usage: audit_child LOG KEYFILE ROUND ROTATE-BYTES\n");
        return 2;
    }
    round = atol(argv[3]);
    cfg.rotate_bytes = strtoull(argv[4], NULL, 10);
    if (keyring_load(argv[2], &keys, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    cfg.path = argv[1];
    cfg.keys = &keys;
    if ((c[0].log = audit_open(&cfg, err, sizeof(err))) == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    for (int i = 0; i < CHILD_THREADS; i++) {
        c[i] = (struct child){.log = c[0].log, .thread = i, .base = round * 100000000L + i * 10000000L};
        pthread_create(&th[i], NULL, child__writer, &c[i]);
    }
    for (int i = 0; i < CHILD_THREADS; i++)
        pthread_join(th[i], NULL);
    audit_close(c[0].log);
    return 0;
}
