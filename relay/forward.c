/* Forwarding. One read section of the address map finds the sending leg and
 * reads its peer's address; the link's state is checked after it, so a
 * revocation stops forwarding at once. A link found in the map cannot be
 * reused before this worker's next quiescent point (table.c), so touching
 * its counters after the section is safe. */
#include "forward.h"

#include "quietroom/wire/rtpstats.h"
#include "worker.h"

/* Finds the leg bound at src and its peer's address; NULL if none. */
static struct link *forward__lookup(struct worker *w, uint32_t listen, const union netaddr *src,
                                    int *side, struct leg_addr *peer)
{
    const struct addrmap *m = w->map;
    struct leg_addr a;
    uint32_t id, token;

    leg_addr_pack(src, listen, &a);
    do {
        token = addrmap_read_begin(m);
        id = addrmap_find(m, &a);
        if (id != ADDRMAP_NONE)
            leg_addr_load(&m->links[id >> 1].leg[!(id & 1)], peer);
    } while (addrmap_read_retry(m, token));
    if (id == ADDRMAP_NONE) {
        stat_add(&w->stats, STAT_DROP_UNBOUND, 1);
        return NULL;
    }
    *side = (int)(id & 1);
    return &m->links[id >> 1];
}

/* The peer has not bound yet: hold DTLS for it, drop media. Returns true if
 * the peer turned out to be bound after all (forward it then). */
static bool forward__peer_unbound(struct worker *w, struct link *k, int peer, const uint8_t *buf,
                                  size_t len, enum demux_class cls, uint64_t now_ms)
{
    if (cls == DEMUX_DTLS) {
        uint32_t idx = (uint32_t)(k - w->map->links);
        int r = table_early_push(w->relay->table, idx, atomic_load(&k->gen), peer, buf, len,
                                 now_ms);

        if (r == 0)
            return true;
        stat_add(&w->stats, r > 0 ? STAT_EARLY_HELD : STAT_DROP_EARLY_FULL, 1);
        return false;
    }
    stat_add(&w->stats, STAT_DROP_PEER_UNBOUND, 1);
    return false;
}

static void forward__account(struct worker *w, struct link *k, struct leg *l, const uint8_t *buf,
                             size_t len, enum demux_class cls, const struct worker_now *now)
{
    link_count32(&l->rx_packets, 1);
    link_count64(&l->rx_bytes, len);
    atomic_store_explicit(&l->last_seen, link_time(k, now->mono_ms), memory_order_relaxed);
    /* A leg the kernel path forwards still sends the odd packet here (IP
     * options or a first fragment, whose stream the program counted; one in
     * flight when its flow was installed; GSO): it is forwarded and counted,
     * but its streams are the program's now. */
    if (atomic_load_explicit(&l->k_owned, memory_order_acquire)) {
        stat_add(&w->stats, STAT_KFWD_USERSPACE, 1);
        link_count32(&l->k_punted, 1);
        return;
    }
    if (cls == DEMUX_RTP) {
        struct rtp_header h;

        if (rtp_parse_header(buf, len, &h) && !rtpstats_update(&l->rtp, &h, now->mono_us))
            stat_add(&w->stats, STAT_RTP_UNTRACKED, 1);
    }
}

void forward_packet(struct worker *w, uint32_t listen, const union netaddr *src, uint8_t *buf,
                    size_t len, enum demux_class cls, const struct worker_now *now)
{
    struct leg_addr peer;
    union netaddr dst;
    struct link *k;
    int side;

    if ((k = forward__lookup(w, listen, src, &side, &peer)) == NULL)
        return;
    if (link_state(k) != LINK_ACTIVE) {
        stat_add(&w->stats, STAT_DROP_INACTIVE, 1);
        return;
    }
    forward__account(w, k, &k->leg[side], buf, len, cls, now);
    if (peer.family == 0) {
        if (!forward__peer_unbound(w, k, !side, buf, len, cls, now->mono_ms))
            return;
        /* Bound in the meantime: read its address again. */
        if (forward__lookup(w, listen, src, &side, &peer) != k || peer.family == 0)
            return;
    }
    leg_addr_unpack(&peer, &dst);
    worker_tx_add(w, leg_addr_route(&peer), &dst, buf, len, &k->leg[side]);
}
