/* Keeping the kernel path's flows in step with the link table, and its
 * counters in the legs. Runs under the table lock (kfwd.h) but for
 * kfwd_pull_all's map read; each call is a few map syscalls, on the STUN
 * and housekeeping paths, never per packet.
 *
 * A leg whose flow is installed is "kernel-owned": the program keeps its
 * RTP streams, seeded from the leg's at install and copied back at removal
 * and on every pull, and the worker leaves them alone (forward.c). Packets
 * and bytes the program forwarded are kept apart (leg.k_*) and added by the
 * readers, because the worker still owns the socket counters. */
#include "kfwd_int.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <bpf/bpf.h>

#include "quietroom/base/log.h"

static uint32_t kfwd__load32(const _Atomic uint32_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* The flow leg `side` of k should have, if any, but for its egress
 * (kfwd__route). */
static bool kfwd__desired(const struct kfwd *kf, const struct link *k, uint32_t idx, int side,
                          struct kfwd_key *key, struct kfwd_value *v)
{
    const struct kfwd_listen *in, *out;
    struct leg_addr me, peer;

    if (link_state(k) != LINK_ACTIVE || k->leg[side].k_refused)
        return false;
    leg_addr_load(&k->leg[side], &me);
    leg_addr_load(&k->leg[!side], &peer);
    if (me.family == 0 || me.family != peer.family || me.listen >= kf->n_listen ||
        peer.listen >= kf->n_listen)
        return false; /* unbound, mixed families, or ICE-TCP (LEG_LISTEN_TCP) */
    in = &kf->listen[me.listen];
    out = &kf->listen[peer.listen];
    if (!in->eligible || !out->eligible)
        return false;
    memset(key, 0, sizeof(*key));
    memcpy(key->local, in->addr, sizeof(key->local));
    memcpy(key->remote, me.ip, sizeof(key->remote));
    key->local_port = in->port;
    key->remote_port = me.port;
    key->family = me.family;
    memset(v, 0, sizeof(*v));
    memcpy(v->src, out->addr, sizeof(v->src));
    memcpy(v->dst, peer.ip, sizeof(v->dst));
    v->src_port = out->port;
    v->dst_port = peer.port;
    v->link = idx;
    v->gen_side = kfwd__load32(&k->gen) << 1 | (uint32_t)side;
    return true;
}

static bool kfwd__same_route(const struct kfwd_value *a, const struct kfwd_value *b)
{
    return a->ifindex == b->ifindex && a->flags == b->flags && a->src_port == b->src_port &&
           a->dst_port == b->dst_port && memcmp(a->src, b->src, sizeof(a->src)) == 0 &&
           memcmp(a->dst, b->dst, sizeof(a->dst)) == 0;
}

/* The program's counters of a flow into its leg: the removed flows' share
 * plus this one's, the last packet's time, and the streams. Never older
 * than what the leg shows: kfwd_pull_all's copy may have been read before
 * a kfwd_pull of the same leg. */
static void kfwd__fold(struct link *k, struct leg *l, const struct kfwd_value *v)
{
    if (l->k_done_packets + v->packets < atomic_load_explicit(&l->k_packets, memory_order_relaxed))
        return;
    atomic_store_explicit(&l->k_packets, l->k_done_packets + v->packets, memory_order_relaxed);
    atomic_store_explicit(&l->k_bytes, l->k_done_bytes + v->bytes, memory_order_relaxed);
    if (v->packets > 0)
        atomic_store_explicit(&l->k_last_seen, link_time(k, v->last_ns / 1000000u),
                              memory_order_relaxed);
    rtpstats_copy(&l->rtp, &v->rtp);
}

static void kfwd__install(struct kfwd *kf, struct link *k, uint32_t idx, int side,
                          const struct kfwd_key *key, struct kfwd_value *v)
{
    struct leg *l = &k->leg[side];

    /* From here the worker leaves the streams to the program (forward.c). */
    atomic_store_explicit(&l->k_owned, true, memory_order_release);
    rtpstats_copy(&v->rtp, &l->rtp);
    if (bpf_map_update_elem(kf->map_fd, key, v, BPF_NOEXIST) != 0) {
        atomic_store_explicit(&l->k_owned, false, memory_order_release);
        if (atomic_fetch_add_explicit(&kf->flow_errors, 1, memory_order_relaxed) == 0)
            log_warn("kernel path: cannot install a flow (%s); such links stay on the sockets",
                     strerror(errno));
        return;
    }
    kf->installed[2 * idx + (uint32_t)side] = *key;
    kf->installed_epoch[2 * idx + (uint32_t)side] = kf->pull_epoch;
    l->k_punted_base = l->k_punted_seen = kfwd__load32(&l->k_punted);
    atomic_fetch_add_explicit(&kf->flows, 1, memory_order_relaxed);
}

/* Takes a leg's flow out, keeping what it counted. release: the worker
 * keeps the streams again (no other flow follows at once). */
static void kfwd__remove(struct kfwd *kf, struct link *k, uint32_t idx, int side, bool release)
{
    struct kfwd_key *key = &kf->installed[2 * idx + (uint32_t)side];
    struct leg *l = &k->leg[side];
    struct kfwd_value v;

    /* One syscall reads and deletes: nothing the program counts in
     * between is lost. */
    if (bpf_map_lookup_and_delete_elem_flags(kf->map_fd, key, &v, BPF_F_LOCK) == 0) {
        kfwd__fold(k, l, &v);
        l->k_done_packets += v.packets;
        l->k_done_bytes += v.bytes;
        kf->done_packets += v.packets;
        kf->done_bytes += v.bytes;
        kf->done_untracked += v.untracked;
        log_debug("kernel path: flow of link %u side %d removed after %llu packets", idx, side,
                  (unsigned long long)v.packets);
    } else {
        log_warn("kernel path: cannot remove a flow (%s)", strerror(errno));
        bpf_map_delete_elem(kf->map_fd, key);
    }
    if (release)
        atomic_store_explicit(&l->k_owned, false, memory_order_release);
    memset(key, 0, sizeof(*key));
    atomic_fetch_sub_explicit(&kf->flows, 1, memory_order_relaxed);
}

/* The peer leg moved: this leg's flow keeps its key and counters and gets
 * the new route. What the program counts between the read and the write is
 * lost: microseconds, once per move. */
static void kfwd__repoint(struct kfwd *kf, const struct kfwd_key *key,
                          const struct kfwd_value *want)
{
    struct kfwd_value v;

    if (bpf_map_lookup_elem_flags(kf->map_fd, key, &v, BPF_F_LOCK) != 0 ||
        kfwd__same_route(&v, want))
        return;
    v.ifindex = want->ifindex;
    v.flags = want->flags;
    memcpy(v.src, want->src, sizeof(v.src));
    memcpy(v.dst, want->dst, sizeof(v.dst));
    v.src_port = want->src_port;
    v.dst_port = want->dst_port;
    if (bpf_map_update_elem(kf->map_fd, key, &v, BPF_EXIST | BPF_F_LOCK) != 0)
        log_warn("kernel path: cannot re-point a flow (%s)", strerror(errno));
    else
        kf->repointed++;
}

/* Where v's packets leave: the interface the kernel routes them by, as if
 * the relay's socket sent them; a peer on this host, by loopback (a plain
 * redirect), any other through the neighbour table. */
static int kfwd__route(struct kfwd *kf, const struct kfwd_key *key, struct kfwd_value *v)
{
    struct kfwd_route rt;

    if (kfwd_route_get(kf->route_fd, ++kf->route_seq, key->family, v->src, v->dst, &rt) != 0) {
        if (atomic_fetch_add_explicit(&kf->flow_errors, 1, memory_order_relaxed) == 0)
            log_warn("kernel path: no route to a peer (%s); such links stay on the sockets",
                     strerror(errno));
        return -1;
    }
    v->ifindex = (uint32_t)rt.ifindex;
    v->flags = rt.local ? 0 : KFWD_NEIGH;
    return 0;
}

void kfwd_update(struct kfwd *kf, struct link *k, uint32_t idx)
{
    for (int side = 0; side < 2; side++) {
        struct kfwd_key *cur = &kf->installed[2 * idx + (uint32_t)side], key;
        struct kfwd_value v;
        bool want = kfwd__desired(kf, k, idx, side, &key, &v) && kfwd__route(kf, &key, &v) == 0;

        if (cur->family != 0 && want && memcmp(cur, &key, sizeof(key)) == 0) {
            kfwd__repoint(kf, cur, &v);
            continue;
        }
        if (cur->family != 0)
            kfwd__remove(kf, k, idx, side, !want);
        if (want)
            kfwd__install(kf, k, idx, side, &key, &v);
    }
}

void kfwd_follow_routes(struct kfwd *kf, struct link *links, const uint32_t *active,
                        uint32_t n_active)
{
    uint32_t asked = 0;

    if (kf->watch_fd >= 0 && kfwd_route_changed(kf->watch_fd)) {
        if (!kf->sweeping)
            kf->sweep_repointed = kf->repointed;
        kf->sweeping = true;
        kf->sweep_pos = n_active; /* a change during a sweep: all again */
    }
    if (!kf->sweeping)
        return;
    /* Downwards: a link that leaves swaps the last one into its place, which
     * this walk has seen, so none active at the start is missed; a link that
     * comes meanwhile asked its route when its flows were installed. */
    if (kf->sweep_pos > n_active)
        kf->sweep_pos = n_active;
    while (kf->sweep_pos > 0 && asked < QR_KFWD_SWEEP_LINKS) {
        uint32_t idx = active[--kf->sweep_pos];

        asked++;
        /* Installed: re-pointed if the route changed, removed (the sockets
         * carry on) if there is none. Not installed but wanted (its route
         * was gone and is back): installed. */
        kfwd_update(kf, &links[idx], idx);
    }
    if (kf->sweep_pos > 0)
        return;
    kf->sweeping = false;
    if (kf->repointed != kf->sweep_repointed)
        log_info("kernel path: routes changed; %llu flows re-pointed while they were asked again",
                 (unsigned long long)(kf->repointed - kf->sweep_repointed));
}

void kfwd_withdraw(struct kfwd *kf, struct link *k, uint32_t idx)
{
    for (int side = 0; side < 2; side++) {
        if (kf->installed[2 * idx + (uint32_t)side].family != 0)
            kfwd__remove(kf, k, idx, side, true);
    }
}

void kfwd_check(struct kfwd *kf, struct link *k, uint32_t idx)
{
    for (int side = 0; side < 2; side++) {
        const struct kfwd_key *key = &kf->installed[2 * idx + (uint32_t)side];
        struct leg *l = &k->leg[side];
        uint32_t punted = kfwd__load32(&l->k_punted);
        struct kfwd_value v;

        /* Only a leg the worker saw packets of since the last look costs a
         * syscall. */
        if (key->family == 0 || punted == l->k_punted_seen)
            continue;
        l->k_punted_seen = punted;
        if (bpf_map_lookup_elem_flags(kf->map_fd, key, &v, BPF_F_LOCK) != 0 ||
            punted - l->k_punted_base <= v.stack + QR_KFWD_BYPASS_MAX)
            continue;
        kfwd__remove(kf, k, idx, side, true);
        l->k_refused = true;
        if (atomic_fetch_add_explicit(&kf->bypassed, 1, memory_order_relaxed) == 0)
            log_info("kernel path: a leg's packets reach the sockets by another interface; "
                     "such legs stay on the sockets (their peers' flows do not)");
    }
}

void kfwd_pull(struct kfwd *kf, struct link *k, uint32_t idx)
{
    for (int side = 0; side < 2; side++) {
        const struct kfwd_key *key = &kf->installed[2 * idx + (uint32_t)side];
        struct kfwd_value v;

        if (key->family != 0 && bpf_map_lookup_elem_flags(kf->map_fd, key, &v, BPF_F_LOCK) == 0)
            kfwd__fold(k, &k->leg[side], &v);
    }
}

/* Every flow into kf->snap_*, without the table lock. The number read, or
 * -1. A flow present throughout is read once: a BPF hash map's entries
 * stay in their bucket, whatever else is added or removed meanwhile. */
int64_t kfwd__read_all(struct kfwd *kf)
{
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_F_LOCK);
    uint32_t out_batch, count, cap = 2 * kf->max_links, n = 0;
    void *in = NULL;
    int rc;

    do {
        count = cap - n < QR_KFWD_BATCH ? cap - n : QR_KFWD_BATCH;
        if (count == 0) {
            /* Full, yet not at the end: flows came and went while it read
             * (a key seen, removed, and a new one read too). A fold of it
             * would miss what was not reached; the next read will do. */
            log_debug("kernel path: the flows changed under the read; folded next time");
            return -1;
        }
        rc = bpf_map_lookup_batch(kf->map_fd, in, &out_batch, kf->snap_keys + n,
                                  kf->snap_values + n, &count, &opts);
        if (rc != 0 && errno != ENOENT) {
            log_warn("kernel path: cannot read the flows (%s)", strerror(errno));
            return -1;
        }
        n += count;
        in = &out_batch;
    } while (rc == 0);
    return n;
}

/* A total only ever grows: a flow re-pointed after the copy read it lost
 * what the program counted between the re-point's read and write, so the
 * next copy may hold a little less than this one. */
static void kfwd__raise(_Atomic uint64_t *total, uint64_t v)
{
    if (v > atomic_load_explicit(total, memory_order_relaxed))
        atomic_store_explicit(total, v, memory_order_relaxed);
}

/* Under the table lock: the copy into the legs and the totals, but only
 * the flows installed before the read began (epoch) and still installed.
 * One removed since is in done_* with its final counts; one installed since
 * is counted at the next pull. */
void kfwd__fold_all(struct kfwd *kf, struct link *links, uint32_t n, uint64_t epoch)
{
    uint64_t packets = kf->done_packets, bytes = kf->done_bytes, untracked = kf->done_untracked;

    for (uint32_t i = 0; i < n; i++) {
        const struct kfwd_value *v = &kf->snap_values[i];
        uint32_t leg = 2 * v->link + (v->gen_side & 1);
        struct link *k;

        if (v->link >= kf->max_links || kf->installed_epoch[leg] >= epoch ||
            memcmp(&kf->installed[leg], &kf->snap_keys[i], sizeof(struct kfwd_key)) != 0)
            continue;
        k = &links[v->link];
        packets += v->packets;
        bytes += v->bytes;
        untracked += v->untracked;
        if (kfwd__load32(&k->gen) == v->gen_side >> 1)
            kfwd__fold(k, &k->leg[v->gen_side & 1], v);
    }
    kfwd__raise(&kf->packets, packets);
    kfwd__raise(&kf->bytes, bytes);
    kfwd__raise(&kf->untracked, untracked);
}

uint64_t kfwd__pull_begin(struct kfwd *kf)
{
    return ++kf->pull_epoch;
}

void kfwd_pull_all(struct kfwd *kf, struct link *links, pthread_mutex_t *table_lock)
{
    uint64_t epoch;
    int64_t n;

    pthread_mutex_lock(&kf->pull_lock);
    pthread_mutex_lock(table_lock);
    epoch = kfwd__pull_begin(kf);
    pthread_mutex_unlock(table_lock);
    if ((n = kfwd__read_all(kf)) >= 0) {
        pthread_mutex_lock(table_lock);
        kfwd__fold_all(kf, links, (uint32_t)n, epoch);
        pthread_mutex_unlock(table_lock);
    }
    pthread_mutex_unlock(&kf->pull_lock);
}

void kfwd_totals(const struct kfwd *kf, struct kfwd_totals *out)
{
    memset(out, 0, sizeof(*out));
    if (kf == NULL)
        return;
    out->flows = atomic_load_explicit(&kf->flows, memory_order_relaxed);
    out->packets = atomic_load_explicit(&kf->packets, memory_order_relaxed);
    out->bytes = atomic_load_explicit(&kf->bytes, memory_order_relaxed);
    out->rtp_untracked = atomic_load_explicit(&kf->untracked, memory_order_relaxed);
    out->flow_errors = atomic_load_explicit(&kf->flow_errors, memory_order_relaxed);
    out->bypassed = atomic_load_explicit(&kf->bypassed, memory_order_relaxed);
}

const char *kfwd_interfaces(const struct kfwd *kf, unsigned *n)
{
    *n = kf != NULL ? kf->n_ifaces : 0;
    return kf != NULL ? kf->names : "";
}
