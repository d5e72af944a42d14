/* Audit records of the relay: a leg came up, moved, went down; a session was
 * revoked. The agent of a leg is its network address (the relay never
 * learns who is behind it); the session is the keyed session key. */
#include "events.h"

#include <stdio.h>

#include "quietroom/base/clock.h"
#include "relay.h"

static const char *const events_reasons[] = {
    [LEG_DOWN_CONSENT] = "consent",
    [LEG_DOWN_REVOKED] = "revoked",
    [LEG_DOWN_EXPIRED] = "expired",
    [LEG_DOWN_SHUTDOWN] = "shutdown",
    [LEG_DOWN_SUPERSEDED] = "superseded",
    [LEG_DOWN_CLOSED] = "connection_closed",
};

const char *events_session_hex(const uint8_t *session, char *out)
{
    for (int i = 0; i < CREDS_SESSION_KEY_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", session[i]);
    return out;
}

/* The fields every leg record carries; route says the transport. */
static json_t *events__leg(const char *type, char action, enum audit_outcome outcome,
                           const struct creds_leg *id, int side, const union netaddr *addr,
                           uint32_t route)
{
    char hex[2 * CREDS_SESSION_KEY_LEN + 1], text[NETADDR_STRLEN];
    json_t *ev = audit_event(type, action, outcome);

    audit_event_agent(ev, NULL, side == CREDS_SIDE_A ? "leg-a" : "leg-b", true,
                      addr ? netaddr_format(addr, text, sizeof(text)) : NULL);
    audit_event_session(ev, events_session_hex(id->session, hex), false);
    audit_event_detail(ev, "link", json_integer(id->link));
    audit_event_detail(ev, "kid", json_integer(id->kid));
    audit_event_detail(ev, "transport", json_string(leg_route_is_tcp(route) ? "tcp" : "udp"));
    return ev;
}

void events_leg_up(struct relay *r, const struct creds_leg *cl, const union netaddr *addr,
                   uint32_t route)
{
    if (r->audit != NULL)
        audit_emit(r->audit,
                   events__leg("leg.up", 'C', AUDIT_SUCCESS, cl, cl->side, addr, route));
}

void events_leg_moved(struct relay *r, const struct creds_leg *cl, const union netaddr *from,
                      const union netaddr *to, uint32_t route)
{
    char text[NETADDR_STRLEN];
    json_t *ev;

    if (r->audit == NULL)
        return;
    ev = events__leg("leg.moved", 'U', AUDIT_SUCCESS, cl, cl->side, to, route);
    audit_event_agent(ev, NULL, "previous-address", false, netaddr_format(from, text,
                                                                          sizeof(text)));
    audit_emit(r->audit, ev);
}

static json_t *events__streams(const struct leg *l)
{
    struct rtpstats_summary s[QR_SSRC_SLOTS];
    int n = rtpstats_read(&l->rtp, s, QR_SSRC_SLOTS);
    json_t *arr = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:I,s:I,s:I,s:f,s:f}", "expected", (json_int_t)s[i].expected,
                           "lost", (json_int_t)s[i].lost, "reordered",
                           (json_int_t)s[i].reordered, "loss_ratio", s[i].loss_ratio,
                           "jitter_ms", s[i].jitter_ms));
    return arr;
}

/* Loss of each stream that carried enough to mean something, for the
 * quietroom_relay_rtp_loss_ratio histogram; the table lock is held, so
 * this is the histogram's only writer. */
static void events__observe_loss(struct relay *r, const struct leg *l)
{
    struct rtpstats_summary s[QR_SSRC_SLOTS];
    int n = rtpstats_read(&l->rtp, s, QR_SSRC_SLOTS);

    for (int i = 0; i < n; i++) {
        if (s[i].expected >= QR_LOSS_MIN_EXPECTED)
            metrics_histogram_observe(&r->loss, s[i].loss_ratio);
    }
}

void events_leg_down(void *ctx, const struct link *k, int side, enum leg_down_reason reason)
{
    struct relay *r = ctx;
    const struct leg *l = &k->leg[side];
    uint64_t now = clock_wall_ms(), up_ms = 0, duration = 0;
    union netaddr addr;
    struct leg_addr packed;
    json_t *ev;

    events__observe_loss(r, l);
    if (r->audit == NULL)
        return;
    leg_addr_load(l, &packed);
    leg_addr_unpack(&packed, &addr);
    if (l->up != LEG_NEVER) {
        duration = link_time(k, clock_mono_ms()) - l->up;
        up_ms = now - duration;
    }
    /* Consent lost or a connection gone means the network failed the
     * call; the rest end it as intended. */
    ev = events__leg("leg.down", 'D',
                     reason == LEG_DOWN_CONSENT || reason == LEG_DOWN_CLOSED ? AUDIT_MINOR_FAILURE
                                                                            : AUDIT_SUCCESS,
                     &k->id, side, &addr, leg_addr_route(&packed));
    audit_event_reason(ev, events_reasons[reason]);
    if (up_ms != 0)
        audit_event_period(ev, up_ms, now);
    audit_event_detail(ev, "duration_ms", json_integer((json_int_t)duration));
    audit_event_detail(ev, "packets_in", json_integer((json_int_t)leg_rx_packets(l)));
    audit_event_detail(ev, "bytes_in", json_integer((json_int_t)leg_rx_bytes(l)));
    audit_event_detail(ev, "packets_forwarded", json_integer((json_int_t)leg_fwd_packets(l)));
    audit_event_detail(ev, "bytes_forwarded", json_integer((json_int_t)leg_fwd_bytes(l)));
    audit_event_detail(ev, "moves", json_integer(l->moves));
    audit_event_detail(ev, "rtp_streams", events__streams(l));
    audit_emit(r->audit, ev);
}

void events_revoked(struct relay *r, json_t *sessions, int links_stopped)
{
    json_t *ev;

    if (r->audit == NULL) {
        json_decref(sessions);
        return;
    }
    ev = audit_event("session.revoked", 'D', AUDIT_SUCCESS);
    audit_event_agent(ev, NULL, "control", true, NULL);
    audit_event_detail(ev, "session_keys", sessions);
    audit_event_detail(ev, "links_stopped", json_integer(links_stopped));
    audit_emit(r->audit, ev);
}

void events_reload(struct relay *r, json_t *changed, bool ok, const char *why)
{
    json_t *ev;

    if (r->audit == NULL) {
        json_decref(changed);
        return;
    }
    ev = audit_event("relay.reload", 'U', ok ? AUDIT_SUCCESS : AUDIT_MINOR_FAILURE);
    audit_event_agent(ev, NULL, "operator", true, NULL);
    if (why != NULL)
        audit_event_reason(ev, why);
    audit_event_detail(ev, "changed", changed);
    audit_emit(r->audit, ev);
}

void events_relay(struct relay *r, const char *type)
{
    json_t *ev;

    if (r->audit == NULL)
        return;
    ev = audit_event(type, 'E', AUDIT_SUCCESS);
    audit_event_agent(ev, NULL, "relay", true, NULL);
    audit_emit(r->audit, ev);
}
