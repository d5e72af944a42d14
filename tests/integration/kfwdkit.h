/* What the kernel-path tests (test_relay_kernel, test_relay_kernel_veth)
 * share: whether this machine can run the program at all, the relay's own
 * account of it (control `stats` and /metrics), and a call between two
 * reference native clients (libnice, OpenSSL DTLS-SRTP, libsrtp2, Opus)
 * through a relay without signaling. Failures end the test (cmocka). */
#ifndef QUIETROOM_TEST_KFWDKIT_H
#define QUIETROOM_TEST_KFWDKIT_H

#include <stdbool.h>

#include <jansson.h>

#include "harness.h"
#include "refclient.h"

#define KFWD_SKIP 77
#define KFWD_TONE_A 440.0
#define KFWD_TONE_B 660.0

/* Can the kernel path run here: root, a relay built with it, a kernel with
 * BPF and TCX? Starts a relay with --kernel-forward auto on 127.0.0.1 and
 * reads what it says. 0 when the path came up; otherwise prints why and
 * returns KFWD_SKIP, or 1 when CI=true (a check skipped in CI must not
 * pass). A relay that does not start, or falls back for a reason that is
 * not about this machine (load_failed, attach_failed...), is a failure: 1. */
int kfwd_gate(const char *test);

/* The control `stats` kernel_path object (new reference); the test fails
 * without one. */
json_t *kfwd_path(struct relay_proc *r);
/* An integer member of it ("packets", "flows", "bytes"). */
long long kfwd_count(struct relay_proc *r, const char *name);
/* Whether it says active. */
bool kfwd_active(struct relay_proc *r);

/* GET /metrics with the bearer token (the test fails unless 200); caller
 * frees. */
char *kfwd_scrape(struct relay_proc *r, const char *token);
/* The value of the sample line `name value` (labels are part of name), or
 * -1 when there is no such line. */
double kfwd_sample(const char *metrics, const char *name);

/* A link of a session between two reference clients: side a (index 0) is
 * the DTLS client and sends KFWD_TONE_A, side b KFWD_TONE_B. */
struct kfwd_call {
    struct refclient *rc[2];
    json_t *creds;
};

/* Creates the client of one side, bound to local (an address, "::1"...).
 * Separate from kfwd_call_connect so that a test may create each side in
 * its own network namespace (the client's sockets and thread are made
 * here). */
void kfwd_call_client(struct kfwd_call *c, int side, const char *local);
/* Mints sid's credentials with r's secret and points side a at relay
 * address ra, side b at rb; starts both and waits until ICE, DTLS and SRTP
 * are ready on both. */
void kfwd_call_connect(struct kfwd_call *c, struct relay_proc *r, const char *sid,
                       const union netaddr *ra, const union netaddr *rb);
/* Media both ways for ms; each side must have decoded the other's tone.
 * The clients' stats go to st. */
void kfwd_call_talk(struct kfwd_call *c, int ms, struct refclient_stats st[2]);
void kfwd_call_free(struct kfwd_call *c);

/* The leg objects of link 0 of sid from control `session` (new
 * reference: {"a": {...}, "b": {...}}). */
json_t *kfwd_legs(struct relay_proc *r, const char *sid);

#endif
