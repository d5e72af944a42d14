/* Audit records of the relay. Built here, queued to the audit writer, which
 * adds time, sequence and node. */
#include "events.h"

#include <stdio.h>

#include "quietroom/clock.h"
#include "relay.h"

static const char *const events_reasons[] = {
    [LEG_DOWN_CONSENT] = "consent",
    [LEG_DOWN_REVOKED] = "revoked",
    [LEG_DOWN_EXPIRED] = "expired",
    [LEG_DOWN_SHUTDOWN] = "shutdown",
};

const char *events_session_hex(const uint8_t *session, char *out)
{
    for (int i = 0; i < CREDS_SESSION_KEY_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", session[i]);
    return out;
}

/* The fields every leg record carries. */
static json_t *events__leg(const char *type, const struct creds_leg *id, int side)
{
    char hex[2 * CREDS_SESSION_KEY_LEN + 1];

    return json_pack("{s:s,s:s,s:i,s:i,s:s}", "type", type, "session",
                     events_session_hex(id->session, hex), "kid", id->kid, "link", id->link,
                     "side", side == CREDS_SIDE_A ? "a" : "b");
}

static void events__addr(json_t *ev, const char *key, const union netaddr *a)
{
    char text[NETADDR_STRLEN];

    json_object_set_new(ev, key, json_string(netaddr_format(a, text, sizeof(text))));
}

void events_leg_up(struct relay *r, const struct creds_leg *cl, const union netaddr *addr)
{
    json_t *ev;

    if (r->audit == NULL || (ev = events__leg("leg.up", cl, cl->side)) == NULL)
        return;
    events__addr(ev, "address", addr);
    audit_emit(r->audit, ev);
}

void events_leg_moved(struct relay *r, const struct creds_leg *cl, const union netaddr *from,
                      const union netaddr *to)
{
    json_t *ev;

    if (r->audit == NULL || (ev = events__leg("leg.moved", cl, cl->side)) == NULL)
        return;
    events__addr(ev, "from", from);
    events__addr(ev, "address", to);
    audit_emit(r->audit, ev);
}

static json_t *events__streams(const struct leg *l)
{
    struct rtpstats_summary s[QR_SSRC_SLOTS];
    int n = rtpstats_read(&l->rtp, s, QR_SSRC_SLOTS);
    json_t *arr = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:i,s:i,s:i,s:f,s:f}", "expected", (int)s[i].expected, "lost",
                           (int)s[i].lost, "reordered", (int)s[i].reordered, "loss_ratio",
                           s[i].loss_ratio, "jitter_ms", s[i].jitter_ms));
    return arr;
}

void events_leg_down(void *ctx, const struct link *k, int side, enum leg_down_reason reason)
{
    struct relay *r = ctx;
    const struct leg *l = &k->leg[side];
    uint64_t now = clock_wall_ms();
    union netaddr addr;
    uint32_t listen;
    json_t *ev;

    if (r->audit == NULL || (ev = events__leg("leg.down", &k->id, side)) == NULL)
        return;
    leg_load_addr(l, &addr, &listen);
    events__addr(ev, "address", &addr);
    json_object_set_new(ev, "reason", json_string(events_reasons[reason]));
    json_object_set_new(ev, "duration_ms",
                        json_integer((json_int_t)(l->up_ms && now > l->up_ms ? now - l->up_ms : 0)));
    json_object_set_new(ev, "packets_in", json_integer((json_int_t)link_read(&l->rx_packets)));
    json_object_set_new(ev, "bytes_in", json_integer((json_int_t)link_read(&l->rx_bytes)));
    json_object_set_new(ev, "packets_forwarded",
                        json_integer((json_int_t)link_read(&l->fwd_packets)));
    json_object_set_new(ev, "bytes_forwarded", json_integer((json_int_t)link_read(&l->fwd_bytes)));
    json_object_set_new(ev, "moves", json_integer(l->moves));
    json_object_set_new(ev, "rtp_streams", events__streams(l));
    audit_emit(r->audit, ev);
}

void events_relay(struct relay *r, const char *type)
{
    if (r->audit != NULL)
        audit_emit(r->audit, json_pack("{s:s}", "type", type));
}
