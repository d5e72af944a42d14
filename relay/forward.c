/* Forwarding. The worker's own address map names the leg; the slot's
 * generation is read before and after the state so that a slot closed and
 * reused meanwhile is never mistaken for the link it used to hold (the table
 * only reuses a slot after every worker has been quiescent since it closed). */
#include "forward.h"

#include "quietroom/rtpstats.h"
#include "worker.h"

/* Finds the live leg bound to src, or NULL (dropping a stale map entry). */
static struct link *forward__lookup(struct worker *w, uint32_t listen, const union netaddr *src,
                                    int *side)
{
    struct addrmap_entry *e = addrmap_find(&w->map, listen, src);
    struct link *k;
    uint32_t gen;

    if (e == NULL) {
        stat_add(&w->stats, STAT_DROP_UNBOUND, 1);
        return NULL;
    }
    k = table_link(w->relay->table, e->link);
    gen = atomic_load_explicit(&k->gen, memory_order_acquire);
    if (gen != e->link_gen ||
        atomic_load_explicit(&k->leg[e->side].addr_gen, memory_order_acquire) != e->addr_gen) {
        addrmap_remove(&w->map, e);
        stat_add(&w->stats, STAT_DROP_UNBOUND, 1);
        return NULL;
    }
    if (link_state(k) != LINK_ACTIVE || atomic_load_explicit(&k->gen, memory_order_acquire) != gen) {
        stat_add(&w->stats, STAT_DROP_INACTIVE, 1);
        return NULL;
    }
    *side = e->side;
    return k;
}

/* The peer has not bound yet: hold DTLS for it, drop media. Returns true if
 * the peer turned out to be bound after all. */
static bool forward__peer_unbound(struct worker *w, struct link *k, int peer, const uint8_t *buf,
                                  size_t len, enum demux_class cls)
{
    if (cls == DEMUX_DTLS) {
        uint32_t idx = (uint32_t)(k - table_link(w->relay->table, 0));
        int r = table_early_push(w->relay->table, idx, atomic_load(&k->gen), peer, buf, len,
                                 w->now.mono_ms);

        if (r == 0)
            return true;
        stat_add(&w->stats, r > 0 ? STAT_EARLY_HELD : STAT_DROP_EARLY_FULL, 1);
        return false;
    }
    stat_add(&w->stats, STAT_DROP_PEER_UNBOUND, 1);
    return false;
}

void forward_packet(struct worker *w, uint32_t listen, const union netaddr *src, uint8_t *buf,
                    size_t len, enum demux_class cls)
{
    union netaddr dst;
    uint32_t dst_listen;
    struct link *k;
    struct leg *l;
    int side;

    if ((k = forward__lookup(w, listen, src, &side)) == NULL)
        return;
    l = &k->leg[side];
    link_count(&l->rx_packets, 1);
    link_count(&l->rx_bytes, len);
    atomic_store_explicit(&l->last_seen_ms, w->now.wall_ms, memory_order_relaxed);
    if (cls == DEMUX_RTP) {
        struct rtp_header h;

        if (rtp_parse_header(buf, len, &h))
            rtpstats_update(&l->rtp, &h, w->now.mono_us);
    }
    if (!atomic_load_explicit(&k->leg[!side].bound, memory_order_acquire) &&
        !forward__peer_unbound(w, k, !side, buf, len, cls))
        return;
    leg_load_addr(&k->leg[!side], &dst, &dst_listen);
    worker_tx_add(w, dst_listen, &dst, buf, len, l);
}
