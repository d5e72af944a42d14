/* A real nats-server JetStream cluster (1 or 3 servers) on 127.0.0.1 for
 * the NATS store tests: every listener (client, route, monitoring) on
 * loopback, free ports, one store_dir per server under a mkdtemp
 * directory. A server can be stopped and started again on the same ports
 * and store_dir, which is how the tests take away and give back quorum. */
#ifndef QUIETROOM_TEST_NATSCLUSTER_H
#define QUIETROOM_TEST_NATSCLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NATSCLUSTER_MAX 3
#define NATSCLUSTER_URL 48

struct natscluster {
    unsigned n;
    char dir[128];                     /* mkdtemp; removed by natscluster_stop */
    pid_t pid[NATSCLUSTER_MAX];        /* 0: not running */
    uint16_t port[NATSCLUSTER_MAX], route[NATSCLUSTER_MAX], mon[NATSCLUSTER_MAX];
    char url[NATSCLUSTER_MAX][NATSCLUSTER_URL];
    char urls[NATSCLUSTER_MAX * NATSCLUSTER_URL];   /* "nats://..,nats://.." */
    char tls_cert[256], tls_key[256], tls_ca[256];  /* "": plain client port */
};

/* Starts n servers (1..NATSCLUSTER_MAX) and waits until each reports
 * JetStream healthy (/healthz). 0, or -1 with err (and nothing left running). */
int natscluster_start(struct natscluster *c, unsigned n, char *err, size_t errlen);
/* The same with TLS on the client port: the servers present cert/key, and
 * with ca non-empty also demand a client certificate issued by it. */
int natscluster_start_tls(struct natscluster *c, unsigned n, const char *cert, const char *key,
                          const char *ca, char *err, size_t errlen);
const char *natscluster_url(const struct natscluster *c, unsigned i);
const char *natscluster_urls(const struct natscluster *c);
/* SIGKILL, so the server gets no chance to hand over leadership: what a
 * crashed machine looks like to the others. */
void natscluster_stop_one(struct natscluster *c, unsigned i);
/* Starts server i again and waits (up to 30 s) until it answers /healthz
 * (which needs JetStream current, so quorum with the others). 0 or -1. */
int natscluster_restart_one(struct natscluster *c, unsigned i);
/* Stops every server (SIGTERM, then SIGKILL) and removes the directory. */
void natscluster_stop(struct natscluster *c);

#endif
