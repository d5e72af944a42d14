/* The kernel path's program and its flows, without attaching anything: the
 * program runs on packets built here (BPF_PROG_TEST_RUN), and the link
 * table keeps its map in step. Needs root (CAP_BPF): elsewhere it skips,
 * except under CI=true, where a skip would hide a missing kernel path.
 *
 * What breaks them: a wrong checksum update or rewrite (the checksums and
 * addresses of every forwarded packet are checked), STUN or IP options
 * forwarded, streams kept differently from rtpstats_update, a flow left in
 * the map after revoke, move or consent loss. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <bpf/bpf.h>

#include "kfwd_fixtures.h"
#include "quietroom/wire/rtpstats.h"
#include "table.h"

#define NOW_S 1800000000u
#define NEXT KFX_NEXT
#define REDIRECT KFX_REDIRECT
#define ETH_LEN KFX_ETH_LEN

static struct kfwd *kf;

/* Cmocka's view of the fixtures: a packet that cannot be built fails. */
static struct kfx_pkt udp_pkt(const char *src, const char *dst, const uint8_t *payload, size_t n)
{
    struct kfx_pkt p;

    assert_int_equal(kfx_udp_pkt(&p, src, dst, payload, n), 0);
    return p;
}

static int run(const struct kfx_pkt *p, struct kfx_pkt *out)
{
    int rc = kfx_run(kfwd__prog_fd(kf), p, out);

    assert_int_not_equal(rc, KFX_REFUSED);
    return rc;
}

static void add_flow(const char *local, const char *remote, const char *src, const char *dst)
{
    assert_int_equal(kfx_add_flow(kf->map_fd, local, remote, src, dst), 0);
}

static bool get_flow(const char *local, const char *remote, struct kfwd_value *v)
{
    struct kfwd_key k;

    assert_int_equal(kfx_key(local, remote, &k), 0);
    return bpf_map_lookup_elem_flags(kf->map_fd, &k, v, BPF_F_LOCK) == 0;
}

static unsigned flow_count(void)
{
    struct kfwd_key k, next;
    unsigned n = 0;
    void *prev = NULL;

    while (bpf_map_get_next_key(kf->map_fd, prev, &next) == 0) {
        k = next;
        prev = &k;
        n++;
    }
    return n;
}

static void clear_flows(void)
{
    struct kfwd_key k;

    while (bpf_map_get_next_key(kf->map_fd, NULL, &k) == 0)
        assert_int_equal(bpf_map_delete_elem(kf->map_fd, &k), 0);
}

static int setup(void **state)
{
    union netaddr listen[2];
    enum kfwd_reason reason;
    char err[256];

    (void)state;
    assert_int_equal(netaddr_parse("127.0.0.1:5000", &listen[0]), 0);
    assert_int_equal(netaddr_parse("127.0.0.1:5001", &listen[1]), 0);
    kf = kfwd__open(listen, 2, 16, &reason, err, sizeof(err));
    if (kf == NULL)
        fprintf(stderr, "kernel path: %s: %s\n", kfwd_reason_name(reason), err);
    return kf != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    kfwd_free(kf);
    kf = NULL;
    return 0;
}

static int fresh(void **state)
{
    (void)state;
    clear_flows();
    return 0;
}

/* --- the program ------------------------------------------------------ */

/* out is in, sent on from src to dst, with right checksums. */
static void assert_went(const struct kfx_pkt *out, const char *src, const char *dst,
                        const struct kfx_pkt *in)
{
    size_t n = in->len - kfx_l4_off(in) - 8;
    struct kfx_pkt want = udp_pkt(src, dst, in->b + kfx_l4_off(in) + 8, n);
    size_t l3 = ETH_LEN;

    assert_int_equal(out->len, in->len);
    assert_int_equal(kfx_udp_check(out), 0);
    if (!kfx_is_v6(out)) {
        assert_int_equal(kfx_fold(kfx_sum16(out->b + l3, 20, 0)), 0); /* IP header checksum */
        assert_memory_equal(out->b + l3 + 12, want.b + l3 + 12, 8);
    } else {
        assert_memory_equal(out->b + l3 + 8, want.b + l3 + 8, 32);
    }
    assert_memory_equal(out->b + kfx_l4_off(out), want.b + kfx_l4_off(&want), 4); /* ports */
    assert_memory_equal(out->b + kfx_l4_off(out) + 8, in->b + kfx_l4_off(in) + 8,
                        in->len - kfx_l4_off(in) - 8); /* payload untouched */
}

static void test_rtp_v4_is_rewritten_and_counted(void **state)
{
    uint8_t pl[172];
    struct kfx_pkt in, out;
    struct kfwd_value v;

    (void)state;
    add_flow("127.0.0.1:5000", "127.0.0.2:6000", "127.0.0.1:5001", "127.0.0.3:7000");
    in = udp_pkt("127.0.0.2:6000", "127.0.0.1:5000", pl, kfx_rtp(pl, 0x1234, 7, 960, 172));
    /* As if it came in on a NIC: lo would drop a frame for that MAC. */
    memset(in.b, 0x02, 6);
    assert_int_equal(run(&in, &out), REDIRECT);
    assert_went(&out, "127.0.0.1:5001", "127.0.0.3:7000", &in);
    for (int i = 0; i < 6; i++)
        assert_int_equal(out.b[i], 0);
    assert_true(get_flow("127.0.0.1:5000", "127.0.0.2:6000", &v));
    assert_int_equal(v.packets, 1);
    assert_int_equal(v.bytes, 172);
    assert_true(v.last_ns > 0);
    assert_int_equal(v.rtp.stream[0].ssrc, 0x1234);
    assert_int_equal(v.rtp.stream[0].received, 1);
}

static void test_rtp_v6_is_rewritten_and_counted(void **state)
{
    uint8_t pl[100];
    struct kfx_pkt in, out;
    struct kfwd_value v;

    (void)state;
    add_flow("[::1]:5000", "[fd00::2]:6000", "[::1]:5001", "[fd00::3]:7000");
    in = udp_pkt("[fd00::2]:6000", "[::1]:5000", pl, kfx_rtp(pl, 9, 1, 0, 100));
    assert_int_equal(run(&in, &out), REDIRECT);
    assert_went(&out, "[::1]:5001", "[fd00::3]:7000", &in);
    assert_true(get_flow("[::1]:5000", "[fd00::2]:6000", &v));
    assert_int_equal(v.packets, 1);
}

static void test_dtls_and_rtcp_are_forwarded(void **state)
{
    uint8_t dtls[40] = {22, 0xfe, 0xfd}, rtcp[32] = {0x81, 200};
    struct kfx_pkt in, out;
    struct kfwd_value v;

    (void)state;
    add_flow("127.0.0.1:5000", "127.0.0.2:6000", "127.0.0.1:5001", "127.0.0.3:7000");
    in = udp_pkt("127.0.0.2:6000", "127.0.0.1:5000", dtls, sizeof(dtls));
    assert_int_equal(run(&in, &out), REDIRECT);
    assert_went(&out, "127.0.0.1:5001", "127.0.0.3:7000", &in);
    in = udp_pkt("127.0.0.2:6000", "127.0.0.1:5000", rtcp, sizeof(rtcp));
    assert_int_equal(run(&in, &out), REDIRECT);
    assert_went(&out, "127.0.0.1:5001", "127.0.0.3:7000", &in);
    assert_true(get_flow("127.0.0.1:5000", "127.0.0.2:6000", &v));
    assert_int_equal(v.packets, 2);
    assert_int_equal(v.rtp.stream[0].flags, 0); /* neither is RTP */
}

/* p with 4 bytes of IPv4 options (NOPs) after its header. */
static struct kfx_pkt with_ip_options(struct kfx_pkt p)
{
    uint8_t *ip = p.b + ETH_LEN;
    unsigned tot = (unsigned)(ip[2] << 8 | ip[3]) + 4;

    memmove(ip + 24, ip + 20, p.len - ETH_LEN - 20);
    memset(ip + 20, 1, 4);
    p.len += 4;
    ip[0] = 0x46;
    ip[2] = (uint8_t)(tot >> 8);
    ip[3] = (uint8_t)tot;
    ip[10] = ip[11] = 0;
    tot = kfx_fold(kfx_sum16(ip, 24, 0));
    ip[10] = (uint8_t)(tot >> 8);
    ip[11] = (uint8_t)tot;
    return p;
}

/* An IPv6 datagram without a checksum: the stack drops it, and the program
 * leaves it to the stack. */
static void test_v6_without_checksum_goes_to_the_stack(void **state)
{
    uint8_t pl[60];
    struct kfx_pkt in, out;

    (void)state;
    add_flow("[::1]:5000", "[fd00::2]:6000", "[::1]:5001", "[fd00::3]:7000");
    in = udp_pkt("[fd00::2]:6000", "[::1]:5000", pl, kfx_rtp(pl, 9, 1, 0, sizeof(pl)));
    in.b[kfx_l4_off(&in) + 6] = in.b[kfx_l4_off(&in) + 7] = 0;
    assert_int_equal(run(&in, &out), NEXT);
}

/* The egress lookup: a peer on this host is local, by lo; the kernel's
 * refusal of a route is an error with its errno. */
static void test_route_lookup(void **state)
{
    struct kfwd_route rt;
    uint8_t src[16] = {127, 0, 0, 1}, dst[16] = {127, 0, 0, 3}, buf[128];
    struct {
        struct nlmsghdr h;
        struct nlmsgerr e;
    } err = {{.nlmsg_len = sizeof(err), .nlmsg_type = NLMSG_ERROR, .nlmsg_seq = 7},
             {.error = -ENETUNREACH}};

    (void)state;
    assert_int_equal(kfwd_route_get(kf->route_fd, 1, AF_INET, src, dst, &rt), 0);
    assert_true(rt.local);
    assert_int_equal(rt.ifindex, 1);
    assert_int_equal(kfwd_route_parse((const uint8_t *)&err, sizeof(err), 7, &rt), -1);
    assert_int_equal(errno, ENETUNREACH);
    assert_int_equal(kfwd_route_parse((const uint8_t *)&err, sizeof(err), 8, &rt), -1);
    assert_int_equal(kfwd_route_parse(buf, 3, 7, &rt), -1);
    assert_true(kfwd_route_request(buf, sizeof(buf), 1, AF_INET6, src, dst) > 0);
    assert_int_equal(kfwd_route_request(buf, 20, 1, AF_INET, src, dst), 0);
}

/* STUN (consent, nomination), other protocols and packets the program does
 * not parse reach the sockets unchanged and uncounted. */
static void test_the_rest_goes_to_the_stack(void **state)
{
    uint8_t stun[20] = {0x00, 0x01}, quic[40] = {0xc3}, pl[64];
    struct kfx_pkt in, out;
    struct kfwd_value v;

    (void)state;
    add_flow("127.0.0.1:5000", "127.0.0.2:6000", "127.0.0.1:5001", "127.0.0.3:7000");
    in = udp_pkt("127.0.0.2:6000", "127.0.0.1:5000", stun, sizeof(stun));
    assert_int_equal(run(&in, &out), NEXT);
    assert_memory_equal(out.b, in.b, in.len);
    in = udp_pkt("127.0.0.2:6000", "127.0.0.1:5000", quic, sizeof(quic));
    assert_int_equal(run(&in, &out), NEXT);
    /* Unknown source, and another relay port. */
    in = udp_pkt("127.0.0.9:6000", "127.0.0.1:5000", pl, kfx_rtp(pl, 1, 1, 0, 64));
    assert_int_equal(run(&in, &out), NEXT);
    in = udp_pkt("127.0.0.2:6000", "127.0.0.1:5002", pl, kfx_rtp(pl, 1, 1, 0, 64));
    assert_int_equal(run(&in, &out), NEXT);
    /* A first fragment, and a header with options: the sockets forward
     * them, but their RTP is the flow's stream, counted by the program. */
    in = udp_pkt("127.0.0.2:6000", "127.0.0.1:5000", pl, kfx_rtp(pl, 1, 1, 0, 64));
    in.b[ETH_LEN + 6] = 0x20; /* MF, offset 0 */
    assert_int_equal(run(&in, &out), NEXT);
    in = with_ip_options(udp_pkt("127.0.0.2:6000", "127.0.0.1:5000", pl, kfx_rtp(pl, 1, 2, 0, 64)));
    assert_int_equal(run(&in, &out), NEXT);
    assert_memory_equal(out.b, in.b, in.len);
    /* A later fragment has no UDP header: nothing to count. */
    in.b[ETH_LEN + 7] = 0x10;
    assert_int_equal(run(&in, &out), NEXT);
    assert_true(get_flow("127.0.0.1:5000", "127.0.0.2:6000", &v));
    assert_int_equal(v.packets, 0);
    assert_int_equal(v.rtp.stream[0].ssrc, 1);
    assert_int_equal(v.rtp.stream[0].received, 2);
}

/* The program keeps a stream with the relay's own rtpstats code: the same
 * sequence (gaps, reordering, a duplicate, a second SSRC, a third one that
 * has no slot) gives the same figures. Jitter depends on arrival times,
 * which differ between the two runs; it is compared in the integration
 * tests. */
static void test_streams_match_rtpstats(void **state)
{
    static const uint16_t seqs[] = {100, 101, 103, 102, 104, 104, 110, 111, 109, 112, 200, 201};
    struct rtpstats want;
    struct kfwd_value v;
    uint8_t pl[60];

    (void)state;
    memset(&want, 0, sizeof(want));
    add_flow("127.0.0.1:5000", "127.0.0.2:6000", "127.0.0.1:5001", "127.0.0.3:7000");
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        for (uint32_t ssrc = 1; ssrc <= 3; ssrc++) {
            struct kfx_pkt in, out;
            struct rtp_header h;
            size_t n = kfx_rtp(pl, ssrc, (uint16_t)(seqs[i] + ssrc * 1000), 0, sizeof(pl));

            in = udp_pkt("127.0.0.2:6000", "127.0.0.1:5000", pl, n);
            assert_int_equal(run(&in, &out), REDIRECT);
            assert_true(rtp_parse_header(pl, n, &h));
            rtpstats_update(&want, &h, 1000);
        }
    }
    assert_true(get_flow("127.0.0.1:5000", "127.0.0.2:6000", &v));
    assert_int_equal(v.untracked, sizeof(seqs) / sizeof(seqs[0]));
    for (int i = 0; i < QR_SSRC_SLOTS; i++) {
        assert_int_equal(v.rtp.stream[i].ssrc, want.stream[i].ssrc);
        assert_int_equal(v.rtp.stream[i].ext_max, want.stream[i].ext_max);
        assert_int_equal(v.rtp.stream[i].received, want.stream[i].received);
        assert_int_equal(v.rtp.stream[i].base_seq, want.stream[i].base_seq);
        assert_int_equal(v.rtp.stream[i].reordered, want.stream[i].reordered);
    }
    assert_int_equal(want.stream[0].received, 11); /* the duplicate is not counted */
    assert_int_equal(want.stream[0].reordered, 2);
}

/* Mangled copies of a valid packet: whatever the program answers, it never
 * sends out a packet whose checksums are wrong, and never forwards one that
 * is not DTLS, RTP or RTCP from the flow's source. */
static void test_mangled_packets(void **state)
{
    uint8_t pl[80];
    struct kfx_pkt base, in, out;
    unsigned seed = 1, verdicts[3] = {0};

    (void)state;
    add_flow("127.0.0.1:5000", "127.0.0.2:6000", "127.0.0.1:5001", "127.0.0.3:7000");
    base = udp_pkt("127.0.0.2:6000", "127.0.0.1:5000", pl, kfx_rtp(pl, 5, 1, 0, sizeof(pl)));
    for (int i = 0; i < 20000; i++) {
        int rc;

        in = base;
        for (int m = 0; m < 1 + i % 4; m++)
            in.b[(size_t)rand_r(&seed) % in.len] = (uint8_t)rand_r(&seed);
        if (i % 7 == 0)
            in.len = 15 + (size_t)rand_r(&seed) % (base.len - 15);
        /* The kernel refuses to make a packet of some (an IP header
         * longer than the frame): no program could see those. */
        if ((rc = kfx_run(kfwd__prog_fd(kf), &in, &out)) == KFX_REFUSED)
            continue;
        assert_true(rc == NEXT || rc == REDIRECT || rc == 2);
        verdicts[rc == NEXT ? 0 : rc == REDIRECT ? 1 : 2]++;
        if (rc != REDIRECT)
            continue;
        /* Forwarded: it was from the flow's source to its address. */
        assert_memory_equal(in.b + ETH_LEN + 12, base.b + ETH_LEN + 12, 8);
        assert_memory_equal(in.b + kfx_l4_off(&in), base.b + kfx_l4_off(&base), 4);
        if (kfx_udp_check(&in) == 0)
            assert_int_equal(kfx_udp_check(&out), 0);
    }
    /* Both ways were taken often: the checks above ran. */
    print_message("next %u, redirect %u, shot %u\n", verdicts[0], verdicts[1], verdicts[2]);
    assert_true(verdicts[0] > 1000 && verdicts[1] > 1000);
}

/* --- the table keeps the flows ------------------------------------------ */

static struct creds_leg leg_id(uint8_t session_byte, uint8_t side)
{
    struct creds_leg cl = {.version = 1, .kid = 1, .expires = NOW_S + 3600, .side = side};

    memset(cl.session, session_byte, sizeof(cl.session));
    memset(cl.nonce, 0x5a, sizeof(cl.nonce));
    return cl;
}

static enum table_bind_result bind_at(struct table *t, uint8_t session, uint8_t side,
                                      const char *at, uint32_t listen, uint64_t now_ms)
{
    struct creds_leg cl = leg_id(session, side);
    struct table_binding b;
    union netaddr a;

    assert_int_equal(netaddr_parse(at, &a), 0);
    return table_bind(t, &cl, &a, listen, table_path_pref(false, 100), now_ms, &b);
}

static struct table *bound_pair(uint8_t session)
{
    struct table *t = table_new(16, 1, NULL, NULL);

    assert_non_null(t);
    table_set_kfwd(t, kf);
    assert_int_equal(bind_at(t, session, 0, "127.0.0.2:6000", 0, 1000), TABLE_BOUND);
    assert_int_equal(flow_count(), 0); /* one leg: nowhere to send to */
    assert_int_equal(bind_at(t, session, 1, "127.0.0.3:7000", 1, 1000), TABLE_BOUND);
    return t;
}

static void free_table(struct table *t)
{
    table_close_all(t);
    assert_int_equal(flow_count(), 0);
    table_set_kfwd(t, NULL);
    table_free(t);
}

static void test_table_installs_both_flows(void **state)
{
    struct table *t = bound_pair(1);
    struct kfwd_value v;
    uint8_t pl[50];
    struct kfx_pkt in, out;

    (void)state;
    assert_int_equal(flow_count(), 2);
    /* A's packets arrive at listen 0 and leave from listen 1 to B. */
    assert_true(get_flow("127.0.0.1:5000", "127.0.0.2:6000", &v));
    assert_int_equal(v.ifindex, 1);
    in = udp_pkt("127.0.0.2:6000", "127.0.0.1:5000", pl, kfx_rtp(pl, 3, 1, 0, sizeof(pl)));
    assert_int_equal(run(&in, &out), REDIRECT);
    assert_went(&out, "127.0.0.1:5001", "127.0.0.3:7000", &in);
    in = udp_pkt("127.0.0.3:7000", "127.0.0.1:5001", pl, kfx_rtp(pl, 4, 1, 0, sizeof(pl)));
    assert_int_equal(run(&in, &out), REDIRECT);
    assert_went(&out, "127.0.0.1:5000", "127.0.0.2:6000", &in);
    /* The legs see what the program counted once pulled. */
    table_kfwd_pull(t);
    assert_int_equal(leg_rx_packets(&table_link(t, 0)->leg[0]), 1);
    assert_int_equal(leg_fwd_bytes(&table_link(t, 0)->leg[1]), sizeof(pl));
    assert_true(atomic_load(&table_link(t, 0)->leg[0].k_owned));
    free_table(t);
}

static void test_revoke_removes_flows_keeping_counts(void **state)
{
    struct table *t = bound_pair(2);
    struct creds_leg cl = leg_id(2, 0);
    uint8_t pl[50];
    struct kfx_pkt in, out;

    (void)state;
    in = udp_pkt("127.0.0.2:6000", "127.0.0.1:5000", pl, kfx_rtp(pl, 3, 1, 0, sizeof(pl)));
    assert_int_equal(run(&in, &out), REDIRECT);
    assert_int_equal(table_revoke(t, cl.kid, cl.session, NOW_S + 60), 1);
    assert_int_equal(flow_count(), 0);
    assert_int_equal(run(&in, &out), NEXT);
    /* Folded at removal, with the streams handed back. */
    assert_int_equal(leg_rx_packets(&table_link(t, 0)->leg[0]), 1);
    assert_false(atomic_load(&table_link(t, 0)->leg[0].k_owned));
    assert_int_equal(table_link(t, 0)->leg[0].rtp.stream[0].received, 1);
    free_table(t);
}

static void test_move_carries_counts_and_repoints_peer(void **state)
{
    struct table *t = bound_pair(3);
    struct kfwd_value v;
    uint8_t pl[50];
    struct kfx_pkt in, out;

    (void)state;
    in = udp_pkt("127.0.0.2:6000", "127.0.0.1:5000", pl, kfx_rtp(pl, 3, 1, 0, sizeof(pl)));
    assert_int_equal(run(&in, &out), REDIRECT);
    assert_int_equal(bind_at(t, 3, 0, "127.0.0.4:6001", 0, 1500), TABLE_MOVED);
    assert_int_equal(flow_count(), 2);
    assert_false(get_flow("127.0.0.1:5000", "127.0.0.2:6000", &v));
    assert_int_equal(run(&in, &out), NEXT); /* the old address: nothing */
    in = udp_pkt("127.0.0.4:6001", "127.0.0.1:5000", pl, kfx_rtp(pl, 3, 2, 0, sizeof(pl)));
    assert_int_equal(run(&in, &out), REDIRECT);
    /* B's packets now go to A's new address. */
    in = udp_pkt("127.0.0.3:7000", "127.0.0.1:5001", pl, kfx_rtp(pl, 4, 1, 0, sizeof(pl)));
    assert_int_equal(run(&in, &out), REDIRECT);
    assert_went(&out, "127.0.0.1:5000", "127.0.0.4:6001", &in);
    table_kfwd_pull(t);
    assert_int_equal(leg_rx_packets(&table_link(t, 0)->leg[0]), 2);
    /* One stream across the move: seq 1 then 2, nothing lost. */
    assert_int_equal(table_link(t, 0)->leg[0].rtp.stream[0].received, 2);
    assert_int_equal(table_link(t, 0)->leg[0].rtp.stream[0].ext_max, 2);
    free_table(t);
}

static void test_consent_loss_removes_flows(void **state)
{
    struct table *t = bound_pair(4);
    uint64_t qs[1] = {0};

    (void)state;
    assert_int_equal(flow_count(), 2);
    /* Leg A checks again later; B falls silent and loses consent. */
    assert_int_equal(bind_at(t, 4, 0, "127.0.0.2:6000", 0, 25000), TABLE_REFRESHED);
    table_housekeep(t, 32000, NOW_S, 30000, qs, 1);
    assert_int_equal(flow_count(), 0);
    assert_false(leg_bound(&table_link(t, 0)->leg[1]));
    /* B comes back: both flows again. */
    assert_int_equal(bind_at(t, 4, 1, "127.0.0.3:7000", 1, 33000), TABLE_BOUND);
    assert_int_equal(flow_count(), 2);
    free_table(t);
}

/* A leg whose packets reach the sockets although its flow is installed
 * (another interface) goes back to the sockets, its peer's flow staying;
 * packets the program itself left to the sockets (IP options) do not
 * count. */
static void test_bypassing_leg_returns_to_sockets(void **state)
{
    struct table *t = bound_pair(6);
    struct leg *a = &table_link(t, 0)->leg[0];
    uint64_t qs[1] = {0};
    uint8_t pl[50];
    struct kfx_pkt in, out;
    struct kfwd_totals tot;

    (void)state;
    /* 20 packets with IP options: the program counts their stream, the
     * worker forwards them. */
    for (int i = 0; i < 20; i++) {
        in = udp_pkt("127.0.0.2:6000", "127.0.0.1:5000", pl,
                     kfx_rtp(pl, 3, (uint16_t)i, 0, sizeof(pl)));
        assert_int_equal(run(&in, &out), REDIRECT);
        in = with_ip_options(in);
        assert_int_equal(run(&in, &out), NEXT);
        link_count32(&a->k_punted, 1);
    }
    table_housekeep(t, 2000, NOW_S, 30000, qs, 1);
    assert_int_equal(flow_count(), 2);
    /* Then the worker sees 17 more than the program left to it. */
    for (int i = 0; i < QR_KFWD_BYPASS_MAX + 1; i++)
        link_count32(&a->k_punted, 1);
    table_housekeep(t, 2250, NOW_S, 30000, qs, 1);
    assert_int_equal(flow_count(), 1);
    assert_false(atomic_load(&a->k_owned));
    assert_int_equal(run(&in, &out), NEXT); /* a's own: the sockets' now */
    in = udp_pkt("127.0.0.3:7000", "127.0.0.1:5001", pl, kfx_rtp(pl, 4, 1, 0, sizeof(pl)));
    assert_int_equal(run(&in, &out), REDIRECT); /* b's, to a: still the kernel's */
    kfwd_totals(kf, &tot);
    assert_int_equal(tot.bypassed, 1);
    /* It stays there while the table changes around it... */
    assert_int_equal(bind_at(t, 6, 1, "127.0.0.3:7001", 1, 2500), TABLE_MOVED);
    assert_int_equal(flow_count(), 1);
    /* ...until it binds again (a new path may pass the program). */
    assert_int_equal(bind_at(t, 6, 0, "127.0.0.2:6001", 0, 2600), TABLE_MOVED);
    assert_int_equal(flow_count(), 2);
    free_table(t);
}

/* The map read of kfwd_pull_all runs without the table lock, so the table
 * may change between the read and the fold: each such case counted once. */
static uint64_t kernel_packets(void)
{
    struct kfwd_totals tot;

    kfwd_totals(kf, &tot);
    return tot.packets;
}

static void send_a(uint16_t seq)
{
    uint8_t pl[50];
    struct kfx_pkt in, out;

    in = udp_pkt("127.0.0.2:6000", "127.0.0.1:5000", pl, kfx_rtp(pl, 3, seq, 0, sizeof(pl)));
    assert_int_equal(run(&in, &out), REDIRECT);
}

static void test_pull_read_outside_the_lock(void **state)
{
    struct table *t = bound_pair(7);
    struct link *k = table_link(t, 0);
    uint64_t base;
    uint32_t epoch;
    int64_t n;

    (void)state;
    table_kfwd_pull(t);
    base = kernel_packets();
    send_a(1);
    send_a(2);
    send_a(3);
    table_kfwd_pull(t);
    assert_int_equal(kernel_packets(), base + 3);

    /* A leg read on its own after the copy: the fold does not take it back. */
    epoch = kfwd__pull_begin(kf);
    assert_int_equal(n = kfwd__read_all(kf), 2);
    send_a(4);
    kfwd_pull(kf, k, 0);
    kfwd__fold_all(kf, k, (uint32_t)n, epoch);
    assert_int_equal(leg_rx_packets(&k->leg[0]), 4);
    assert_int_equal(k->leg[0].rtp.stream[0].received, 4);

    /* The flows leave and come back under the same keys: the copy is of the
     * old ones, whose counts the removal added already. */
    epoch = kfwd__pull_begin(kf);
    assert_int_equal(n = kfwd__read_all(kf), 2);
    kfwd_withdraw(kf, k, 0);
    kfwd_update(kf, k, 0);
    assert_int_equal(flow_count(), 2);
    send_a(5);
    kfwd__fold_all(kf, k, (uint32_t)n, epoch);
    assert_int_equal(kernel_packets(), base + 4);
    assert_int_equal(leg_rx_packets(&k->leg[0]), 4);
    table_kfwd_pull(t);
    assert_int_equal(kernel_packets(), base + 5);
    assert_int_equal(leg_rx_packets(&k->leg[0]), 5);

    /* A re-point rolls a flow's counts back by what the program counted
     * between its read and its write (here 2, written by hand): the total
     * read before stays. */
    {
        struct kfwd_key key;
        struct kfwd_value v;

        assert_int_equal(kfx_key("127.0.0.1:5000", "127.0.0.2:6000", &key), 0);
        assert_int_equal(bpf_map_lookup_elem_flags(kf->map_fd, &key, &v, BPF_F_LOCK), 0);
        v.packets -= 2;
        assert_int_equal(bpf_map_update_elem(kf->map_fd, &key, &v, BPF_EXIST | BPF_F_LOCK), 0);
        table_kfwd_pull(t);
        assert_int_equal(kernel_packets(), base + 5);
        assert_int_equal(leg_rx_packets(&k->leg[0]), 5);
    }

    /* The flows leave after the copy: counted by the removal alone. */
    epoch = kfwd__pull_begin(kf);
    assert_int_equal(n = kfwd__read_all(kf), 2);
    kfwd_withdraw(kf, k, 0);
    kfwd__fold_all(kf, k, (uint32_t)n, epoch);
    assert_int_equal(kernel_packets(), base + 5);
    free_table(t);
}

/* Route notices (here a datagram on a socket pair standing in for the
 * rtnetlink one) make housekeeping ask every active link's routes again:
 * a flow whose egress is stale is re-pointed, and a link whose flows went
 * for want of a route gets them back. Nothing happens without a notice. */
static void test_routes_asked_again_after_a_notice(void **state)
{
    struct table *t = bound_pair(8);
    struct link *k = table_link(t, 0);
    struct kfwd_key key;
    struct kfwd_value v;
    uint64_t qs[1] = {0};
    int sv[2], watch = kf->watch_fd;

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    kf->watch_fd = sv[0];
    assert_int_equal(kfx_key("127.0.0.1:5000", "127.0.0.2:6000", &key), 0);
    assert_int_equal(bpf_map_lookup_elem_flags(kf->map_fd, &key, &v, BPF_F_LOCK), 0);
    v.ifindex = 4242; /* as if the route had been by an interface since gone */
    assert_int_equal(bpf_map_update_elem(kf->map_fd, &key, &v, BPF_EXIST | BPF_F_LOCK), 0);

    table_housekeep(t, 1250, NOW_S, 30000, qs, 1);
    assert_true(get_flow("127.0.0.1:5000", "127.0.0.2:6000", &v));
    assert_int_equal(v.ifindex, 4242);

    assert_int_equal(send(sv[1], "x", 1, 0), 1);
    table_housekeep(t, 1500, NOW_S, 30000, qs, 1);
    assert_true(get_flow("127.0.0.1:5000", "127.0.0.2:6000", &v));
    assert_int_equal(v.ifindex, 1);

    /* Both flows gone (a route lookup that failed); the next notice finds
     * the route and installs them again. */
    kfwd_withdraw(kf, k, 0);
    assert_int_equal(flow_count(), 0);
    table_housekeep(t, 1750, NOW_S, 30000, qs, 1);
    assert_int_equal(flow_count(), 0);
    assert_int_equal(send(sv[1], "x", 1, 0), 1);
    table_housekeep(t, 2000, NOW_S, 30000, qs, 1);
    assert_int_equal(flow_count(), 2);

    kf->watch_fd = watch;
    close(sv[0]);
    close(sv[1]);
    free_table(t);
}

static void test_tcp_leg_stays_on_sockets(void **state)
{
    struct table *t = table_new(16, 1, NULL, NULL);

    (void)state;
    table_set_kfwd(t, kf);
    assert_int_equal(bind_at(t, 5, 0, "127.0.0.2:6000", 0, 1000), TABLE_BOUND);
    assert_int_equal(bind_at(t, 5, 1, "127.0.0.3:7000", LEG_ROUTE_TCP | 3, 1000), TABLE_BOUND);
    assert_int_equal(flow_count(), 0);
    free_table(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_rtp_v4_is_rewritten_and_counted, fresh),
        cmocka_unit_test_setup(test_rtp_v6_is_rewritten_and_counted, fresh),
        cmocka_unit_test_setup(test_dtls_and_rtcp_are_forwarded, fresh),
        cmocka_unit_test_setup(test_the_rest_goes_to_the_stack, fresh),
        cmocka_unit_test_setup(test_v6_without_checksum_goes_to_the_stack, fresh),
        cmocka_unit_test(test_route_lookup),
        cmocka_unit_test_setup(test_streams_match_rtpstats, fresh),
        cmocka_unit_test_setup(test_mangled_packets, fresh),
        cmocka_unit_test_setup(test_table_installs_both_flows, fresh),
        cmocka_unit_test_setup(test_revoke_removes_flows_keeping_counts, fresh),
        cmocka_unit_test_setup(test_move_carries_counts_and_repoints_peer, fresh),
        cmocka_unit_test_setup(test_consent_loss_removes_flows, fresh),
        cmocka_unit_test_setup(test_bypassing_leg_returns_to_sockets, fresh),
        cmocka_unit_test_setup(test_tcp_leg_stays_on_sockets, fresh),
        cmocka_unit_test_setup(test_pull_read_outside_the_lock, fresh),
        cmocka_unit_test_setup(test_routes_asked_again_after_a_notice, fresh),
    };

    if (geteuid() != 0) {
        const char *ci = getenv("CI");

        fprintf(stderr, "test_kfwd: needs root (CAP_BPF) to load the program\n");
        return ci != NULL && strcmp(ci, "true") == 0 ? 1 : 77;
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
