/* libnice as a full ICE agent: one stream with one component (BUNDLE and
 * rtcp-mux), host candidates on exactly one address, and the first-byte
 * demultiplexing (RFC 7983) of what the agent hands us. libnice answers and
 * consumes STUN itself, so only DTLS and RTP/RTCP ever reach refclient__ice_recv.
 * An ICE-TCP client (RFC 6544) gathers TCP candidates only; libnice frames
 * every packet on its connections itself (RFC 4571), so what it hands us and
 * what we send are whole packets either way. */
#include "refclient_internal.h"

#include <stdio.h>
#include <string.h>

#define ICE_COMPONENT 1
#define ICE_HOST_TYPE_PREF 126u
/* RFC 6544 §4.2: a TCP candidate's local preference is 2^13 * direction
 * preference + other preference; a passive host candidate's direction
 * preference is 4 (active 6, simultaneous-open 2). */
#define ICE_TCP_PASSIVE_DIRECTION 4u
#define ICE_TCP_OTHER_PREF_TOP 8191u

uint32_t refclient__ice_host_priority(bool tcp_passive, int index)
{
    guint32 local = tcp_passive ? ICE_TCP_PASSIVE_DIRECTION << 13 |
                                      (ICE_TCP_OTHER_PREF_TOP - (guint32)index)
                                : 65535u - (guint32)index;

    return (ICE_HOST_TYPE_PREF << 24) | (local << 8) | (256u - ICE_COMPONENT);
}

/* The kind of candidate the client keeps and accepts: UDP, or the passive
 * end of ICE-TCP (its active ones have no port anyone can reach). */
static NiceCandidateTransport ice__transport(const struct refclient *rc)
{
    return rc->ice_tcp ? NICE_CANDIDATE_TRANSPORT_TCP_PASSIVE : NICE_CANDIDATE_TRANSPORT_UDP;
}

static void ice__recv(NiceAgent *agent, guint stream_id, guint component_id, guint len,
                      gchar *buf, gpointer user_data)
{
    struct refclient *rc = user_data;
    const unsigned char *p = (const unsigned char *)buf;

    (void)agent;
    (void)stream_id;
    (void)component_id;
    if (len == 0)
        return;
    if (p[0] >= 20 && p[0] <= 63)
        refclient__dtls_receive(rc, p, len);
    else if (p[0] >= 128 && p[0] <= 191)
        refclient__media_receive(rc, p, len);
    /* anything else (ZRTP, TURN channels, QUIC) is not ours to read */
}

static void ice__on_gathering_done(NiceAgent *agent, guint stream_id, gpointer user_data)
{
    struct refclient *rc = user_data;

    (void)agent;
    (void)stream_id;
    refclient__lock(rc);
    rc->gathered = true;
    refclient__unlock_notify(rc);
}

static void ice__on_state(NiceAgent *agent, guint stream_id, guint component_id, guint state,
                          gpointer user_data)
{
    struct refclient *rc = user_data;

    (void)agent;
    (void)stream_id;
    (void)component_id;
    if (state == NICE_COMPONENT_STATE_READY) {
        refclient__lock(rc);
        rc->stats.ice_ready = true;
        refclient__unlock_notify(rc);
        /* Not at CONNECTED: against the relay only the nominated pair is
         * bound, so DTLS sent before READY could be dropped and cost a
         * one-second retransmission. */
        refclient__dtls_start(rc);
    } else if (state == NICE_COMPONENT_STATE_FAILED) {
        refclient__fail(rc, "ICE failed (libnice component state FAILED)");
    }
}

static NiceAgent *ice__new_agent(struct refclient *rc)
{
    NiceAgentOption flags = NICE_AGENT_OPTION_CONSENT_FRESHNESS;
    NiceAgent *agent;

    /* Consent freshness (RFC 7675) makes libnice re-check the pair every
     * ~5 s with authenticated Binding requests, as browsers do; the relay
     * closes a leg after 30 s without a valid check. */
    if (rc->regular_nomination)
        flags |= NICE_AGENT_OPTION_REGULAR_NOMINATION;
    agent = nice_agent_new_full(rc->ctx, NICE_COMPATIBILITY_RFC5245, flags);
    if (agent == NULL)
        return NULL;
    /* One transport or the other, never both: a test that asks for TCP must
     * not pass over UDP behind its back. */
    g_object_set(agent, "controlling-mode", rc->controlling, "ice-tcp", rc->ice_tcp, "ice-udp",
                 !rc->ice_tcp, "upnp", FALSE, NULL);
    return agent;
}

/* Without naming the address libnice ignores lo, pins its sockets to the
 * first real interface with IP_UNICAST_IF, and checks to 127.0.0.1 never
 * arrive; naming it also keeps candidates off every other interface. */
static int ice__add_local_address(NiceAgent *agent, const char *address)
{
    NiceAddress addr;

    nice_address_init(&addr);
    if (!nice_address_set_from_string(&addr, address))
        return -1;
    return nice_agent_add_local_address(agent, &addr) ? 0 : -1;
}

int refclient__ice_init(struct refclient *rc, const struct refclient_config *cfg, char *err, size_t errlen)
{
    struct refclient__ice *ice = &rc->ice;

    ice->agent = ice__new_agent(rc);
    if (ice->agent == NULL) {
        refclient__errf(err, errlen, "nice_agent_new_full failed");
        return -1;
    }
    if (ice__add_local_address(ice->agent, cfg->local_address) != 0) {
        refclient__errf(err, errlen, "bad local address %s", cfg->local_address);
        return -1;
    }
    g_signal_connect(ice->agent, "candidate-gathering-done", G_CALLBACK(ice__on_gathering_done), rc);
    g_signal_connect(ice->agent, "component-state-changed", G_CALLBACK(ice__on_state), rc);
    ice->stream_id = nice_agent_add_stream(ice->agent, 1);
    if (ice->stream_id == 0) {
        refclient__errf(err, errlen, "nice_agent_add_stream failed");
        return -1;
    }
    if (cfg->local_ufrag != NULL &&
        !nice_agent_set_local_credentials(ice->agent, ice->stream_id, cfg->local_ufrag, cfg->local_pwd)) {
        refclient__errf(err, errlen, "libnice refused the local ICE credentials");
        return -1;
    }
    if (!nice_agent_gather_candidates(ice->agent, ice->stream_id)) {
        refclient__errf(err, errlen, "cannot gather candidates on %s", cfg->local_address);
        return -1;
    }
    if (!nice_agent_attach_recv(ice->agent, ice->stream_id, ICE_COMPONENT, rc->ctx, ice__recv, rc)) {
        refclient__errf(err, errlen, "nice_agent_attach_recv failed");
        return -1;
    }
    return 0;
}

void refclient__ice_free(struct refclient *rc)
{
    struct refclient__ice *ice = &rc->ice;

    if (ice->agent == NULL)
        return;
    if (ice->stream_id != 0)
        nice_agent_attach_recv(ice->agent, ice->stream_id, ICE_COMPONENT, rc->ctx, NULL, NULL);
    g_signal_handlers_disconnect_by_data(ice->agent, rc);
    g_object_unref(ice->agent);
    ice->agent = NULL;
}

/* Copies credentials and host candidates into rc, where other threads read
 * them without hopping onto the loop. */
static int ice__snapshot_credentials(struct refclient *rc)
{
    gchar *ufrag = NULL, *pwd = NULL;

    if (!nice_agent_get_local_credentials(rc->ice.agent, rc->ice.stream_id, &ufrag, &pwd))
        return -1;
    snprintf(rc->local_ufrag, sizeof(rc->local_ufrag), "%s", ufrag);
    snprintf(rc->local_pwd, sizeof(rc->local_pwd), "%s", pwd);
    g_free(ufrag);
    g_free(pwd);
    return 0;
}

int refclient__ice_snapshot_local(struct refclient *rc)
{
    GSList *cands, *l;

    if (ice__snapshot_credentials(rc) != 0)
        return -1;
    cands = nice_agent_get_local_candidates(rc->ice.agent, rc->ice.stream_id, ICE_COMPONENT);
    for (l = cands; l != NULL; l = l->next) {
        NiceCandidate *c = l->data;

        if (rc->n_local < REFCLIENT__MAX_CANDS && c->type == NICE_CANDIDATE_TYPE_HOST &&
            c->transport == ice__transport(rc)) {
            struct refclient__cand *out = &rc->local[rc->n_local++];

            nice_address_to_string(&c->addr, out->addr);
            out->port = (uint16_t)nice_address_get_port(&c->addr);
        }
        nice_candidate_free(c);
    }
    g_slist_free(cands);
    return rc->n_local > 0 ? 0 : -1;
}

int refclient__ice_set_remote(struct refclient *rc, const char *ufrag, const char *pwd)
{
    if (!nice_agent_set_remote_credentials(rc->ice.agent, rc->ice.stream_id, ufrag, pwd))
        return -1;
    rc->ice.have_remote = true;
    return 0;
}

static NiceCandidate *ice__remote_candidate(struct refclient *rc, const char *addr, uint16_t port)
{
    NiceCandidate *c = nice_candidate_new(NICE_CANDIDATE_TYPE_HOST);

    c->stream_id = rc->ice.stream_id;
    c->component_id = ICE_COMPONENT;
    c->transport = ice__transport(rc);
    if (!nice_address_set_from_string(&c->addr, addr)) {
        nice_candidate_free(c);
        return NULL;
    }
    nice_address_set_port(&c->addr, port);
    c->priority = refclient__ice_host_priority(rc->ice_tcp, rc->ice.n_remote);
    snprintf(c->foundation, sizeof(c->foundation), "%d", rc->ice.n_remote + 1);
    return c;
}

/* Hands one candidate to libnice, which starts checking it at once when
 * remote credentials are known. */
static int ice__give_candidate(struct refclient *rc, const char *addr, uint16_t port)
{
    NiceCandidate *c = ice__remote_candidate(rc, addr, port);
    GSList one = {.data = c, .next = NULL};
    int added;

    if (c == NULL)
        return -1;
    added = nice_agent_set_remote_candidates(rc->ice.agent, rc->ice.stream_id, ICE_COMPONENT, &one);
    nice_candidate_free(c);
    if (added != 1)
        return -1;
    rc->ice.n_remote++;
    return 0;
}

int refclient__ice_add_remote(struct refclient *rc, const char *addr, uint16_t port)
{
    struct refclient__ice *ice = &rc->ice;
    NiceAddress check;

    nice_address_init(&check);
    if (!nice_address_set_from_string(&check, addr))
        return -1;
    if (ice->started)
        return ice__give_candidate(rc, addr, port);
    if (ice->n_pending >= REFCLIENT__MAX_CANDS)
        return -1;
    snprintf(ice->pending[ice->n_pending].addr, sizeof(ice->pending[0].addr), "%s", addr);
    ice->pending[ice->n_pending].port = port;
    ice->n_pending++;
    return 0;
}

int refclient__ice_start(struct refclient *rc)
{
    struct refclient__ice *ice = &rc->ice;

    if (!ice->have_remote || ice->started)
        return -1;
    ice->started = true;
    for (int i = 0; i < ice->n_pending; i++) {
        if (ice__give_candidate(rc, ice->pending[i].addr, ice->pending[i].port) != 0)
            return -1;
    }
    ice->n_pending = 0;
    return 0;
}

/* libnice keeps the host candidates (same ports, so the peer's new
 * description names the same addresses) and goes on sending on the old
 * selected pair until checks select a new one: media is not held up on our
 * side, only lost where the old path is dead. */
int refclient__ice_restart(struct refclient *rc)
{
    struct refclient__ice *ice = &rc->ice;

    if (!ice->started || !nice_agent_restart_stream(ice->agent, ice->stream_id) ||
        ice__snapshot_credentials(rc) != 0)
        return -1;
    ice->have_remote = false;
    ice->restarting = true;
    ice->restarts++;
    refclient__lock(rc);
    rc->stats.ice_ready = false;
    rc->stats.ice_restarts++;
    refclient__unlock_notify(rc);
    return 0;
}

void refclient__ice_set_controlling(struct refclient *rc, bool controlling)
{
    g_object_set(rc->ice.agent, "controlling-mode", controlling, NULL);
}

int refclient__ice_send(struct refclient *rc, const void *buf, size_t len)
{
    gint sent;

    if (rc->ice.agent == NULL || len > REFCLIENT__DGRAM_MAX)
        return -1;
    sent = nice_agent_send(rc->ice.agent, rc->ice.stream_id, ICE_COMPONENT, (guint)len, buf);
    return sent == (gint)len ? 0 : -1;
}
