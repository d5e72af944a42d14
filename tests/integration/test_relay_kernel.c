/* The kernel path (issue 15): relays started with --kernel-forward on, on
 * loopback, where a TCX program forwards bound legs' DTLS and RTP/RTCP.
 * Everything the relay promises must hold as on the userspace path: real
 * calls hear each other, stats are the same for the same traffic, revoke
 * stops forwarding within 100 ms, a leg moves only on a nominated check,
 * consent expiry ends forwarding, unbound sources are never forwarded. And
 * what is particular to it: the capabilities are dropped after attaching,
 * kill -9 leaves no program attached, and without the capabilities `auto`
 * falls back (and `on` refuses to start).
 *
 * Needs root and a kernel with BPF and TCX (>= 6.6): without them main()
 * exits 77 (ctest: skipped), or 1 when CI=true. Each test says in a comment
 * what would make it fail. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <net/if.h>

#include "kfwdkit.h"
#include "world.h"
#include "quietroom/base/bytes.h"
#include "quietroom/base/clock.h"

#define WAIT_MS 1000     /* for something that must arrive */
#define SILENCE_MS 300   /* for something that must not */
#define CALL_MS 3000
#define OPS_TOKEN "kernel-ops-token-0123456789"
#define REVOKE_LIMIT_MS 100
#define CONSENT_S 2
#define NOCAPS_PREFIX                                                                  \
    "setpriv --bounding-set=-bpf,-net_admin,-sys_admin,-perfmon "                      \
    "--inh-caps=-bpf,-net_admin,-sys_admin,-perfmon"

#define M_ACTIVE "quietroom_relay_kernel_path_active"
#define M_FLOWS "quietroom_relay_kernel_path_flows"
#define M_PACKETS "quietroom_relay_kernel_path_packets_total"
#define M_BYTES "quietroom_relay_kernel_path_bytes_total"
#define M_USERSPACE "quietroom_relay_kernel_path_userspace_packets_total"
#define M_FORWARDED "quietroom_relay_packets_forwarded_total"
#define M_FALLBACK_NOPRIV "quietroom_relay_kernel_path_fallback{reason=\"no_privileges\"}"

/* --- worlds ------------------------------------------------------------------ */

static const char *const both_families[] = {"127.0.0.1:0", "[::1]:0", NULL};

/* A relay (no signaling) on 127.0.0.1 and ::1 serving ops with OPS_TOKEN,
 * with --kernel-forward mode and more options (NULL-terminated, or NULL). */
static int kworld_start(struct world *w, const char *mode, const char *const *more)
{
    const char *extra[16] = {"--kernel-forward", mode};
    struct world_opts o = {.no_signal = true, .listen = both_families, .ops_token = OPS_TOKEN,
                           .relay_extra = extra};
    int n = 2;

    for (int i = 0; more != NULL && more[i] != NULL && n < 15; i++)
        extra[n++] = more[i];
    extra[n] = NULL;
    return world_start(w, &o);
}

static int setup_on(void **state)
{
    struct world *w = calloc(1, sizeof(*w));

    *state = w;
    return w != NULL ? kworld_start(w, "on", NULL) : -1;
}

static int setup_consent(void **state)
{
    static const char *const more[] = {"--consent-timeout", "2", NULL};
    struct world *w = calloc(1, sizeof(*w));

    *state = w;
    return w != NULL ? kworld_start(w, "on", more) : -1;
}

static int setup_off(void **state)
{
    struct world *w = calloc(1, sizeof(*w));

    *state = w;
    return w != NULL ? kworld_start(w, "off", NULL) : -1;
}

static int setup_nothing(void **state)
{
    *state = NULL;
    return 0;
}

static struct relay_proc *relay_of(void **state)
{
    return &((struct world *)*state)->relay;
}

/* --- raw UDP legs ------------------------------------------------------------ */

struct pair {
    json_t *creds;
    struct udp_peer a, b;
};

static void check_ok(struct udp_peer *p, const union netaddr *relay, const char *ufrag,
                     const char *pwd, bool nominate)
{
    struct check c = {.ufrag = ufrag, .pwd = pwd, .nominate = nominate};
    uint8_t raw[2048];
    struct stun_msg m;

    assert_int_equal(peer_check(p, relay, &c, &m, raw, WAIT_MS), 1);
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
}

/* Both legs of link 0 of sid bound by nominated checks, from 127.0.0.1. */
static void pair_open(struct relay_proc *r, struct pair *pr, const char *sid)
{
    pr->creds = ctl_creds(r, sid, 1);
    assert_non_null(pr->creds);
    assert_int_equal(peer_open(&pr->a, "127.0.0.1:0"), 0);
    assert_int_equal(peer_open(&pr->b, "127.0.0.1:0"), 0);
    check_ok(&pr->a, &r->listen[0], creds_ufrag(pr->creds, 0, 0), creds_pwd(pr->creds, 0, 0),
             true);
    check_ok(&pr->b, &r->listen[0], creds_ufrag(pr->creds, 0, 1), creds_pwd(pr->creds, 0, 1),
             true);
}

static void pair_close(struct pair *pr)
{
    peer_close(&pr->a);
    peer_close(&pr->b);
    json_decref(pr->creds);
}

/* An RTP packet of len bytes (>= 12): version 2, PT 111, ts = index * 480
 * (48 kHz, 10 ms) from a per-SSRC base. */
static size_t rtp(uint8_t *buf, size_t len, uint16_t seq, uint32_t ts, uint32_t ssrc)
{
    memset(buf, 0x5a, len);
    buf[0] = 0x80;
    buf[1] = 111;
    bytes_put16(buf + 2, seq);
    bytes_put32(buf + 4, ts);
    bytes_put32(buf + 8, ssrc);
    return len;
}

/* A DTLS 1.2 application-data record with a body of len bytes. */
static size_t dtls(uint8_t *buf, size_t len, uint16_t seq)
{
    memset(buf, 0xd7, 13 + len);
    buf[0] = 23;
    buf[1] = 0xfe;
    buf[2] = 0xfd;
    bytes_put16(buf + 3, 1);      /* epoch */
    memset(buf + 5, 0, 4);
    bytes_put16(buf + 9, seq);    /* sequence number (48 bits) */
    bytes_put16(buf + 11, (uint16_t)len);
    return 13 + len;
}

/* An RTCP sender report (PT 200), 28 bytes. */
static size_t rtcp_sr(uint8_t *buf, uint32_t ssrc, uint32_t ts)
{
    memset(buf, 0, 28);
    buf[0] = 0x80;
    buf[1] = 200;
    bytes_put16(buf + 2, 6);
    bytes_put32(buf + 4, ssrc);
    bytes_put32(buf + 16, ts);
    return 28;
}

/* Sends an RTP packet from one peer; whether the other gets it within
 * timeout_ms. */
static bool arrives(struct udp_peer *from, struct udp_peer *to, const union netaddr *relay,
                    uint16_t seq, int timeout_ms)
{
    uint8_t pkt[200], got[2048];
    size_t n = rtp(pkt, 120, seq, seq * 480u, 0x0f0f0f0f);

    peer_send(from, relay, pkt, n);
    return peer_recv(to, got, sizeof(got), timeout_ms, NULL) == (int)n;
}

static bool forwarded(struct udp_peer *from, struct udp_peer *to, const union netaddr *relay,
                      uint16_t seq)
{
    return arrives(from, to, relay, seq, WAIT_MS);
}

static bool not_forwarded(struct udp_peer *from, struct udp_peer *to,
                          const union netaddr *relay, uint16_t seq)
{
    return !arrives(from, to, relay, seq, SILENCE_MS);
}

static void expect_silence(struct udp_peer *p)
{
    uint8_t got[2048];

    assert_int_equal(peer_recv(p, got, sizeof(got), SILENCE_MS, NULL), -1);
}

/* A sample that must exist in /metrics. */
static double need(const char *metrics, const char *name)
{
    double v = kfwd_sample(metrics, name);

    if (v < 0)
        fail_msg("no sample %s in /metrics", name);
    return v;
}

/* --- (a) calls of reference clients ------------------------------------------ */

/* A reference-client call between local_a and local_b through relay
 * addresses ra and rb. Fails if a tone does not arrive; and if
 * kernel_counts, unless the kernel forwarded most of the call (a program
 * that passes everything up, flows not installed on bind, a counter not
 * pulled from the kernel) with the active gauge at 1. */
static void call_through(struct relay_proc *r, const char *sid, const char *local_a,
                         const char *local_b, int ra, int rb, bool kernel_counts)
{
    struct kfwd_call c = {0};
    struct refclient_stats st[2];
    json_t *legs;
    double kp, kb, us, fwd, k0;
    long long leg_fwd, heard;
    char *m;

    m = kfwd_scrape(r, OPS_TOKEN);
    k0 = need(m, M_PACKETS);
    free(m);
    kfwd_call_client(&c, 0, local_a);
    kfwd_call_client(&c, 1, local_b);
    kfwd_call_connect(&c, r, sid, &r->listen[ra], &r->listen[rb]);
    if (kernel_counts)
        assert_int_equal(kfwd_count(r, "flows"), 2);
    kfwd_call_talk(&c, CALL_MS, st);

    /* The legs first: the clients go on sending, so the relay's totals,
     * read after, can only be higher. */
    legs = kfwd_legs(r, sid);
    m = kfwd_scrape(r, OPS_TOKEN);
    kp = need(m, M_PACKETS) - k0;
    kb = need(m, M_BYTES);
    us = need(m, M_USERSPACE);
    fwd = need(m, M_FORWARDED);
    leg_fwd = json_integer_value(json_object_get(json_object_get(legs, "a"),
                                                 "packets_forwarded")) +
              json_integer_value(json_object_get(json_object_get(legs, "b"),
                                                 "packets_forwarded"));
    heard = (long long)(st[0].rtp_received + st[1].rtp_received);
    print_message("%s: peers received %lld RTP; legs forwarded %lld; kernel %.0f packets "
                  "(%.0f bytes), %.0f of its flows' packets reached userspace; "
                  "forwarded_total %.0f\n",
                  sid, heard, leg_fwd, kp, kb, us, fwd);
    /* Everything a peer received came through the relay, and the legs'
     * counters (which include the kernel's) say so. */
    assert_true(leg_fwd >= heard);
    assert_true(fwd >= (double)leg_fwd);
    /* Last seen comes from the flows' counters too: both legs were heard
     * within the last second (media went on until the legs were read). */
    for (int side = 0; side < 2; side++) {
        long long seen = json_integer_value(
            json_object_get(json_object_get(legs, side == 0 ? "a" : "b"), "last_seen_ms"));
        long long now = (long long)clock_wall_ms();

        if (seen < now - 1000 || seen > now + 100)
            fail_msg("leg %c last seen %lld ms before now", 'a' + side, now - seen);
    }
    if (kernel_counts) {
        assert_int_equal((int)need(m, M_ACTIVE), 1);
        assert_int_equal((int)need(m, M_FLOWS), 2);
        /* Most of the call went through the program: all but the start
         * (DTLS before both legs were bound) and what was in flight. */
        assert_true(kp >= 0.8 * (double)leg_fwd);
        assert_true(kb >= kp * 40);
        assert_true(us <= 0.2 * kp);
    }
    free(m);
    json_decref(legs);
    kfwd_call_free(&c);
}

static void test_call_ipv4_through_the_kernel(void **state)
{
    call_through(relay_of(state), "k-call-v4", "127.0.0.1", "127.0.0.1", 0, 0, true);
}

/* Breaks if IPv6 is punted to userspace (the issue lets it be, with the
 * reason documented; the veth test asks the same). */
static void test_call_ipv6_through_the_kernel(void **state)
{
    call_through(relay_of(state), "k-call-v6", "::1", "::1", 1, 1, true);
}

/* One leg on IPv4, the other on IPv6: whichever path forwards it (the
 * program cannot change the IP version in place), the call works. Fails if
 * a flow is installed for such a link (the program would rewrite an IPv4
 * packet with IPv6 addresses) or if such links are dropped. */
static void test_call_ipv4_to_ipv6_still_works(void **state)
{
    call_through(relay_of(state), "k-call-mixed", "127.0.0.1", "::1", 0, 1, false);
}

/* --- (b) the same stats on both paths ----------------------------------------- */

#define SCRIPT_TICKS 140 /* 10 ms each: > 1 s, so that the clock rate is estimated */

/* A stream's sending order: indexes 0..n-1, then edited. */
struct order {
    int idx[SCRIPT_TICKS + 8];
    int n;
};

static void order_init(struct order *o, int n)
{
    o->n = n;
    for (int i = 0; i < n; i++)
        o->idx[i] = i;
}

static int order_find(const struct order *o, int v)
{
    for (int i = 0; i < o->n; i++) {
        if (o->idx[i] == v)
            return i;
    }
    fail_msg("index %d not in the order", v);
    return -1;
}

static void order_drop(struct order *o, int v)
{
    int at = order_find(o, v);

    memmove(o->idx + at, o->idx + at + 1, (size_t)(o->n - at - 1) * sizeof(int));
    o->n--;
}

/* v goes right after `after` (v < after: sent late). */
static void order_late(struct order *o, int v, int after)
{
    order_drop(o, v);
    int at = order_find(o, after) + 1;

    memmove(o->idx + at + 1, o->idx + at, (size_t)(o->n - at) * sizeof(int));
    o->idx[at] = v;
    o->n++;
}

static void order_dup(struct order *o, int v)
{
    int at = order_find(o, v) + 1;

    memmove(o->idx + at + 1, o->idx + at, (size_t)(o->n - at) * sizeof(int));
    o->idx[at] = v;
    o->n++;
}

struct stream {
    uint32_t ssrc;
    uint16_t seq0;
    uint32_t ts0;
    struct order order;
};

/* The script: from a, two SSRCs (the second wraps its sequence number)
 * with losses, reordering and a duplicate; from b one SSRC with losses
 * and reordering; RTCP sender reports and DTLS records both ways; sizes
 * vary. */
static void script_streams(struct stream s[3])
{
    s[0] = (struct stream){.ssrc = 0xa1a1a1a1, .seq0 = 1000, .ts0 = 160000};
    s[1] = (struct stream){.ssrc = 0xa2a2a2a2, .seq0 = 65480, .ts0 = 4294900000u};
    s[2] = (struct stream){.ssrc = 0xb1b1b1b1, .seq0 = 0, .ts0 = 777};
    for (int i = 0; i < 3; i++)
        order_init(&s[i].order, SCRIPT_TICKS);
    order_drop(&s[0].order, 10);
    order_drop(&s[0].order, 11);
    order_drop(&s[0].order, 12);
    order_late(&s[0].order, 20, 21);
    order_late(&s[0].order, 50, 53);
    order_dup(&s[0].order, 80);
    order_drop(&s[1].order, 30);
    order_late(&s[1].order, 60, 61);
    order_late(&s[1].order, 100, 104);
    order_drop(&s[2].order, 5);
    order_drop(&s[2].order, 6);
    order_late(&s[2].order, 100, 101);
}

/* Sends stream st's packet at position k of its order, if any; 1 if sent. */
static int script_send_rtp(struct udp_peer *p, const union netaddr *relay, const struct stream *st,
                           int k)
{
    uint8_t pkt[400];
    int i;

    if (k >= st->order.n)
        return 0;
    i = st->order.idx[k];
    peer_send(p, relay, pkt,
              rtp(pkt, 52 + (size_t)(i % 5) * 17 + (st->ssrc & 0xf), (uint16_t)(st->seq0 + i),
                  st->ts0 + (uint32_t)i * 480u, st->ssrc));
    return 1;
}

/* Reads whatever has arrived at p (without waiting); adds to *n. */
static void drain(struct udp_peer *p, int *n, int wait_ms)
{
    uint8_t got[2048];

    while (peer_recv(p, got, sizeof(got), wait_ms, NULL) > 0)
        (*n)++;
}

/* A leg's counters without the times and jitter: the same traffic must
 * give the same object on both paths. Jitter is kept aside: it is computed
 * from arrival times, which differ between two runs, so it is compared
 * loosely (both >= 0, which needs the same clock rate detected). */
static json_t *leg_norm(json_t *leg, json_t *jitters)
{
    json_t *rtp = json_object_get(leg, "rtp"), *streams = json_array(), *s;
    size_t i;

    json_array_foreach(rtp, i, s)
    {
        json_array_append_new(jitters, json_incref(json_object_get(s, "jitter_ms")));
        json_array_append_new(
            streams, json_pack("{s:O,s:O,s:O,s:O,s:O}", "ssrc", json_object_get(s, "ssrc"),
                               "clock_rate", json_object_get(s, "clock_rate"), "expected",
                               json_object_get(s, "expected"), "lost",
                               json_object_get(s, "lost"), "reordered",
                               json_object_get(s, "reordered")));
    }
    /* Slots may be filled in another order: sort by SSRC. */
    for (size_t a = 0; a < json_array_size(streams); a++) {
        for (size_t b = a + 1; b < json_array_size(streams); b++) {
            json_t *x = json_array_get(streams, a), *y = json_array_get(streams, b);

            if (json_integer_value(json_object_get(x, "ssrc")) >
                json_integer_value(json_object_get(y, "ssrc"))) {
                json_incref(x);
                json_array_set(streams, a, y);
                json_array_set_new(streams, b, x);
            }
        }
    }
    return json_pack("{s:O,s:O,s:O,s:O,s:O,s:o}", "packets_in",
                     json_object_get(leg, "packets_in"), "bytes_in",
                     json_object_get(leg, "bytes_in"), "packets_forwarded",
                     json_object_get(leg, "packets_forwarded"), "bytes_forwarded",
                     json_object_get(leg, "bytes_forwarded"), "moves",
                     json_object_get(leg, "moves"), "rtp", streams);
}

/* The leg.down records of the audit log, by role, without times and
 * jitter (kept aside as in leg_norm); streams sorted by their counters
 * (the record names no SSRC). */
static json_t *down_norm(const char *audit, json_t *jitters)
{
    json_t *out = json_object();
    const char *line = audit;

    while (line != NULL && *line != '\0') {
        const char *end = strchr(line, '\n');
        json_error_t jerr;
        json_t *rec = json_loadb(line, end ? (size_t)(end - line) : strlen(line), 0, &jerr);
        json_t *d = json_object_get(rec, "detail"), *streams = json_array(), *s;
        const char *role = json_string_value(
            json_object_get(json_array_get(json_object_get(rec, "agents"), 0), "role"));
        size_t i;

        if (rec != NULL && role != NULL &&
            strcmp(json_string_value(json_object_get(rec, "type")), "leg.down") == 0) {
            json_array_foreach(json_object_get(d, "rtp_streams"), i, s)
            {
                char key[96];

                json_array_append_new(jitters, json_incref(json_object_get(s, "jitter_ms")));
                snprintf(key, sizeof(key), "%010lld/%010lld/%010lld",
                         json_integer_value(json_object_get(s, "expected")),
                         json_integer_value(json_object_get(s, "lost")),
                         json_integer_value(json_object_get(s, "reordered")));
                json_array_append_new(streams, json_string(key));
            }
            for (size_t a = 0; a < json_array_size(streams); a++) {
                for (size_t b = a + 1; b < json_array_size(streams); b++) {
                    json_t *x = json_array_get(streams, a), *y = json_array_get(streams, b);

                    if (strcmp(json_string_value(x), json_string_value(y)) > 0) {
                        json_incref(x);
                        json_array_set(streams, a, y);
                        json_array_set_new(streams, b, x);
                    }
                }
            }
            json_object_set_new(
                out, role,
                json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:o}", "reason",
                          json_object_get(rec, "reason"), "packets_in",
                          json_object_get(d, "packets_in"), "bytes_in",
                          json_object_get(d, "bytes_in"), "packets_forwarded",
                          json_object_get(d, "packets_forwarded"), "bytes_forwarded",
                          json_object_get(d, "bytes_forwarded"), "moves",
                          json_object_get(d, "moves"), "rtp_streams", streams));
        } else {
            json_decref(streams);
        }
        json_decref(rec);
        line = end ? end + 1 : NULL;
    }
    return out;
}

struct script_out {
    json_t *legs, *down, *jitters;
    long long kernel_packets, userspace_packets;
    int sent[2], received[2];
    int with_options;             /* packets sent with IP options */
};

/* Runs the script once through a fresh relay with --kernel-forward mode;
 * with ip_options, every tenth packet of a's first SSRC carries IPv4
 * options (four NOPs), which the program passes up to the sockets. */
static void script_run(const char *mode, bool ip_options, struct script_out *out)
{
    struct world w;
    struct relay_proc *r = &w.relay;
    struct stream s[3];
    struct pair pr;
    uint8_t pkt[400];
    json_t *legs;
    char *audit;

    memset(out, 0, sizeof(*out));
    out->jitters = json_array();
    script_streams(s);
    assert_int_equal(kworld_start(&w, mode, NULL), 0);
    pair_open(r, &pr, "k-script");
    const union netaddr *ra = &r->listen[0];
    struct timespec tick;

    clock_gettime(CLOCK_MONOTONIC, &tick);
    for (int k = 0; k < SCRIPT_TICKS + 8; k++) {
        if (ip_options && k % 10 == 4) {
            /* IP options: the program leaves these to the sockets, which
             * must account them as the userspace path does. */
            static const uint8_t nops[4] = {1, 1, 1, 1};

            int sent;

            assert_int_equal(setsockopt(pr.a.fd, IPPROTO_IP, IP_OPTIONS, nops, sizeof(nops)), 0);
            sent = script_send_rtp(&pr.a, ra, &s[0], k);
            out->sent[0] += sent;
            out->with_options += sent;
            assert_int_equal(setsockopt(pr.a.fd, IPPROTO_IP, IP_OPTIONS, NULL, 0), 0);
        } else {
            out->sent[0] += script_send_rtp(&pr.a, ra, &s[0], k);
        }
        out->sent[0] += script_send_rtp(&pr.a, ra, &s[1], k);
        out->sent[1] += script_send_rtp(&pr.b, ra, &s[2], k);
        if (k % 25 == 3) {
            peer_send(&pr.a, ra, pkt, rtcp_sr(pkt, s[0].ssrc, (uint32_t)k * 480u));
            peer_send(&pr.b, ra, pkt, rtcp_sr(pkt, s[2].ssrc, (uint32_t)k * 480u));
            out->sent[0]++;
            out->sent[1]++;
        }
        if (k % 40 == 7) {
            peer_send(&pr.a, ra, pkt, dtls(pkt, 40 + (size_t)k, (uint16_t)k));
            peer_send(&pr.b, ra, pkt, dtls(pkt, 90 + (size_t)k, (uint16_t)k));
            out->sent[0]++;
            out->sent[1]++;
        }
        drain(&pr.b, &out->received[0], 0);
        drain(&pr.a, &out->received[1], 0);
        /* On a fixed grid, not 10 ms after the last tick: the clock rate
         * the relay estimates over a second must come out 48 kHz however
         * slowly each tick runs (sanitizers, a busy machine). */
        tick.tv_nsec += 10000000L;
        if (tick.tv_nsec >= 1000000000L) {
            tick.tv_sec++;
            tick.tv_nsec -= 1000000000L;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL);
    }
    drain(&pr.b, &out->received[0], 200);
    drain(&pr.a, &out->received[1], 200);

    legs = kfwd_legs(r, "k-script");
    out->legs = json_pack("{s:o,s:o}", "a", leg_norm(json_object_get(legs, "a"), out->jitters),
                          "b", leg_norm(json_object_get(legs, "b"), out->jitters));
    json_decref(legs);
    out->kernel_packets = kfwd_count(r, "packets");
    out->userspace_packets = kfwd_count(r, "userspace_packets");
    if (strcmp(mode, "off") == 0)
        assert_false(kfwd_active(r));
    else
        assert_true(kfwd_active(r));
    /* The shutdown writes leg.down for both legs, with the kernel's
     * counters pulled first. */
    assert_int_equal(relay_stop(r), 0);
    audit = read_text(r->audit);
    assert_non_null(audit);
    out->down = down_norm(audit, out->jitters);
    free(audit);
    pair_close(&pr);
    assert_int_equal(world_stop(&w), 0);
    print_message("%s: sent %d/%d (%d with IP options), received %d/%d, kernel packets %lld, "
                  "kernel-path packets that reached the sockets %lld\n",
                  mode, out->sent[0], out->sent[1], out->with_options, out->received[0],
                  out->received[1], out->kernel_packets, out->userspace_packets);
}

static void script_free(struct script_out *o)
{
    json_decref(o->legs);
    json_decref(o->down);
    json_decref(o->jitters);
}

static void assert_json_equal(const char *what, json_t *off, json_t *on)
{
    if (!json_equal(off, on)) {
        char *a = json_dumps(off, JSON_SORT_KEYS), *b = json_dumps(on, JSON_SORT_KEYS);

        print_error("%s differ:\n  off: %s\n  on:  %s\n", what, a, b);
        free(a);
        free(b);
        fail();
    }
}

/* The script through a relay with the kernel path off, then on; the
 * figures must be the same. */
static void stats_compare(bool ip_options)
{
    struct script_out off, on;
    json_t *stream, *j;
    size_t i;

    script_run("off", ip_options, &off);
    script_run("on", ip_options, &on);
    /* No loss on loopback: what was sent arrived, on both paths. */
    for (int d = 0; d < 2; d++) {
        assert_int_equal(off.received[d], off.sent[d]);
        assert_int_equal(on.received[d], on.sent[d]);
    }
    assert_int_equal(off.kernel_packets, 0);
    /* All but nothing went through the program (every packet was sent
     * after both legs were bound). */
    assert_true(on.kernel_packets >= (on.sent[0] + on.sent[1]) * 9 / 10);
    /* The packets with options went to the sockets, and were counted so. */
    assert_int_equal(on.userspace_packets, on.with_options);
    assert_int_equal(on.kernel_packets + on.with_options, on.sent[0] + on.sent[1]);

    /* The script did what it says: losses and reordering were seen. */
    stream = json_array_get(json_object_get(json_object_get(off.legs, "a"), "rtp"), 0);
    assert_int_equal(json_array_size(json_object_get(json_object_get(off.legs, "a"), "rtp")), 2);
    assert_true(json_integer_value(json_object_get(stream, "lost")) > 0);
    assert_true(json_integer_value(json_object_get(stream, "reordered")) > 0);
    assert_int_equal(json_integer_value(json_object_get(stream, "clock_rate")), 48000);

    assert_json_equal("leg stats (control session)", off.legs, on.legs);
    assert_json_equal("leg.down audit records", off.down, on.down);
    assert_int_equal(json_object_size(on.down), 2);
    /* Jitter: arrival times differ between runs, so only both known. */
    assert_int_equal(json_array_size(off.jitters), json_array_size(on.jitters));
    json_array_foreach(off.jitters, i, j)
    {
        assert_true(json_number_value(j) >= 0);
        assert_true(json_number_value(json_array_get(on.jitters, i)) >= 0);
    }
    script_free(&off);
    script_free(&on);
}

/* Fails if a figure the kernel path keeps differs from the userspace
 * path's: packets or bytes not pulled from the kernel, RTCP or DTLS counted
 * as RTP, a sequence wrap or duplicate handled otherwise, a stream lost
 * from the leg.down record. */
static void test_stats_equal_on_both_paths(void **state)
{
    (void)state;
    stats_compare(false);
}

/* The same with packets the program leaves to the sockets (IPv4 options;
 * fragments and GSO would be the same case): a bound leg's packet that
 * reaches a worker while its flow is in the kernel must still count in
 * its streams. Fails if the worker forwards and counts it but leaves it
 * out of the per-SSRC figures (its sequence number then shows as lost). */
static void test_stats_equal_with_packets_left_to_the_sockets(void **state)
{
    (void)state;
    stats_compare(true);
}

/* --- (c) revoke ---------------------------------------------------------------- */

struct streamer {
    struct udp_peer *from;
    const union netaddr *relay;
    int period_us;
    volatile int stop;
    volatile int sent;
};

static void *stream_main(void *arg)
{
    struct streamer *s = arg;
    uint8_t pkt[200];

    for (uint16_t seq = 0; !s->stop; seq++) {
        peer_send(s->from, s->relay, pkt, rtp(pkt, 120, seq, seq * 96u, 0x7777));
        s->sent++;
        usleep((useconds_t)s->period_us);
    }
    return NULL;
}

/* Fails if revoke leaves the kernel flows in place (the program forwards
 * on while userspace has stopped) or deletes them late: the peer then
 * hears the sender for the whole 500 ms. */
static void test_revoke_stops_kernel_forwarding_within_100ms(void **state)
{
    struct relay_proc *r = relay_of(state);
    const union netaddr *ra = &r->listen[0];
    struct streamer s;
    struct pair pr;
    pthread_t th;
    uint8_t buf[2048];
    uint64_t answered, last_rx = 0, end;
    long long k0;
    int before = 0, after = 0;
    json_t *resp;

    pair_open(r, &pr, "k-revoke");
    k0 = kfwd_count(r, "packets");
    s = (struct streamer){.from = &pr.a, .relay = ra, .period_us = 2000};
    pthread_create(&th, NULL, stream_main, &s);
    while (before < 100 && peer_recv(&pr.b, buf, sizeof(buf), WAIT_MS, NULL) > 0)
        before++;
    assert_int_equal(before, 100);
    /* It is the program that forwards them. */
    assert_true(kfwd_count(r, "packets") - k0 >= 90);

    resp = relay_call(r, "revoke", "k-revoke");
    answered = now_ms();
    assert_non_null(resp);
    assert_true(json_is_true(json_object_get(resp, "ok")));
    for (end = now_ms() + 500; now_ms() < end;) {
        if (peer_recv(&pr.b, buf, sizeof(buf), 20, NULL) > 0) {
            last_rx = now_ms();
            after++;
        }
    }
    s.stop = 1;
    pthread_join(th, NULL);
    print_message("after the revoke reply: %d packets, the last %lld ms later (sender sent "
                  "%d in all)\n",
                  after, last_rx ? (long long)(last_rx - answered) : -1LL, s.sent);
    assert_true(last_rx == 0 || last_rx - answered <= REVOKE_LIMIT_MS);
    assert_int_equal(kfwd_count(r, "flows"), 0);
    json_decref(resp);
    pair_close(&pr);
}

/* --- (d) leg move -------------------------------------------------------------- */

/* Fails if a move leaves the kernel flow on the old address (the old
 * address keeps being forwarded, or b's packets go on to it), if a
 * check without USE-CANDIDATE moves the flow, or if the moved link falls
 * back to userspace. */
static void test_leg_move_updates_the_flow(void **state)
{
    struct relay_proc *r = relay_of(state);
    const union netaddr *ra = &r->listen[0];
    struct pair pr;
    struct udp_peer a2;
    long long k0, k1;
    uint16_t seq = 0;

    pair_open(r, &pr, "k-move");
    assert_true(forwarded(&pr.a, &pr.b, ra, seq++));
    assert_true(forwarded(&pr.b, &pr.a, ra, seq++));
    assert_int_equal(peer_open(&a2, "127.0.0.2:0"), 0);

    /* A plain check from the new address moves nothing. */
    check_ok(&a2, ra, creds_ufrag(pr.creds, 0, 0), creds_pwd(pr.creds, 0, 0), false);
    assert_true(not_forwarded(&a2, &pr.b, ra, seq++));
    assert_true(forwarded(&pr.b, &pr.a, ra, seq++));
    expect_silence(&a2);

    /* Nominated: the leg, and its flow, follow. */
    check_ok(&a2, ra, creds_ufrag(pr.creds, 0, 0), creds_pwd(pr.creds, 0, 0), true);
    k0 = kfwd_count(r, "packets");
    for (int i = 0; i < 20; i++) {
        assert_true(forwarded(&a2, &pr.b, ra, seq++));
        assert_true(forwarded(&pr.b, &a2, ra, seq++));
    }
    k1 = kfwd_count(r, "packets");
    expect_silence(&pr.a);
    print_message("after the move: %lld of 40 packets through the kernel\n", k1 - k0);
    assert_true(k1 - k0 >= 36);
    assert_int_equal(kfwd_count(r, "flows"), 2);

    /* The old address is nobody's now: neither 20 packets in a row nor
     * one more after them gets through. */
    k0 = kfwd_count(r, "packets");
    for (int i = 0; i < 20; i++) {
        uint8_t pkt[200];

        peer_send(&pr.a, ra, pkt, rtp(pkt, 120, seq, seq * 480u, 0x0f0f0f0f));
        seq++;
    }
    expect_silence(&pr.b);
    assert_true(not_forwarded(&pr.a, &pr.b, ra, seq++));
    assert_int_equal(kfwd_count(r, "packets"), k0);
    assert_true(relay_stat(r, "legs", "moves") >= 1);
    peer_close(&a2);
    pair_close(&pr);
}

/* --- (e) consent ---------------------------------------------------------------- */

/* Consent is kept by checks alone, which reach userspace while media goes
 * through the program; a leg whose checks stop goes down after the consent
 * timeout, and its flows with it, though media keeps coming. Fails if the
 * program swallows STUN (consent lost while checks go on), or if consent
 * loss leaves the flows in place (media still forwarded at the end). */
static void test_consent_expiry_stops_kernel_forwarding(void **state)
{
    struct relay_proc *r = relay_of(state);
    const union netaddr *ra = &r->listen[0];
    const char *ua, *pa, *ub, *pb;
    struct streamer s;
    struct pair pr;
    pthread_t th;
    uint8_t buf[2048];
    uint64_t t0, last_check_a, last_rx = 0, next_check;
    int phase1 = 0, phase2 = 0;
    char *audit;

    pair_open(r, &pr, "k-consent");
    ua = creds_ufrag(pr.creds, 0, 0);
    pa = creds_pwd(pr.creds, 0, 0);
    ub = creds_ufrag(pr.creds, 0, 1);
    pb = creds_pwd(pr.creds, 0, 1);
    s = (struct streamer){.from = &pr.a, .relay = ra, .period_us = 5000};
    /* The streamer sends from a's socket; a's checks go from another
     * thread on the same socket, and their answers are read by check_ok
     * (media arrives at b only, so nothing else is read from a). */
    pthread_create(&th, NULL, stream_main, &s);

    /* Phase 1: 2 x the consent timeout with both sides checking every
     * 500 ms: media flows throughout. */
    t0 = now_ms();
    last_check_a = t0;
    for (next_check = t0; now_ms() < t0 + 2 * CONSENT_S * 1000;) {
        if (now_ms() >= next_check) {
            check_ok(&pr.a, ra, ua, pa, false);
            last_check_a = now_ms();
            check_ok(&pr.b, ra, ub, pb, false);
            next_check += 500;
        }
        if (peer_recv(&pr.b, buf, sizeof(buf), 10, NULL) > 0)
            phase1++;
    }
    assert_true(kfwd_count(r, "packets") > 0);
    assert_int_equal(kfwd_count(r, "flows"), 2);

    /* Phase 2: a stops checking (but not sending), b goes on. */
    for (uint64_t end = last_check_a + CONSENT_S * 1000 + 2000; now_ms() < end;) {
        if (now_ms() >= next_check) {
            check_ok(&pr.b, ra, ub, pb, false);
            next_check += 500;
        }
        if (peer_recv(&pr.b, buf, sizeof(buf), 10, NULL) > 0) {
            last_rx = now_ms();
            phase2++;
        }
    }
    s.stop = 1;
    pthread_join(th, NULL);
    print_message("phase 1: %d packets in %d s; phase 2: %d packets, the last %lld ms after "
                  "a's last check (consent timeout %d s)\n",
                  phase1, 2 * CONSENT_S, phase2,
                  last_rx ? (long long)(last_rx - last_check_a) : -1LL, CONSENT_S);
    /* 5 ms apart for 4 s: 800 sent; most must have arrived. */
    assert_true(phase1 > 400);
    /* Forwarding went on until the consent timeout... */
    assert_true(last_rx > last_check_a + CONSENT_S * 1000 - 500);
    /* ...and stopped by one consent sweep after it. */
    assert_true(last_rx < last_check_a + CONSENT_S * 1000 + 1000);
    assert_int_equal(kfwd_count(r, "flows"), 0);

    assert_int_equal(relay_stop(r), 0);
    audit = read_text(r->audit);
    assert_non_null(audit);
    assert_non_null(strstr(audit, "\"reason\":\"consent\""));
    free(audit);
    pair_close(&pr);
}

/* --- (f) unbound sources -------------------------------------------------------- */

/* Fails if the program's flow key is looser than (source address, source
 * port, relay address, relay port): a stranger on a bound leg's port at
 * another address, or on another port of its address, would be forwarded;
 * or if the program drops what it does not know instead of passing it to
 * the sockets (dropped.unbound would not count them). */
static void test_unbound_sources_never_forwarded(void **state)
{
    struct relay_proc *r = relay_of(state);
    const union netaddr *ra = &r->listen[0];
    struct udp_peer st[3];
    char addr[NETADDR_STRLEN];
    struct pair pr;
    uint8_t pkt[400];
    long long unbound, k0;
    int got = 0, sent = 0;

    pair_open(r, &pr, "k-stranger");
    assert_true(forwarded(&pr.a, &pr.b, ra, 1));
    assert_true(forwarded(&pr.b, &pr.a, ra, 2));
    assert_int_equal(peer_open(&st[0], "127.0.0.1:0"), 0);
    snprintf(addr, sizeof(addr), "127.0.0.2:%u", netaddr_port(&pr.a.local));
    assert_int_equal(peer_open(&st[1], addr), 0);
    snprintf(addr, sizeof(addr), "127.0.0.3:%u", netaddr_port(&pr.b.local));
    assert_int_equal(peer_open(&st[2], addr), 0);

    unbound = relay_stat(r, "dropped", "unbound");
    k0 = kfwd_count(r, "packets");
    for (int i = 0; i < 100; i++) {
        for (int j = 0; j < 3; j++) {
            size_t n = i % 5 == 0 ? dtls(pkt, 60, (uint16_t)i)
                                  : rtp(pkt, 100, (uint16_t)i, (uint32_t)i * 480u, 0x0f0f0f0f);

            assert_int_equal(peer_send(&st[j], ra, pkt, n), 0);
            sent++;
        }
        if (i % 20 == 19)
            usleep(2000); /* let the relay's socket buffer drain */
    }
    drain(&pr.a, &got, SILENCE_MS);
    drain(&pr.b, &got, 0);
    for (int j = 0; j < 3; j++)
        drain(&st[j], &got, 0);
    print_message("%d packets from unbound sources: %d forwarded, dropped.unbound +%lld, "
                  "kernel +%lld\n",
                  sent, got, relay_stat(r, "dropped", "unbound") - unbound,
                  kfwd_count(r, "packets") - k0);
    assert_int_equal(got, 0);
    assert_int_equal(kfwd_count(r, "packets"), k0);
    /* Passed up to the sockets and dropped there, each one counted. */
    assert_int_equal(relay_stat(r, "dropped", "unbound"), unbound + sent);
    /* The bound pair still goes through the program. */
    assert_true(forwarded(&pr.a, &pr.b, ra, 3));
    assert_true(kfwd_count(r, "packets") > k0);
    for (int j = 0; j < 3; j++)
        peer_close(&st[j]);
    pair_close(&pr);
}

/* --- (g) capabilities ----------------------------------------------------------- */

#define CAP_BIT(n) (1ull << (n))
#define CAPS_DROPPED (CAP_BIT(12) | CAP_BIT(21) | CAP_BIT(38) | CAP_BIT(39))

static unsigned long long cap_field(const char *status, const char *field)
{
    char want[32];
    const char *p;

    snprintf(want, sizeof(want), "\n%s:", field);
    p = strstr(status, want);
    if (p == NULL)
        fail_msg("no %s in /proc/PID/status", field);
    return strtoull(p + strlen(want), NULL, 16);
}

static char *proc_status(pid_t pid)
{
    char path[64];
    char *text;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    text = read_text(path);
    assert_non_null(text);
    return text;
}

/* Fails if the relay keeps CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON or
 * CAP_BPF after the kernel path's start, in its effective, permitted or
 * bounding set: attached (on), or never tried (off), which needs them no
 * more than a relay that attached. */
/* Every thread of the relay: capabilities are per thread, and one started
 * before the drop (the audit writer, a worker) would keep them while
 * /proc/PID/status, the main thread's, shows them gone. */
static void caps_dropped(void **state)
{
    struct relay_proc *r = relay_of(state);
    static const char *const fields[] = {"CapEff", "CapPrm", "CapBnd"};
    struct dirent *e;
    char *mine = proc_status(getpid()), dir[64], path[64 + sizeof(e->d_name) + 8];
    DIR *d;
    int threads = 0;

    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)r->pid);
    assert_non_null(d = opendir(dir));
    while ((e = readdir(d)) != NULL) {
        char *st;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
        assert_non_null(st = read_text(path));
        for (int i = 0; i < 3; i++) {
            unsigned long long v = cap_field(st, fields[i]);

            print_message("relay thread %s %s %016llx (test %016llx)\n", e->d_name, fields[i],
                          v, cap_field(mine, fields[i]));
            assert_int_equal(v & CAPS_DROPPED, 0);
        }
        free(st);
        threads++;
    }
    closedir(d);
    /* The main thread, the audit writer, two workers at least. */
    assert_true(threads >= 4);
    /* The test runs with them, so the relay had them to drop. */
    assert_int_equal(cap_field(mine, "CapEff") & CAPS_DROPPED, CAPS_DROPPED);
    free(mine);
}

static void test_capabilities_dropped_after_attach(void **state)
{
    assert_true(kfwd_active(relay_of(state)));
    caps_dropped(state);
}

static void test_capabilities_dropped_when_off(void **state)
{
    assert_false(kfwd_active(relay_of(state)));
    caps_dropped(state);
}

/* --- (h) kill -9 ------------------------------------------------------------------ */

#ifndef BPF_TCX_INGRESS
#define BPF_TCX_INGRESS 46 /* the uapi headers of Debian 12 predate TCX */
#endif

/* The ids of the TCX ingress programs attached on lo now, asked of the
 * kernel (BPF_PROG_QUERY: the bpftool of Debian 12 does not list TCX),
 * into ids (up to max); their count. */
static int lo_tcx_ingress(unsigned ids[], int max)
{
    union bpf_attr attr;
    uint32_t got[64];

    memset(&attr, 0, sizeof(attr));
    attr.query.target_fd = if_nametoindex("lo");
    attr.query.attach_type = BPF_TCX_INGRESS;
    attr.query.prog_ids = (uint64_t)(uintptr_t)got;
    attr.query.prog_cnt = 64;
    if (syscall(__NR_bpf, BPF_PROG_QUERY, &attr, sizeof(attr)) != 0)
        fail_msg("BPF_PROG_QUERY tcx ingress on lo: %s", strerror(errno));
    for (uint32_t i = 0; i < attr.query.prog_cnt && (int)i < max; i++)
        ids[i] = got[i];
    return (int)(attr.query.prog_cnt < (uint32_t)max ? attr.query.prog_cnt : (uint32_t)max);
}

static bool id_in(unsigned id, const unsigned ids[], int n)
{
    for (int i = 0; i < n; i++) {
        if (ids[i] == id)
            return true;
    }
    return false;
}

/* How many of ids[0..n) are attached on lo now. */
static int still_attached(const unsigned ids[], int n)
{
    unsigned now[64];
    int m = lo_tcx_ingress(now, 64), left = 0;

    for (int i = 0; i < n; i++)
        left += id_in(ids[i], now, m);
    return left;
}

/* The programs process pid attached on lo's ingress: the prog_id of each
 * of its bpf_link descriptors of type tcx on lo (/proc/PID/fdinfo), into
 * out (up to max); their count. Other processes (tests run in parallel)
 * may attach on lo too: a relay's programs are told apart by this. */
static int progs_of(pid_t pid, unsigned out[], int max)
{
    char dir[64], path[320];
    struct dirent *e;
    DIR *d;
    int n = 0;
    unsigned lo = if_nametoindex("lo");

    snprintf(dir, sizeof(dir), "/proc/%d/fdinfo", (int)pid);
    assert_non_null(d = opendir(dir));
    while ((e = readdir(d)) != NULL && n < max) {
        char *info;
        const char *t, *p, *i, *a;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if ((info = read_text(path)) == NULL)
            continue;
        t = strstr(info, "link_type:\ttcx\n");
        p = strstr(info, "prog_id:\t");
        i = strstr(info, "ifindex:\t");
        a = strstr(info, "attach_type:\t");
        if (t != NULL && p != NULL && i != NULL && a != NULL &&
            strtoul(i + strlen("ifindex:\t"), NULL, 10) == lo &&
            strtoul(a + strlen("attach_type:\t"), NULL, 10) == BPF_TCX_INGRESS)
            out[n++] = (unsigned)strtoul(p + strlen("prog_id:\t"), NULL, 10);
        free(info);
    }
    closedir(d);
    return n;
}

/* Waits up to 1 s for none of ids to be attached; how many still are. */
static int wait_detached(const unsigned ids[], int n)
{
    int left = still_attached(ids, n);

    for (uint64_t end = now_ms() + 1000; left > 0 && now_ms() < end;
         left = still_attached(ids, n))
        usleep(20000);
    return left;
}

/* Two relays attach on lo; kill -9 of one removes its program(s) and no
 * other (the survivor still forwards in the kernel), kill -9 of the other
 * too; a restart attaches again. Fails with a clsact filter or a pinned
 * link (they outlive the process), or if a relay's program disturbs
 * another relay's traffic. Other processes may attach on lo meanwhile
 * (tests run in parallel), so each relay's programs are found by the
 * links it holds, and lo's count is compared with before only in the
 * log. */
static void test_kill9_leaves_no_program_attached(void **state)
{
    static const char *const more[] = {"--kernel-forward", "on", NULL};
    struct world *w = calloc(1, sizeof(*w));
    unsigned before[64], mine1[64], mine2[64], now[64];
    int nb, n1, n2;
    struct pair p1, p2;
    long long k0;

    *state = w;
    nb = lo_tcx_ingress(before, 64);
    assert_int_equal(relay_start(&w->relay, both_families, more), 0);
    n1 = progs_of(w->relay.pid, mine1, 64);
    assert_int_equal(relay_start(&w->relay2, both_families, more), 0);
    n2 = progs_of(w->relay2.pid, mine2, 64);
    print_message("tcx/ingress on lo: %d before, %d now; the first relay's %d, the second's "
                  "%d\n",
                  nb, lo_tcx_ingress(now, 64), n1, n2);
    assert_true(n1 >= 1 && n2 >= 1);
    assert_int_equal(still_attached(mine1, n1), n1);
    assert_int_equal(still_attached(mine2, n2), n2);
    for (int i = 0; i < n2; i++)
        assert_false(id_in(mine2[i], mine1, n1));
    assert_true(kfwd_active(&w->relay) && kfwd_active(&w->relay2));

    pair_open(&w->relay, &p1, "k-kill-1");
    pair_open(&w->relay2, &p2, "k-kill-2");
    assert_true(forwarded(&p1.a, &p1.b, &w->relay.listen[0], 1));
    assert_true(forwarded(&p2.a, &p2.b, &w->relay2.listen[0], 1));

    assert_int_equal(relay_kill9(&w->relay2), 0);
    assert_int_equal(wait_detached(mine2, n2), 0);
    assert_int_equal(still_attached(mine1, n1), n1);
    /* The survivor's program still forwards its link. */
    k0 = kfwd_count(&w->relay, "packets");
    assert_true(forwarded(&p1.a, &p1.b, &w->relay.listen[0], 2));
    assert_true(forwarded(&p1.b, &p1.a, &w->relay.listen[0], 3));
    assert_int_equal(kfwd_count(&w->relay, "packets"), k0 + 2);
    assert_true(not_forwarded(&p2.a, &p2.b, &w->relay2.listen[0], 2));

    assert_int_equal(relay_kill9(&w->relay), 0);
    assert_int_equal(wait_detached(mine1, n1), 0);
    /* Other processes may have attached or detached meanwhile: the count is
     * for the log; what must hold is that none of ours is left. */
    print_message("after kill -9 of both: %d on lo (before: %d)\n", lo_tcx_ingress(now, 64), nb);
    assert_true(not_forwarded(&p1.a, &p1.b, &w->relay.listen[0], 4));

    /* And it attaches again. */
    assert_int_equal(relay_restart(&w->relay, more), 0);
    assert_true(kfwd_active(&w->relay));
    pair_close(&p1);
    pair_close(&p2);
}

static int teardown_world(void **state)
{
    return world_teardown(state);
}

/* --- (i) without the capabilities ------------------------------------------------- */

/* Fails if `auto` does not fall back when loading is refused (EPERM), does
 * not say so in the log and /metrics, or stops forwarding; or if `on`
 * starts anyway or exits otherwise than with 1 and its reason. */
static void test_without_capabilities(void **state)
{
    static const char *const on[] = {"--kernel-forward", "on", NULL};
    struct world *w = calloc(1, sizeof(*w));
    struct relay_proc refused;
    struct pair pr;
    json_t *path;
    char *m, *log, *st;

    *state = w;
    setenv("QR_RELAY_PREFIX", NOCAPS_PREFIX, 1);
    unsetenv("QR_RELAY_EXPECT_LOG");
    assert_int_equal(kworld_start(w, "auto", NULL), 0);

    st = proc_status(w->relay.pid);
    assert_int_equal(cap_field(st, "CapEff") & CAPS_DROPPED, 0);
    free(st);
    log = read_text(w->relay.log);
    assert_non_null(log);
    assert_non_null(strstr(log, "kernel path off: no_privileges"));
    free(log);
    m = kfwd_scrape(&w->relay, OPS_TOKEN);
    assert_int_equal((int)need(m, M_FALLBACK_NOPRIV), 1);
    assert_int_equal((int)need(m, M_ACTIVE), 0);
    free(m);
    path = kfwd_path(&w->relay);
    assert_false(json_is_true(json_object_get(path, "active")));
    assert_string_equal(json_string_value(json_object_get(path, "reason")), "no_privileges");
    assert_string_equal(json_string_value(json_object_get(path, "mode")), "auto");
    json_decref(path);

    /* Userspace forwards as before. */
    pair_open(&w->relay, &pr, "k-nocaps");
    for (uint16_t i = 0; i < 10; i++) {
        assert_true(forwarded(&pr.a, &pr.b, &w->relay.listen[0], i));
        assert_true(forwarded(&pr.b, &pr.a, &w->relay.listen[0], i));
    }
    assert_int_equal(kfwd_count(&w->relay, "packets"), 0);
    pair_close(&pr);

    /* `on` refuses to serve. */
    assert_int_not_equal(relay_start(&refused, both_families, on), 0);
    unsetenv("QR_RELAY_PREFIX");
    log = read_text(refused.log);
    print_message("--kernel-forward on without capabilities: exit %d\n", refused.exit_status);
    assert_int_equal(refused.pid, 0);
    assert_int_equal(refused.exit_status, 1);
    assert_non_null(log);
    assert_non_null(strstr(log, "kernel-forward on:"));
    free(log);
    refused.exit_status = 0; /* refused on purpose */
    relay_cleanup(&refused);
}

static int teardown_nocaps(void **state)
{
    unsetenv("QR_RELAY_PREFIX");
    return world_teardown(state);
}

/* --- (j) the default -------------------------------------------------------------- */

/* A relay started as every other integration test starts it (no
 * --kernel-forward: auto) runs on the kernel path under root, so that the
 * whole suite exercises it. Fails if auto falls back on a machine that
 * passed the gate, or the default is not auto. */
static void test_default_is_auto_and_on_under_root(void **state)
{
    struct world_opts o = {.no_signal = true};
    struct world *w = calloc(1, sizeof(*w));
    struct pair pr;
    json_t *path;
    long long k0;
    char *log;

    *state = w;
    assert_int_equal(world_start(w, &o), 0);
    path = kfwd_path(&w->relay);
    assert_true(json_is_true(json_object_get(path, "active")));
    assert_string_equal(json_string_value(json_object_get(path, "mode")), "auto");
    assert_true(json_array_size(json_object_get(path, "interfaces")) >= 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(path, "interfaces"), 0)),
                        "lo");
    json_decref(path);
    log = read_text(w->relay.log);
    assert_non_null(log);
    assert_non_null(strstr(log, "kernel path on: 1 interface(s) (lo)"));
    free(log);
    pair_open(&w->relay, &pr, "k-default");
    k0 = kfwd_count(&w->relay, "packets");
    assert_true(forwarded(&pr.a, &pr.b, &w->relay.listen[0], 1));
    assert_int_equal(kfwd_count(&w->relay, "packets"), k0 + 1);
    pair_close(&pr);
}

#define ON(name) cmocka_unit_test_setup_teardown(name, setup_on, world_teardown)
#define OWN(name, down) cmocka_unit_test_setup_teardown(name, setup_nothing, down)

int main(void)
{
    struct CMUnitTest tests[] = {
        ON(test_call_ipv4_through_the_kernel),
        ON(test_call_ipv6_through_the_kernel),
        ON(test_call_ipv4_to_ipv6_still_works),
        cmocka_unit_test(test_stats_equal_on_both_paths),
        cmocka_unit_test(test_stats_equal_with_packets_left_to_the_sockets),
        ON(test_revoke_stops_kernel_forwarding_within_100ms),
        ON(test_leg_move_updates_the_flow),
        cmocka_unit_test_setup_teardown(test_consent_expiry_stops_kernel_forwarding,
                                        setup_consent, world_teardown),
        ON(test_unbound_sources_never_forwarded),
        ON(test_capabilities_dropped_after_attach),
        cmocka_unit_test_setup_teardown(test_capabilities_dropped_when_off, setup_off,
                                        world_teardown),
        OWN(test_kill9_leaves_no_program_attached, teardown_world),
        OWN(test_without_capabilities, teardown_nocaps),
        OWN(test_default_is_auto_and_on_under_root, teardown_world),
    };
    int gate;

    signal(SIGPIPE, SIG_IGN);
    if ((gate = kfwd_gate("test_relay_kernel")) != 0)
        return gate;
    return world_run_tests("test_relay_kernel", tests, sizeof(tests) / sizeof(tests[0]), NULL,
                           NULL);
}
