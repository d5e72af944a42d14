/* A real syslog collector for the audit-shipping tests: rsyslogd on
 * loopback, receiving RFC 5425 (syslog over TLS, octet counting) with a test
 * CA made by the openssl CLI, and writing every message it gets, its own
 * included, to a witness file in the standard RFC 5424 file template
 * (RSYSLOG_SyslogProtocol23Format), as a hospital's collector would.
 * Everything lives in one temporary directory; no rsyslogd outlives
 * collector_cleanup. */
#ifndef QUIETROOM_TEST_COLLECTOR_H
#define QUIETROOM_TEST_COLLECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "harness.h"

/* The server certificate the collector presents; both are signed by the
 * same test CA. */
enum collector_cert {
    COLLECTOR_CERT_LOCALHOST,   /* DNS:localhost, IP:127.0.0.1: the right one */
    COLLECTOR_CERT_WRONG_NAME,  /* DNS:wrong.example only: must be refused */
};

struct collector {
    pid_t pid;                          /* 0 while stopped */
    int port;                           /* kept across restarts */
    enum collector_cert cert;
    bool require_client_cert;           /* AuthMode x509/certvalid instead of anon */
    const char *driver;                 /* rsyslog's netstream driver: "ossl" or "gtls" */
    char dir[HARNESS_PATH / 2];
    char ca[HARNESS_PATH];              /* the daemons' audit-syslog-ca */
    char client_cert[HARNESS_PATH];     /* a client certificate of the same CA */
    char client_key[HARNESS_PATH];
    char witness[HARNESS_PATH];         /* what rsyslog wrote, appended across restarts */
    char conf[HARNESS_PATH];
    char pidfile[HARNESS_PATH];
    char log[HARNESS_PATH];             /* rsyslogd's own stdout and stderr */
    char addr[32];                      /* "127.0.0.1:PORT", the daemons' audit-syslog */
};

/* 0 if rsyslogd and a TLS netstream driver (ossl, else gtls) are installed,
 * with the driver's name in *driver; -1 with the reason in why. */
int collector_check(const char **driver, char *why, size_t whylen);
/* Makes the directory, CA and certificates, picks a free loopback port and
 * starts rsyslogd presenting cert; returns once it completes a TLS
 * handshake with that certificate. With require_client_cert a client must
 * present a certificate of the test CA (rsyslog's x509/certvalid), else
 * anyone may send (anon). 0, or -1 with rsyslogd's log printed and nothing
 * left running. */
int collector_start(struct collector *c, enum collector_cert cert, bool require_client_cert);
/* SIGTERM and waits until rsyslogd is gone (SIGKILL after 10 s). 0 if it
 * exited by itself, -1 otherwise (or if it was not running). */
int collector_stop(struct collector *c);
/* Starts it again after collector_stop: the same port, CA and witness file
 * (appended to), presenting cert. 0 or -1 as collector_start. */
int collector_restart(struct collector *c, enum collector_cert cert);
/* Stops it if needed and removes the directory (QR_KEEP_TEST_DIRS keeps
 * it); clears c. A second call does nothing. 0, or -1 if rsyslogd did not
 * stop by itself or a process still runs on c's configuration. */
int collector_cleanup(struct collector *c);
/* How many processes run with c's configuration file in their argv (0
 * once it is stopped: the check that nothing outlives a test). */
int collector_survivors(const struct collector *c);

/* A TLS handshake verifying the collector under the test CA for name (an
 * IP address or a DNS name); 0, or -1 with the reason in why. */
int collector_handshake(const struct collector *c, const char *name, char *why, size_t whylen);

/* Sends one RFC 5424 message (APP-NAME app, MSGID msgid, MSG msg) over TLS,
 * verifying the collector's certificate for the name it presents (and
 * presenting the client certificate when it requires one). 0 or -1 with
 * the reason in why. */
int collector_send(const struct collector *c, const char *app, const char *msgid,
                   const char *msg, char *why, size_t whylen);
/* Waits up to timeout_ms until the witness file holds needle. */
bool collector_wait_for(const struct collector *c, const char *needle, int timeout_ms);
/* The whole witness file (caller frees); "" if rsyslog has written nothing yet. */
char *collector_witness(const struct collector *c);

#endif
