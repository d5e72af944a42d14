/* The kernel path across veth pairs, in network namespaces the test makes
 * itself: the relay in namespace R with an address on each of two veth
 * pairs, one reference client in namespace A at the far end of the first,
 * the other in namespace B at the far end of the second. The program sees
 * a leg's packets arrive on one veth and sends them out of the other (a
 * redirect that needs the peer's link-layer address, as on a NIC), over
 * IPv4 and over IPv6, and the tone goes both ways.
 *
 *   A (pa) 10.215.N.2 ---- 10.215.N.1 (ra)  R  (rb) 10.215.N.5 ---- 10.215.N.6 (pb) B
 *          fd51:7e58:N:a::2  fd51:7e58:N:a::1     fd51:7e58:N:b::1  fd51:7e58:N:b::2
 *
 * A second pair of tests puts the relay on ra's address alone: B reaches it
 * by routing (B's default route goes via rb, R reaches B's subnet by rb), so
 * B's packets arrive at rb, where no program is attached, and go to the
 * relay's socket, while A's arrive at ra, where the program sends them out
 * of rb, the interface the kernel routes B by, not ra, the one holding the
 * listen address. A relay that sent each flow out of its listen address's
 * interface (as before commit 124fe7b) fails them: A's packets leave by ra,
 * the neighbour lookup for B's address there fails, B hears nothing (not
 * even the DTLS handshake completes) while the program counts them all.
 *
 * The last test changes the route to B mid-call (a third veth pair, rb
 * down): the flow must follow the new route.
 *
 * The relay runs under `ip netns exec R` (QR_RELAY_PREFIX) with its control
 * endpoint on ra's address and ops on R's loopback; this process moves its
 * main thread into A (to reach the control endpoint, and for client a's
 * sockets and thread), into B only while it creates client b, and into R
 * only while it scrapes /metrics. The namespaces are deleted at the
 * end, also when a test failed; those of a run that was killed are deleted
 * by the next run (their names carry the pid).
 *
 * Needs root, BPF, TCX and network namespaces: exits 77 (skipped) without
 * them, or 1 when CI=true. */
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kfwdkit.h"
#include "world.h"

#define NS_PREFIX "qrk"
#define CALL_MS 3000
#define OPS_TOKEN "kernel-veth-ops-token-0123456789"
#define M_PACKETS "quietroom_relay_kernel_path_packets_total"

struct net {
    char ns[3][32];               /* R, A, B */
    char v4[4][20];               /* ra, pa, rb, pb */
    char v6[4][48];
    int octet;                    /* the third octet of the IPv4 addresses */
    int home;                     /* this thread's namespace at start */
    bool made;
};

static struct net net;

enum { NS_R, NS_A, NS_B };

/* Runs a command line (no shell quoting needed: our words have no blanks);
 * 0 if it exited 0. Its output goes to stderr when it fails. */
__attribute__((format(printf, 1, 2))) static int sh(const char *fmt, ...)
{
    char line[512];
    char *argv[32], *save = NULL, *out;
    va_list ap;
    int n = 0, rc;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    for (char *w = strtok_r(line, " ", &save); w != NULL && n < 31; w = strtok_r(NULL, " ", &save))
        argv[n++] = w;
    argv[n] = NULL;
    {
        /* run_command execs without a PATH search */
        static char ip[] = "/usr/sbin/ip", ip2[] = "/sbin/ip", ip3[] = "/usr/bin/ip";

        if (strcmp(argv[0], "ip") == 0)
            argv[0] = access(ip, X_OK) == 0 ? ip : access(ip2, X_OK) == 0 ? ip2 : ip3;
    }
    out = run_command(argv, &rc);
    if (rc != 0)
        fprintf(stderr, "`%s` exited %d: %s\n", fmt, rc, out ? out : "");
    free(out);
    return rc;
}

/* Namespaces left by runs that are gone (killed by a timeout). */
static void net_sweep_stale(void)
{
    DIR *d = opendir("/run/netns");
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        char proc[64];
        int pid;

        if (strncmp(e->d_name, NS_PREFIX, strlen(NS_PREFIX)) != 0 ||
            sscanf(e->d_name + strlen(NS_PREFIX), "%d", &pid) != 1)
            continue;
        snprintf(proc, sizeof(proc), "/proc/%d", pid);
        if (access(proc, F_OK) != 0)
            sh("ip netns del %s", e->d_name);
    }
    closedir(d);
}

static int net_enter(int which)
{
    char path[64];
    int fd, rc;

    snprintf(path, sizeof(path), "/run/netns/%s", net.ns[which]);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    rc = setns(fd, CLONE_NEWNET);
    close(fd);
    return rc;
}

static void net_home(void)
{
    if (net.home >= 0)
        setns(net.home, CLONE_NEWNET);
}

static void net_delete(void)
{
    net_home();
    for (int i = 0; i < 3; i++) {
        if (net.ns[i][0] != '\0')
            sh("ip netns del %s", net.ns[i]);
    }
    net.made = false;
}

/* Makes the three namespaces and two veth pairs; 0, or -1 (nothing left). */
static int net_make(void)
{
    static const char tag[3] = {'r', 'a', 'b'};
    int o = (int)(getpid() % 250) + 1;

    memset(&net, 0, sizeof(net));
    net.octet = o;
    net.home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    net_sweep_stale();
    for (int i = 0; i < 3; i++) {
        snprintf(net.ns[i], sizeof(net.ns[i]), NS_PREFIX "%d%c", (int)getpid(), tag[i]);
        if (sh("ip netns add %s", net.ns[i]) != 0) {
            net.ns[i][0] = '\0';
            net_delete();
            return -1;
        }
    }
    net.made = true;
    snprintf(net.v4[0], sizeof(net.v4[0]), "10.215.%d.1", o);
    snprintf(net.v4[1], sizeof(net.v4[1]), "10.215.%d.2", o);
    snprintf(net.v4[2], sizeof(net.v4[2]), "10.215.%d.5", o);
    snprintf(net.v4[3], sizeof(net.v4[3]), "10.215.%d.6", o);
    snprintf(net.v6[0], sizeof(net.v6[0]), "fd51:7e58:%x:a::1", o);
    snprintf(net.v6[1], sizeof(net.v6[1]), "fd51:7e58:%x:a::2", o);
    snprintf(net.v6[2], sizeof(net.v6[2]), "fd51:7e58:%x:b::1", o);
    snprintf(net.v6[3], sizeof(net.v6[3]), "fd51:7e58:%x:b::2", o);
    if (sh("ip -n %s link add ra type veth peer name pa netns %s", net.ns[NS_R], net.ns[NS_A]) ||
        sh("ip -n %s link add rb type veth peer name pb netns %s", net.ns[NS_R], net.ns[NS_B]))
        goto fail;
    for (int side = 0; side < 2; side++) {
        const char *ns_peer = net.ns[side == 0 ? NS_A : NS_B];
        const char *r_if = side == 0 ? "ra" : "rb", *p_if = side == 0 ? "pa" : "pb";

        if (sh("ip -n %s addr add %s/30 dev %s", net.ns[NS_R], net.v4[2 * side], r_if) ||
            sh("ip -n %s addr add %s/64 dev %s nodad", net.ns[NS_R], net.v6[2 * side], r_if) ||
            sh("ip -n %s link set %s up", net.ns[NS_R], r_if) ||
            sh("ip -n %s addr add %s/30 dev %s", ns_peer, net.v4[2 * side + 1], p_if) ||
            sh("ip -n %s addr add %s/64 dev %s nodad", ns_peer, net.v6[2 * side + 1], p_if) ||
            sh("ip -n %s link set %s up", ns_peer, p_if) ||
            sh("ip -n %s link set lo up", ns_peer))
            goto fail;
    }
    /* B's way to ra's addresses (the routed tests); rb's subnets are R's
     * routes to B. */
    if (sh("ip -n %s route add default via %s", net.ns[NS_B], net.v4[2]) ||
        sh("ip -n %s -6 route add default via %s", net.ns[NS_B], net.v6[2]))
        goto fail;
    if (sh("ip -n %s link set lo up", net.ns[NS_R]) == 0)
        return 0;
fail:
    net_delete();
    return -1;
}

static int group_setup(void **state)
{
    (void)state;
    return net_make() == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    net_delete();
    if (net.home >= 0)
        close(net.home);
    return 0;
}

/* The relay in R on ra's address of family v6 or v4 and, when both, rb's,
 * kernel path on, its control endpoint on ra's IPv4 address, ops on R's
 * loopback; this thread in A. */
static int setup_relay(void **state, bool v6, bool both)
{
    char listen[2][64], control[40], prefix[64];
    const char *const addrs[] = {listen[0], both ? listen[1] : NULL, NULL};
    const char *const extra[] = {"--kernel-forward", "on", "--control", control, NULL};
    struct world_opts o = {.no_signal = true, .listen = addrs, .relay_extra = extra,
                           .ops_token = OPS_TOKEN};
    struct world *w = calloc(1, sizeof(*w));
    int rc;

    *state = w;
    for (int i = 0; i < 2; i++)
        snprintf(listen[i], sizeof(listen[i]), v6 ? "[%s]:0" : "%s:0",
                 v6 ? net.v6[2 * i] : net.v4[2 * i]);
    snprintf(control, sizeof(control), "%s:0", net.v4[0]);
    snprintf(prefix, sizeof(prefix), "ip netns exec %s", net.ns[NS_R]);
    if (w == NULL || net_enter(NS_A) != 0)
        return -1;
    setenv("QR_RELAY_PREFIX", prefix, 1);
    rc = world_start(w, &o);
    unsetenv("QR_RELAY_PREFIX");
    return rc;
}

static int setup_v4(void **state)
{
    return setup_relay(state, false, true);
}

static int setup_v6(void **state)
{
    return setup_relay(state, true, true);
}

static int setup_v4_one(void **state)
{
    return setup_relay(state, false, false);
}

static int setup_v6_one(void **state)
{
    return setup_relay(state, true, false);
}

static int teardown(void **state)
{
    int rc = world_teardown(state);

    net_home();
    return rc;
}

/* The names of the interfaces the program is attached to, as a test sees
 * them: whether ra and rb are among them. The path must be active. */
static void attached(struct relay_proc *r, bool *has_ra, bool *has_rb)
{
    json_t *path = kfwd_path(r), *name;
    char *text = json_dumps(path, 0);
    size_t i;

    print_message("kernel_path: %s\n", text);
    free(text);
    assert_true(json_is_true(json_object_get(path, "active")));
    *has_ra = *has_rb = false;
    json_array_foreach(json_object_get(path, "interfaces"), i, name)
    {
        *has_ra |= strcmp(json_string_value(name), "ra") == 0;
        *has_rb |= strcmp(json_string_value(name), "rb") == 0;
    }
    json_decref(path);
}

/* The relay's quietroom_relay_kernel_path_packets_total, scraped in R
 * (ops listens on R's loopback); this thread back in A after. */
static double kernel_packets(struct relay_proc *r)
{
    char *m;
    double v;

    assert_int_equal(net_enter(NS_R), 0);
    m = kfwd_scrape(r, OPS_TOKEN);
    assert_int_equal(net_enter(NS_A), 0);
    v = kfwd_sample(m, M_PACKETS);
    free(m);
    if (v < 0)
        fail_msg("no sample %s in /metrics", M_PACKETS);
    return v;
}

/* A call from A to B through R. Fails if a tone does not cross (the
 * redirect to the other veth without the right link-layer header, a
 * checksum left wrong, a flow keyed on the wrong interface), or if the
 * kernel did not forward most of it (the family punted to userspace, the
 * program not attached on the veths). */
static void call_across(struct relay_proc *r, const char *sid, bool v6)
{
    const char *const *addr = NULL;
    const char *v4a[] = {net.v4[1], net.v4[3]}, *v6a[] = {net.v6[1], net.v6[3]};
    struct kfwd_call c = {0};
    struct refclient_stats st[2];
    json_t *legs;
    long long k0, kp, leg_fwd;
    bool has_ra, has_rb;

    addr = v6 ? v6a : v4a;
    attached(r, &has_ra, &has_rb);
    assert_true(has_ra && has_rb);

    k0 = kfwd_count(r, "packets");
    kfwd_call_client(&c, 0, addr[0]);     /* in A */
    assert_int_equal(net_enter(NS_B), 0);
    kfwd_call_client(&c, 1, addr[1]);     /* its thread and sockets in B */
    assert_int_equal(net_enter(NS_A), 0);
    kfwd_call_connect(&c, r, sid, &r->listen[0], &r->listen[1]);
    assert_int_equal(kfwd_count(r, "flows"), 2);
    kfwd_call_talk(&c, CALL_MS, st);

    kp = kfwd_count(r, "packets") - k0;
    legs = kfwd_legs(r, sid);
    leg_fwd = json_integer_value(json_object_get(json_object_get(legs, "a"),
                                                 "packets_forwarded")) +
              json_integer_value(json_object_get(json_object_get(legs, "b"),
                                                 "packets_forwarded"));
    print_message("%s: peers received %llu + %llu RTP, legs forwarded %lld, kernel %lld\n", sid,
                  (unsigned long long)st[0].rtp_received, (unsigned long long)st[1].rtp_received,
                  leg_fwd, kp);
    assert_true(leg_fwd >= (long long)(st[0].rtp_received + st[1].rtp_received));
    assert_true(kp >= leg_fwd * 8 / 10);
    json_decref(legs);
    kfwd_call_free(&c);
}

/* A call from A to B through R listening on ra's address alone, which B
 * reaches through rb by its default route. Fails if a tone does not cross
 * (A's packets sent out of ra, where B is not: see the top of the file),
 * or if the kernel did not forward most of A's packets (B's come in by rb,
 * where no program is: the sockets forward them). */
static void call_routed(struct relay_proc *r, const char *sid, bool v6)
{
    const char *const *addr = NULL;
    const char *v4a[] = {net.v4[1], net.v4[3]}, *v6a[] = {net.v6[1], net.v6[3]};
    struct kfwd_call c = {0};
    struct refclient_stats st[2];
    json_t *legs;
    long long a_fwd, b_fwd;
    double k0, kp;
    bool has_ra, has_rb;

    addr = v6 ? v6a : v4a;
    assert_int_equal(r->n_listen, 1);
    attached(r, &has_ra, &has_rb);
    assert_true(has_ra && !has_rb);

    k0 = kernel_packets(r);
    kfwd_call_client(&c, 0, addr[0]);     /* in A */
    assert_int_equal(net_enter(NS_B), 0);
    kfwd_call_client(&c, 1, addr[1]);     /* its thread and sockets in B */
    assert_int_equal(net_enter(NS_A), 0);
    kfwd_call_connect(&c, r, sid, &r->listen[0], &r->listen[0]);
    assert_int_equal(kfwd_count(r, "flows"), 2);
    kfwd_call_talk(&c, CALL_MS, st);

    /* The legs first: media goes on, so the total read after can only be
     * higher. */
    legs = kfwd_legs(r, sid);
    kp = kernel_packets(r) - k0;
    a_fwd = json_integer_value(json_object_get(json_object_get(legs, "a"), "packets_forwarded"));
    b_fwd = json_integer_value(json_object_get(json_object_get(legs, "b"), "packets_forwarded"));
    print_message("%s: B received %llu RTP, A %llu; legs forwarded a %lld, b %lld; kernel %.0f\n",
                  sid, (unsigned long long)st[1].rtp_received,
                  (unsigned long long)st[0].rtp_received, a_fwd, b_fwd, kp);
    assert_true(a_fwd >= (long long)st[1].rtp_received);
    assert_true(b_fwd >= (long long)st[0].rtp_received);
    /* A's direction went through the program, out of rb. */
    assert_true(kp >= (double)(a_fwd * 8 / 10));
    json_decref(legs);
    kfwd_call_free(&c);
}

static void test_call_over_ipv4_across_veth(void **state)
{
    call_across(&((struct world *)*state)->relay, "kv-call-v4", false);
}

static void test_call_over_ipv6_across_veth(void **state)
{
    call_across(&((struct world *)*state)->relay, "kv-call-v6", true);
}

static void test_call_over_ipv4_routed_to_one_address(void **state)
{
    call_routed(&((struct world *)*state)->relay, "kv-routed-v4", false);
}

static void test_call_over_ipv6_routed_to_one_address(void **state)
{
    call_routed(&((struct world *)*state)->relay, "kv-routed-v6", true);
}

/* The route to B changes mid-call: R reaches B by a third veth pair (rc in
 * R, pc in B) and rb goes down. A's flow was installed to leave by rb; the
 * relay hears of the change (route and link notices) and re-points it to
 * rc, and B hears A again, still through the program. A relay that kept a
 * flow's first route sends A's packets into a down interface: B hears
 * nothing more. B's own packets reach R by an interface without the program
 * (rb, then rc), so only A's direction is the kernel's here. */
static void test_route_change_mid_call(void **state)
{
    struct relay_proc *r = &((struct world *)*state)->relay;
    const char *ns_r = net.ns[NS_R], *ns_b = net.ns[NS_B];
    struct kfwd_call c = {0};
    struct refclient_stats st[2], before, after;
    char rc_addr[20], pc_addr[20];
    uint64_t heard;
    double k0, kp;

    snprintf(rc_addr, sizeof(rc_addr), "10.215.%d.9", net.octet);
    snprintf(pc_addr, sizeof(pc_addr), "10.215.%d.10", net.octet);
    assert_int_equal(sh("ip -n %s link add rc type veth peer name pc netns %s", ns_r, ns_b), 0);
    assert_int_equal(sh("ip -n %s addr add %s/30 dev rc", ns_r, rc_addr), 0);
    assert_int_equal(sh("ip -n %s link set rc up", ns_r), 0);
    assert_int_equal(sh("ip -n %s addr add %s/30 dev pc", ns_b, pc_addr), 0);
    assert_int_equal(sh("ip -n %s link set pc up", ns_b), 0);

    kfwd_call_client(&c, 0, net.v4[1]);   /* in A */
    assert_int_equal(net_enter(NS_B), 0);
    kfwd_call_client(&c, 1, net.v4[3]);
    assert_int_equal(net_enter(NS_A), 0);
    kfwd_call_connect(&c, r, "kv-reroute", &r->listen[0], &r->listen[0]);
    kfwd_call_talk(&c, CALL_MS, st);

    assert_int_equal(sh("ip -n %s route replace default via %s dev pc", ns_b, rc_addr), 0);
    assert_int_equal(sh("ip -n %s route add %s/32 via %s dev rc", ns_r, net.v4[3], pc_addr), 0);
    assert_int_equal(sh("ip -n %s link set rb down", ns_r), 0);
    refclient_get_stats(c.rc[1], &before);
    k0 = kernel_packets(r);
    usleep(CALL_MS * 1000);
    refclient_get_stats(c.rc[1], &after);
    kp = kernel_packets(r) - k0;
    heard = after.rtp_received - before.rtp_received;
    print_message("after the change: B received %llu RTP in %d ms, the kernel forwarded %.0f\n",
                  (unsigned long long)heard, CALL_MS, kp);
    /* One packet per 20 ms; allow a third lost to the change (the notice
     * is acted on at the next housekeeping round). */
    assert_true(heard > CALL_MS / 30);
    assert_true(kp >= (double)heard * 8 / 10);
    assert_true(kfwd_count(r, "flows") >= 1);
    kfwd_call_free(&c);
}

/* After test_route_change_mid_call, passed or not: the relay stopped, then
 * the topology as net_make left it (rb's IPv6 address went with rb down). */
static int teardown_reroute(void **state)
{
    int rc = teardown(state);

    sh("ip -n %s link del rc", net.ns[NS_R]); /* absent if the test failed early */
    if (sh("ip -n %s link set rb up", net.ns[NS_R]) != 0 ||
        sh("ip -n %s addr replace %s/64 dev rb nodad", net.ns[NS_R], net.v6[2]) != 0 ||
        sh("ip -n %s route replace default via %s", net.ns[NS_B], net.v4[2]) != 0 ||
        sh("ip -n %s -6 route replace default via %s", net.ns[NS_B], net.v6[2]) != 0)
        rc = -1;
    return rc;
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_call_over_ipv4_across_veth, setup_v4, teardown),
        cmocka_unit_test_setup_teardown(test_call_over_ipv6_across_veth, setup_v6, teardown),
        cmocka_unit_test_setup_teardown(test_call_over_ipv4_routed_to_one_address, setup_v4_one,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_call_over_ipv6_routed_to_one_address, setup_v6_one,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_route_change_mid_call, setup_v4_one,
                                        teardown_reroute),
    };
    const char *ci = getenv("CI");
    int gate;

    signal(SIGPIPE, SIG_IGN);
    if ((gate = kfwd_gate("test_relay_kernel_veth")) != 0)
        return gate;
    /* Namespaces: made here first, so that a machine without them skips
     * instead of failing in the group setup. */
    if (net_make() != 0) {
        if (ci != NULL && strcmp(ci, "true") == 0) {
            fprintf(stderr, "test_relay_kernel_veth: FAIL: cannot make network namespaces, "
                            "and CI=true\n");
            return 1;
        }
        fprintf(stderr, "test_relay_kernel_veth: SKIP: cannot make network namespaces\n");
        return KFWD_SKIP;
    }
    net_delete();
    close(net.home);
    return world_run_tests("test_relay_kernel_veth", tests, sizeof(tests) / sizeof(tests[0]),
                           group_setup, group_teardown);
}
