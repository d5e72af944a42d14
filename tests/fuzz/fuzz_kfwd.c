/* The kernel path's program (relay/bpf/kfwd.bpf.c) on arbitrary packets,
 * through BPF_PROG_TEST_RUN: it needs root, as the CI fuzz runs have. The
 * first byte says how the rest is used: a whole Ethernet frame as it is,
 * or the payload of a packet from a flow's source (IPv4 or IPv6), so that
 * the classification, RTP header and stream code see arbitrary contents.
 * Whatever arrives, the verdict is one of three; a packet the program
 * forwards leaves to the flow's peer, with checksums as right as they came
 * in and its payload untouched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kfwd_fixtures.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kfwd *kf;

static const char *const flows[2][4] = {
    {"127.0.0.1:5000", "127.0.0.2:6000", "127.0.0.1:5001", "127.0.0.3:7000"},
    {"[::1]:5000", "[fd00::2]:6000", "[::1]:5001", "[fd00::3]:7000"},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    union netaddr listen;
    enum kfwd_reason reason;
    char err[256];

    (void)argc;
    (void)argv;
    netaddr_parse(flows[0][0], &listen);
    if ((kf = kfwd__open(&listen, 1, 16, &reason, err, sizeof(err))) == NULL) {
        fprintf(stderr, "fuzz_kfwd: the kernel path does not load (%s: %s); run as root\n",
                kfwd_reason_name(reason), err);
        exit(1);
    }
    for (int i = 0; i < 2; i++) {
        if (kfx_add_flow(kf->map_fd, flows[i][0], flows[i][1], flows[i][2], flows[i][3]) != 0)
            abort();
    }
    return 0;
}

static bool well_formed(const struct kfx_pkt *p)
{
    size_t l4 = kfx_l4_off(p), ip_len;

    if (l4 + 8 > p->len)
        return false;
    ip_len = kfx_is_v6(p) ? 40u + (size_t)(p->b[KFX_ETH_LEN + 4] << 8 | p->b[KFX_ETH_LEN + 5])
                          : (size_t)(p->b[KFX_ETH_LEN + 2] << 8 | p->b[KFX_ETH_LEN + 3]);
    return ip_len == p->len - KFX_ETH_LEN &&
           (size_t)(p->b[l4 + 4] << 8 | p->b[l4 + 5]) == p->len - l4;
}

/* A forwarded packet went from the flow's source to the peer, as built
 * packets of that flow would. */
static void check_forwarded(const struct kfx_pkt *in, const struct kfx_pkt *out, int fam)
{
    const uint8_t *payload = in->b + kfx_l4_off(in) + 8;
    size_t n = in->len - kfx_l4_off(in) - 8;
    struct kfx_pkt want;

    if (kfx_udp_pkt(&want, flows[fam][2], flows[fam][3], payload, n) != 0)
        abort();
    if (out->len != in->len || kfx_is_v6(out) != (fam == 1))
        abort();
    if (memcmp(out->b + KFX_ETH_LEN + (fam ? 8 : 12), want.b + KFX_ETH_LEN + (fam ? 8 : 12),
               fam ? 32 : 8) != 0 ||
        memcmp(out->b + kfx_l4_off(out), want.b + kfx_l4_off(&want), 4) != 0 ||
        memcmp(out->b + kfx_l4_off(out) + 8, payload, n) != 0)
        abort();
    if (kfx_udp_check(in) == 0 && kfx_udp_check(out) != 0)
        abort();
    if (fam == 0 && kfx_fold(kfx_sum16(in->b + KFX_ETH_LEN, 20, 0)) == 0 &&
        kfx_fold(kfx_sum16(out->b + KFX_ETH_LEN, 20, 0)) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kfx_pkt in, out;
    int mode, rc, fam;

    if (size < 1)
        return 0;
    mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0) {
        if (size < KFX_ETH_LEN || size > KFX_PKT_MAX)
            return 0;
        memcpy(in.b, data, size);
        in.len = size;
    } else {
        fam = mode - 1;
        if (size > 400 || kfx_udp_pkt(&in, flows[fam][1], flows[fam][0], data, size) != 0)
            return 0;
    }
    rc = kfx_run(kfwd__prog_fd(kf), &in, &out);
    if (rc == KFX_REFUSED)
        return 0;
    if (rc != KFX_NEXT && rc != KFX_REDIRECT && rc != KFX_SHOT)
        abort();
    if (rc != KFX_REDIRECT)
        return 0;
    /* Forwarded: it must have come from a flow's source. */
    fam = kfx_is_v6(&in);
    {
        struct kfx_pkt src;

        if (kfx_udp_pkt(&src, flows[fam][1], flows[fam][0], NULL, 0) != 0)
            abort();
        if (memcmp(in.b + KFX_ETH_LEN + (fam ? 8 : 12), src.b + KFX_ETH_LEN + (fam ? 8 : 12),
                   fam ? 32 : 8) != 0 ||
            memcmp(in.b + kfx_l4_off(&in), src.b + kfx_l4_off(&src), 4) != 0)
            abort();
    }
    /* The finer checks hold for a packet whose lengths agree with its
     * frame; the kernel may trim or keep a trailer after them. */
    if (well_formed(&in))
        check_forwarded(&in, &out, fam);
    return 0;
}
