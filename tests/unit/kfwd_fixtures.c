/* Packets for the kernel path's program (kfwd_fixtures.h). */
#include "kfwd_fixtures.h"

#include <string.h>
#include <sys/socket.h>

#include <bpf/bpf.h>

#include "quietroom/base/netaddr.h"

uint32_t kfx_sum16(const uint8_t *p, size_t n, uint32_t s)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        s += (uint32_t)p[n - 1] << 8;
    return s;
}

uint16_t kfx_fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

bool kfx_is_v6(const struct kfx_pkt *p)
{
    return p->b[12] == 0x86 && p->b[13] == 0xdd;
}

size_t kfx_l4_off(const struct kfx_pkt *p)
{
    return KFX_ETH_LEN + (kfx_is_v6(p) ? 40 : (size_t)(p->b[KFX_ETH_LEN] & 0x0f) * 4);
}

uint16_t kfx_udp_check(const struct kfx_pkt *p)
{
    size_t l4 = kfx_l4_off(p), ulen = l4 < p->len ? p->len - l4 : 0;
    uint32_t s = kfx_is_v6(p) ? kfx_sum16(p->b + KFX_ETH_LEN + 8, 32, 0)
                              : kfx_sum16(p->b + KFX_ETH_LEN + 12, 8, 0);

    s += 17 + (uint32_t)ulen;
    return kfx_fold(kfx_sum16(p->b + l4, ulen, s));
}

static void kfx__put16(uint8_t *b, uint16_t v)
{
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}

static void kfx__fill_check(struct kfx_pkt *p)
{
    size_t l4 = kfx_l4_off(p);
    uint16_t c;

    p->b[l4 + 6] = p->b[l4 + 7] = 0;
    c = kfx_udp_check(p);
    kfx__put16(p->b + l4 + 6, c == 0 ? 0xffff : c);
}

int kfx_udp_pkt(struct kfx_pkt *p, const char *src, const char *dst, const uint8_t *payload,
                size_t n)
{
    union netaddr s, d;
    uint8_t *ip = p->b + KFX_ETH_LEN;
    size_t l4;

    memset(p, 0, sizeof(*p));
    if (netaddr_parse(src, &s) != 0 || netaddr_parse(dst, &d) != 0 ||
        s.sa.sa_family != d.sa.sa_family || n > KFX_PKT_MAX - KFX_ETH_LEN - 48)
        return -1;
    if (s.sa.sa_family == AF_INET) {
        kfx__put16(p->b + 12, 0x0800);
        ip[0] = 0x45;
        kfx__put16(ip + 2, (uint16_t)(20 + 8 + n));
        kfx__put16(ip + 6, 0x4000); /* DF */
        ip[8] = 64;
        ip[9] = 17;
        memcpy(ip + 12, &s.in.sin_addr, 4);
        memcpy(ip + 16, &d.in.sin_addr, 4);
        kfx__put16(ip + 10, kfx_fold(kfx_sum16(ip, 20, 0)));
        l4 = KFX_ETH_LEN + 20;
        memcpy(p->b + l4, &s.in.sin_port, 2);
        memcpy(p->b + l4 + 2, &d.in.sin_port, 2);
    } else {
        kfx__put16(p->b + 12, 0x86dd);
        ip[0] = 0x60;
        kfx__put16(ip + 4, (uint16_t)(8 + n));
        ip[6] = 17;
        ip[7] = 64;
        memcpy(ip + 8, &s.in6.sin6_addr, 16);
        memcpy(ip + 24, &d.in6.sin6_addr, 16);
        l4 = KFX_ETH_LEN + 40;
        memcpy(p->b + l4, &s.in6.sin6_port, 2);
        memcpy(p->b + l4 + 2, &d.in6.sin6_port, 2);
    }
    kfx__put16(p->b + l4 + 4, (uint16_t)(8 + n));
    if (n > 0)
        memcpy(p->b + l4 + 8, payload, n);
    p->len = l4 + 8 + n;
    kfx__fill_check(p);
    return 0;
}

size_t kfx_rtp(uint8_t *b, uint32_t ssrc, uint16_t seq, uint32_t ts, size_t n)
{
    memset(b, 0xab, n);
    b[0] = 0x80;
    b[1] = 111;
    kfx__put16(b + 2, seq);
    for (int i = 0; i < 4; i++) {
        b[4 + i] = (uint8_t)(ts >> (24 - 8 * i));
        b[8 + i] = (uint8_t)(ssrc >> (24 - 8 * i));
    }
    return n;
}

int kfx_key(const char *local, const char *remote, struct kfwd_key *k)
{
    union netaddr l, r;

    if (netaddr_parse(local, &l) != 0 || netaddr_parse(remote, &r) != 0)
        return -1;
    memset(k, 0, sizeof(*k));
    k->family = (uint8_t)l.sa.sa_family;
    if (k->family == AF_INET) {
        memcpy(k->local, &l.in.sin_addr, 4);
        memcpy(k->remote, &r.in.sin_addr, 4);
        k->local_port = l.in.sin_port;
        k->remote_port = r.in.sin_port;
    } else {
        memcpy(k->local, &l.in6.sin6_addr, 16);
        memcpy(k->remote, &r.in6.sin6_addr, 16);
        k->local_port = l.in6.sin6_port;
        k->remote_port = r.in6.sin6_port;
    }
    return 0;
}

int kfx_add_flow(int map_fd, const char *local, const char *remote, const char *src,
                 const char *dst)
{
    struct kfwd_key k, route;
    struct kfwd_value v;

    if (kfx_key(local, remote, &k) != 0 || kfx_key(src, dst, &route) != 0)
        return -1;
    memset(&v, 0, sizeof(v));
    v.ifindex = 1;
    memcpy(v.src, route.local, 16);
    memcpy(v.dst, route.remote, 16);
    v.src_port = route.local_port;
    v.dst_port = route.remote_port;
    return bpf_map_update_elem(map_fd, &k, &v, BPF_ANY);
}

int kfx_run(int prog_fd, const struct kfx_pkt *p, struct kfx_pkt *out)
{
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p->b, .data_size_in = (uint32_t)p->len,
                .data_out = out->b, .data_size_out = sizeof(out->b), .repeat = 1);

    if (bpf_prog_test_run_opts(prog_fd, &o) != 0)
        return KFX_REFUSED;
    out->len = o.data_size_out;
    return (int)o.retval;
}
