/* The kernel path: a TCX ingress program that forwards the DTLS, RTP and
 * RTCP of bound legs without waking the relay. For a datagram to one of the
 * relay's addresses from a leg the relay installed (kfwd_abi.h), it counts
 * the packet and its RTP stream with the relay's own code (rtpstats_core.h),
 * rewrites both addresses and ports to those of the peer leg's path, fixes
 * the checksums and redirects it out. Everything else goes on to the stack:
 * STUN (consent and nomination stay with the relay), unknown sources, later
 * fragments, GSO packets, IPv6 extension headers. A flow's packet with IP
 * options, or a first fragment, goes on too (the relay's socket forwards
 * it), but its RTP stream is counted here: a flow's streams have one keeper. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "kfwd_abi.h"
#include "quietroom/wire/demux.h"
#include "quietroom/wire/rtpstats_core.h"

/* TCX verdicts (linux/bpf.h of kernels >= 6.6; Debian 12's headers are
 * older): go on to the next program and the stack, or redirected. */
#define KFWD_NEXT (-1)
#define KFWD_REDIRECT 7

#define KFWD_AF_INET 2
#define KFWD_AF_INET6 10
#define KFWD_IP_MF 0x2000
#define KFWD_IP_OFFSET 0x1FFF

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1); /* set by the relay before loading: 2 x max-links */
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct kfwd_key);
    __type(value, struct kfwd_value);
} kfwd_flows SEC(".maps");

/* Where the parts of a parsed datagram are. */
struct kfwd_pkt {
    struct kfwd_key key;
    uint32_t l3;          /* offset of the IP header */
    uint32_t l4;          /* offset of the UDP header */
    uint32_t payload_len; /* UDP payload bytes */
    /* Left to the sockets (IP options, a first fragment), but the program
     * counts its RTP stream: the flow's streams are the program's, and the
     * worker leaves them alone (forward.c). */
    bool stack;
};

static __always_inline int kfwd_parse4(struct __sk_buff *skb, struct kfwd_pkt *p)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct iphdr *ip = data + sizeof(struct ethhdr);
    struct udphdr udp;
    uint16_t frag;

    if ((void *)(ip + 1) > end || ip->ihl < 5 || ip->protocol != IPPROTO_UDP)
        return -1;
    frag = bpf_ntohs(ip->frag_off);
    if (frag & KFWD_IP_OFFSET)
        return -1; /* a later fragment: no UDP header */
    p->l3 = sizeof(struct ethhdr);
    p->l4 = p->l3 + (uint32_t)ip->ihl * 4;
    p->stack = ip->ihl != 5 || (frag & KFWD_IP_MF) != 0;
    __builtin_memcpy(p->key.local, &ip->daddr, 4);
    __builtin_memcpy(p->key.remote, &ip->saddr, 4);
    if (bpf_skb_load_bytes(skb, p->l4, &udp, sizeof(udp)) != 0)
        return -1;
    p->key.local_port = udp.dest;
    p->key.remote_port = udp.source;
    p->key.family = KFWD_AF_INET;
    p->payload_len = bpf_ntohs(udp.len);
    return 0;
}

static __always_inline int kfwd_parse6(struct __sk_buff *skb, struct kfwd_pkt *p)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct ipv6hdr *ip = data + sizeof(struct ethhdr);
    struct udphdr *udp = (void *)(ip + 1);

    if ((void *)(udp + 1) > end)
        return -1;
    if (ip->nexthdr != IPPROTO_UDP)
        return -1;
    __builtin_memcpy(p->key.local, &ip->daddr, 16);
    __builtin_memcpy(p->key.remote, &ip->saddr, 16);
    p->key.local_port = udp->dest;
    p->key.remote_port = udp->source;
    p->key.family = KFWD_AF_INET6;
    p->l3 = sizeof(struct ethhdr);
    p->l4 = p->l3 + sizeof(struct ipv6hdr);
    p->payload_len = bpf_ntohs(udp->len);
    return 0;
}

static __always_inline int kfwd_parse(struct __sk_buff *skb, struct kfwd_pkt *p)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    int rc = -1;

    if ((void *)(eth + 1) > end || skb->gso_size != 0)
        return -1;
    __builtin_memset(p, 0, sizeof(*p));
    if (eth->h_proto == bpf_htons(ETH_P_IP))
        rc = kfwd_parse4(skb, p);
    else if (eth->h_proto == bpf_htons(ETH_P_IPV6))
        rc = kfwd_parse6(skb, p);
    /* A UDP length beyond the packet (but for a first fragment): left to
     * the stack, which drops it. */
    if (rc == 0 && (p->payload_len < sizeof(struct udphdr) ||
                    (!p->stack && p->payload_len > skb->len - p->l4)))
        rc = -1;
    return rc;
}

/* The first bytes of the payload, enough to classify it and read an RTP
 * header; the rest of the buffer stays zero. */
static __always_inline enum demux_class kfwd_classify(struct __sk_buff *skb,
                                                      const struct kfwd_pkt *p, uint8_t head[12])
{
    uint32_t len = p->payload_len - (uint32_t)sizeof(struct udphdr);

    uint32_t off = p->l4 + sizeof(struct udphdr);
    long rc;

    if (p->payload_len < sizeof(struct udphdr) || len == 0)
        return DEMUX_UNKNOWN;
    if (len >= 12)
        rc = bpf_skb_load_bytes(skb, off, head, 12);
    else if (len >= 2)
        rc = bpf_skb_load_bytes(skb, off, head, 2);
    else
        rc = bpf_skb_load_bytes(skb, off, head, 1);
    if (rc != 0)
        return DEMUX_UNKNOWN;
    return demux_classify(head, len);
}

/* Counts the packet as the relay's forwarder would (forward.c), and reads
 * where it goes, in one critical section. A packet left to the sockets
 * (out NULL) is counted there; here only its stream. */
static __always_inline void kfwd_account(struct kfwd_value *v, uint32_t len, enum demux_class cls,
                                         const uint8_t head[12], uint64_t now_ns,
                                         struct kfwd_value *out)
{
    struct rtp_header h;
    bool rtp = cls == DEMUX_RTP && rtp_header_fits(head[0], len);

    if (rtp)
        rtp_header_decode(head, &h);
    bpf_spin_lock(&v->lock);
    if (rtp && !rtpstats_core_update(&v->rtp, &h, now_ns / 1000))
        v->untracked++;
    if (out == NULL) {
        bpf_spin_unlock(&v->lock);
        return;
    }
    v->packets++;
    v->bytes += len;
    v->last_ns = now_ns;
    out->ifindex = v->ifindex;
    __builtin_memcpy(out->src, v->src, 16);
    __builtin_memcpy(out->dst, v->dst, 16);
    out->src_port = v->src_port;
    out->dst_port = v->dst_port;
    out->flags = v->flags;
    bpf_spin_unlock(&v->lock);
}

static __always_inline int kfwd_rewrite4(struct __sk_buff *skb, const struct kfwd_pkt *p,
                                         const struct kfwd_value *to)
{
    uint32_t csum = p->l4 + offsetof(struct udphdr, check);
    uint32_t old_s, old_d, new_s, new_d;

    __builtin_memcpy(&old_s, p->key.remote, 4);
    __builtin_memcpy(&old_d, p->key.local, 4);
    __builtin_memcpy(&new_s, to->src, 4);
    __builtin_memcpy(&new_d, to->dst, 4);
    if (bpf_l4_csum_replace(skb, csum, old_s, new_s,
                            BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | 4) != 0 ||
        bpf_l4_csum_replace(skb, csum, old_d, new_d,
                            BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | 4) != 0 ||
        bpf_l3_csum_replace(skb, p->l3 + offsetof(struct iphdr, check), old_s, new_s, 4) != 0 ||
        bpf_l3_csum_replace(skb, p->l3 + offsetof(struct iphdr, check), old_d, new_d, 4) != 0 ||
        bpf_skb_store_bytes(skb, p->l3 + offsetof(struct iphdr, saddr), &new_s, 4, 0) != 0 ||
        bpf_skb_store_bytes(skb, p->l3 + offsetof(struct iphdr, daddr), &new_d, 4, 0) != 0)
        return -1;
    return 0;
}

static __always_inline int kfwd_rewrite6(struct __sk_buff *skb, const struct kfwd_pkt *p,
                                         const struct kfwd_value *to)
{
    uint8_t old[32], new[32];
    int64_t diff;

    __builtin_memcpy(old, p->key.remote, 16);
    __builtin_memcpy(old + 16, p->key.local, 16);
    __builtin_memcpy(new, to->src, 16);
    __builtin_memcpy(new + 16, to->dst, 16);
    diff = bpf_csum_diff((void *)old, sizeof(old), (void *)new, sizeof(new), 0);
    if (diff < 0 ||
        bpf_l4_csum_replace(skb, p->l4 + offsetof(struct udphdr, check), 0, (uint32_t)diff,
                            BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0) != 0 ||
        bpf_skb_store_bytes(skb, p->l3 + offsetof(struct ipv6hdr, saddr), new, 32, 0) != 0)
        return -1;
    return 0;
}

static __always_inline int kfwd_ports(struct __sk_buff *skb, const struct kfwd_pkt *p,
                                      const struct kfwd_value *to)
{
    uint32_t csum = p->l4 + offsetof(struct udphdr, check);
    uint16_t ports[2] = {to->src_port, to->dst_port};

    if (bpf_l4_csum_replace(skb, csum, p->key.remote_port, to->src_port,
                            BPF_F_MARK_MANGLED_0 | 2) != 0 ||
        bpf_l4_csum_replace(skb, csum, p->key.local_port, to->dst_port,
                            BPF_F_MARK_MANGLED_0 | 2) != 0 ||
        bpf_skb_store_bytes(skb, p->l4 + offsetof(struct udphdr, source), ports, 4, 0) != 0)
        return -1;
    return 0;
}

SEC("tc")
int kfwd_ingress(struct __sk_buff *skb)
{
    struct kfwd_pkt p;
    struct kfwd_value *v, to;
    uint8_t head[12] = {0};
    enum demux_class cls;
    uint64_t now_ns;
    int rc;

    if (kfwd_parse(skb, &p) != 0)
        return KFWD_NEXT;
    v = bpf_map_lookup_elem(&kfwd_flows, &p.key);
    if (v == NULL)
        return KFWD_NEXT;
    cls = kfwd_classify(skb, &p, head);
    if (cls != DEMUX_DTLS && cls != DEMUX_RTP && cls != DEMUX_RTCP)
        return KFWD_NEXT; /* STUN and the rest: the relay's sockets */
    now_ns = bpf_ktime_get_ns();
    if (p.stack) {
        kfwd_account(v, p.payload_len - (uint32_t)sizeof(struct udphdr), cls, head, now_ns, NULL);
        return KFWD_NEXT;
    }
    __builtin_memset(&to, 0, sizeof(to));
    kfwd_account(v, p.payload_len - (uint32_t)sizeof(struct udphdr), cls, head, now_ns, &to);
    if (to.ifindex == 0)
        return KFWD_NEXT;
    rc = p.key.family == KFWD_AF_INET ? kfwd_rewrite4(skb, &p, &to) : kfwd_rewrite6(skb, &p, &to);
    if (rc != 0 || kfwd_ports(skb, &p, &to) != 0)
        return 2; /* TC_ACT_SHOT: half rewritten, it can go nowhere */
    if (to.flags & KFWD_NEIGH)
        return (int)bpf_redirect_neigh(to.ifindex, NULL, 0, 0);
    /* A peer on this host, through lo: lo takes a frame for another MAC
     * than its own (all zero) as not for this host and drops it, and a
     * packet that came in on a NIC still carries the NIC's address. */
    __builtin_memset(head, 0, 6); /* the RTP header copy is done with */
    if (bpf_skb_store_bytes(skb, 0, head, 6, 0) != 0)
        return 2;
    return (int)bpf_redirect(to.ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
