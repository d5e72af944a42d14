/* quietroom-stunbench: what one forged connectivity check costs the relay.
 * Feeds a detached worker (no socket, no thread) the same Binding request
 * N times: its USERNAME a ufrag forged without the secret (the newest
 * version, a valid key id, an expiry within max-ttl, random other bytes),
 * and reports time per request and bytes answered per byte received. Run
 * it under `valgrind --tool=callgrind` for instruction counts:
 *
 *   quietroom-stunbench [N] [v1|v1-off|v2|real]
 *
 * "v1-off" is a forged v1 ufrag to a relay with accept-creds-v1 off; "real"
 * a genuine ufrag with a wrong password: what the 401 costs. */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "quietroom/base/bytes.h"
#include "quietroom/base/clock.h"
#include "quietroom/wire/creds.h"
#include "quietroom/wire/stun.h"
#include "relay.h"
#include "stats.h"
#include "worker.h"

#define BENCH_SECRET "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"

struct bench_out {
    uint64_t packets, bytes;
};

static int bench__send(void *ctx, uint32_t listen, struct mmsghdr *msg, unsigned n)
{
    struct bench_out *o = ctx;

    (void)listen;
    for (unsigned i = 0; i < n; i++) {
        o->packets++;
        o->bytes += msg[i].msg_hdr.msg_iov[0].iov_len;
    }
    return (int)n;
}

/* A ufrag of version v forged without the secret. */
static void bench__forge(uint8_t version, uint8_t kid, uint32_t expires, char *out)
{
    uint8_t raw[CREDS_UFRAG_LEN];
    size_t n = version == 1 ? 21 : 30; /* v2: fields and a 9-byte MAC */

    RAND_bytes(raw, sizeof(raw));
    raw[0] = version;
    raw[1] = kid;
    bytes_put32(raw + 2, expires);
    raw[16] = 0;
    EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    const char *mode = argc > 2 ? argv[2] : "v2";
    static struct relay r;
    struct hmac *sha1 = hmac_new(HMAC_SHA1), *sha256 = hmac_new(HMAC_SHA256);
    struct bench_out out = {0};
    struct worker *w;
    struct worker_now now;
    union netaddr src;
    char ufrag[CREDS_UFRAG_LEN + 1], username[128], err[128];
    uint8_t req[512], buf[QR_PACKET_MAX];
    struct stun_request sr = {.txid = {1, 2, 3}, .username = username,
                              .key = (const uint8_t *)"0123456789abcdef0123456789abcdef",
                              .key_len = CREDS_PWD_LEN, .has_priority = true, .priority = 1,
                              .ice_controlling = true, .fingerprint = true};
    size_t len;
    uint64_t t0, t1;

    if (n <= 0 || sha1 == NULL || sha256 == NULL ||
        keyring_parse(BENCH_SECRET, &r.keyring[0], err, sizeof(err)) != 0)
        return 2;
    atomic_store(&r.keys, &r.keyring[0]);
    atomic_store(&r.live.max_ttl_s, QR_CREDS_MAX_TTL_S);
    atomic_store(&r.live.creds_v1_refused, strcmp(mode, "v1-off") == 0);
    metrics_histogram_init(&r.loss, stats_loss_bounds, STATS_LOSS_BOUNDS, 1e6);
    r.seed = 42;
    if ((r.table = table_new(1024, r.seed, events_leg_down, &r)) == NULL ||
        (w = worker_new_detached(&r, 0, 1, bench__send, &out)) == NULL)
        return 2;
    now.wall_ms = clock_wall_ms();
    now.mono_us = clock_mono_us();
    now.mono_ms = now.mono_us / 1000;
    if (strcmp(mode, "real") == 0) {
        struct creds_link l;

        if (creds_derive_link(&r.keyring[0], "bench", 0, (uint32_t)(now.wall_ms / 1000) + 600,
                              sha256, &l) != 0)
            return 2;
        memcpy(ufrag, l.ufrag[0], sizeof(ufrag));
    } else {
        bench__forge(strncmp(mode, "v1", 2) == 0 ? 1 : CREDS_VERSION, r.keyring[0].keys[0].id,
                     (uint32_t)(now.wall_ms / 1000) + 600, ufrag);
    }
    snprintf(username, sizeof(username), "%s:abcd", ufrag);
    if ((len = stun_build_request(req, sizeof(req), &sr, sha1)) == 0 ||
        netaddr_parse("192.0.2.7:40000", &src) != 0)
        return 2;
    t0 = clock_mono_us();
    for (long i = 0; i < n; i++) {
        memcpy(buf, req, len);
        worker_handle(w, 0, &src, buf, len, &now);
        worker_tx_flush(w, 0);
    }
    t1 = clock_mono_us();
    printf("mode %s ufrag %s: %ld requests of %zu bytes, %.3f us each; answered %llu "
           "(%llu bytes): %.3f bytes out per byte in\n",
           mode, ufrag, n, len, (double)(t1 - t0) / (double)n, (unsigned long long)out.packets,
           (unsigned long long)out.bytes, (double)out.bytes / ((double)n * (double)len));
    worker_free(w);
    table_free(r.table);
    hmac_free(sha1);
    hmac_free(sha256);
    return 0;
}
