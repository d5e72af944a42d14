/* Integration-test harness: runs the real quietroom-relay binary on
 * loopback in a temporary directory, talks to its control endpoint, mints
 * credentials with the real quietroomctl, and offers raw UDP peers that
 * speak STUN with our codec. */
#ifndef QUIETROOM_TEST_HARNESS_H
#define QUIETROOM_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "quietroom/wire/creds.h"
#include "quietroom/base/keyring.h"
#include "quietroom/base/netaddr.h"
#include "quietroom/wire/stun.h"

#define HARNESS_PATH 256

struct relay_proc {
    pid_t pid;
    int exit_status;            /* set by relay_stop */
    char dir[HARNESS_PATH / 2];
    char secret[HARNESS_PATH];
    char audit[HARNESS_PATH];
    char audit_key[HARNESS_PATH];
    char log[HARNESS_PATH];
    char control[NETADDR_STRLEN];
    union netaddr listen[2];
    int n_listen;
    union netaddr listen_tcp[2];    /* ICE-TCP, with --listen-tcp */
    int n_listen_tcp;
    int ops_port;               /* 0 without --ops-listen */
    struct keyring keys;
};

/* Starts the relay on the given listen addresses (port 0 allowed) with
 * extra options (NULL-terminated, may be NULL) and waits until it serves.
 * Returns 0 or -1; a relay that exited on its own leaves pid 0 and its
 * status in exit_status. From the environment: QR_RELAY_PREFIX, a command
 * (words split on blanks) the relay runs under, e.g. "setpriv
 * --bounding-set=-bpf,..." or "ip netns exec NS"; QR_RELAY_EXPECT_LOG, a
 * text the relay's log must hold once it serves, or the start fails. Both
 * hold for relay_restart too. */
int relay_start(struct relay_proc *r, const char *const *listen, const char *const *extra);
/* SIGTERM (a drain), and a second SIGTERM if it is still running 100 ms
 * later; then waits. Returns the exit status (-1 if it had to be killed). */
int relay_stop(struct relay_proc *r);
/* SIGKILL, as a crashed machine or the OOM killer ends it, then reaps it:
 * 0 if it died of that signal (pid 0 after, not a failed exit), else -1. */
int relay_kill9(struct relay_proc *r);
/* Starts the relay again after the test stopped or killed it (pid 0): the
 * same directory, secret, audit log, control and listen ports; extra as for
 * relay_start (give a shared --secret-file again if it had one). 0 or -1. */
int relay_restart(struct relay_proc *r, const char *const *extra);
/* The signaling configuration line naming r: "relay = NAME CONTROL MEDIA
 * [MEDIA2] [tcp:TCP-MEDIA...]", its TCP addresses if it listens on TCP. 0,
 * or -1 if it does not fit (RELAY_CONF_LINE_MAX always does). */
#define RELAY_CONF_LINE_MAX (6 * NETADDR_STRLEN + 64)
int relay_conf_line(const struct relay_proc *r, const char *name, char *out, size_t len);
/* Waits up to timeout_ms for the relay to exit by itself; returns its exit
 * status, or -2 if it is still running. */
int relay_wait(struct relay_proc *r, int timeout_ms);
/* Stops if needed and removes the temporary directory. Returns 0 if the
 * relay exited cleanly (status 0: no sanitizer report, no leak), else -1
 * with its log printed. */
int relay_cleanup(struct relay_proc *r);

/* One control call: {"op": op, "session": session?}; returns the response or
 * NULL. The caller owns the result. */
json_t *relay_call(struct relay_proc *r, const char *op, const char *session);
/* Reads a counter from the stats, e.g. ("dropped", "unbound"). */
long long relay_stat(struct relay_proc *r, const char *group, const char *name);

/* Runs `quietroomctl creds` for sid and returns its JSON output. */
json_t *ctl_creds(struct relay_proc *r, const char *sid, int links);
/* Credentials of one leg from ctl_creds output. */
const char *creds_ufrag(json_t *creds, int link, int side);
const char *creds_pwd(json_t *creds, int link, int side);

/* Runs argv to completion; returns its stdout and stderr together (caller
 * frees) and its exit code. */
char *run_command(char *const argv[], int *exit_code);

/* Reads a whole file into a NUL-terminated string; caller frees. */
char *read_text(const char *path);

/* A raw UDP peer on loopback. */
struct udp_peer {
    int fd;
    union netaddr local;
};

int peer_open(struct udp_peer *p, const char *bind_addr);
void peer_close(struct udp_peer *p);
int peer_send(struct udp_peer *p, const union netaddr *to, const void *buf, size_t len);
/* Waits up to timeout_ms for a datagram; returns its length or -1. */
int peer_recv(struct udp_peer *p, void *buf, size_t cap, int timeout_ms, union netaddr *from);

/* What a connectivity check should carry. */
struct check {
    const char *ufrag;          /* the relay's ufrag for this leg */
    const char *pwd;            /* the password to sign with */
    bool nominate;
    bool controlled;            /* claim ICE-CONTROLLED instead of CONTROLLING */
    bool no_priority;
};

/* Builds the Binding request c describes into req; its length (0 on
 * failure), its transaction id in txid. */
size_t check_request(const struct check *c, uint8_t *req, size_t cap,
                     uint8_t txid[STUN_TXID_LEN]);

/* Sends a Binding request and waits for the matching response. Returns 1
 * with the response parsed into resp (raw bytes in raw), 0 on timeout. */
int peer_check(struct udp_peer *p, const union netaddr *relay, const struct check *c,
               struct stun_msg *resp, uint8_t *raw, int timeout_ms);

/* quietroom-signal on loopback, in front of a running relay, with an EHR
 * key pair made by `quietroomctl keygen`. */
struct signal_proc {
    pid_t pid;
    int exit_status;
    int port;
    int ops_port;                   /* 0 without ops-listen */
    char dir[HARNESS_PATH / 2];
    char conf[HARNESS_PATH];
    char audit[HARNESS_PATH];
    char audit_key[HARNESS_PATH];
    char log[HARNESS_PATH];
    char ehr_key[HARNESS_PATH];     /* private key: tests mint tokens with it */
    char cert[HARNESS_PATH];        /* set when started with TLS */
};

#define TEST_ORIGIN "https://ehr.example.org"
#define TEST_ISSUER "https://ehr.example.org/issuer"
#define TEST_AUDIENCE "quietroom-test"

/* Starts signaling for relay r. extra: more "key = value" lines for its
 * [signal] section (NULL-terminated, may be NULL). Waits until it serves and
 * sees the relay healthy. Returns 0 or -1. */
int signal_start(struct signal_proc *s, const struct relay_proc *r, bool tls,
                 const char *const *extra);
/* Another replica beside `first` (a cluster: give the cluster lines and a
 * node-id in extra): the same EHR keys and audit key, its own directory,
 * port, audit log and state. Plain HTTP only. */
int signal_start_replica(struct signal_proc *s, const struct signal_proc *first,
                         const struct relay_proc *r, const char *const *extra);
/* Starts signaling again after the test stopped or killed it (pid 0): the
 * same configuration, state-dir, audit log and port. */
int signal_restart(struct signal_proc *s);
/* SIGTERM (a drain), then a second SIGTERM if it still runs 100 ms later
 * (open sessions keep a drain going); waits. Like relay_stop. */
int signal_stop(struct signal_proc *s);
/* Waits up to timeout_ms for signaling to exit by itself (a drain that is
 * over); returns its exit status, or -2 if it still runs. */
int signal_wait_exit(struct signal_proc *s, int timeout_ms);
/* Like relay_cleanup. */
int signal_cleanup(struct signal_proc *s);
/* How many relays signaling's /healthz calls healthy, or -1. Plain HTTP. */
int signal_relays_healthy(const struct signal_proc *s);
/* GET path from the server; returns the whole response (status line and
 * headers too, caller frees) or NULL. Plain HTTP only. */
char *http_get(int port, const char *path);
/* The same with extra header lines (each ending in "\r\n"), or NULL. */
char *http_request(int port, const char *path, const char *headers);
/* The status code of a response http_get returned, or -1. */
int http_status(const char *response);
/* The body of a response (after the blank line), or NULL. */
const char *http_body(const char *response);
/* Mints a token with the test EHR key: `quietroomctl token` plus args
 * (NULL-terminated "--flag", "value" pairs may follow the sid/role/sub).
 * Caller frees. */
char *mint_token(const struct signal_proc *s, const char *sid, const char *role, const char *sub,
                 const char *const *more);

/* Monotonic milliseconds. */
uint64_t now_ms(void);

#endif
