/* Numbers that are unknown (a relay down, the first poll, an old relay)
 * are JSON null, so the page can leave a gap instead of drawing a zero. */
#include "dashboard.h"

#include <stdlib.h>

#include <jansson.h>

#include "lifecycle.h"
#include "quietroom/base/clock.h"
#include "relays.h"
#include "server.h"
#include "session.h"

static json_t *dashboard__num(double v)
{
    return v < 0.0 ? json_null() : json_real(v);
}

static json_t *dashboard__count(int64_t v)
{
    return v < 0 ? json_null() : json_integer((json_int_t)v);
}

static json_t *dashboard__signal(struct signal_server *srv)
{
    const struct signal_stats *st = &srv->stats;
    struct sessions_census c;
    json_t *roles = json_object();

    sessions_census(srv->sessions, &c);
    for (int r = 0; r < ROLE_COUNT; r++)
        json_object_set_new(roles, role_name((enum role)r), json_integer(c.connected[r]));
    return json_pack("{s:b,s:b,s:I,s:I,s:I,s:I,s:o,s:{s:f,s:f,s:f,s:f,s:f}}", "ready",
                     lifecycle_unready(srv) == NULL, "draining", srv->draining, "ws_connections",
                     (json_int_t)st->ws_open, "sessions", (json_int_t)c.sessions, "waiting_room",
                     (json_int_t)c.waiting, "messages_total", (json_int_t)st->messages,
                     "participants", roles, "rates", "auth_ok", st->rates.auth_ok, "auth_resumed",
                     st->rates.auth_resumed, "auth_refused", st->rates.auth_refused, "messages",
                     st->rates.messages, "rejected", st->rates.rejected);
}

static json_t *dashboard__relay(const struct relays_view *v)
{
    json_t *o = json_pack("{s:s,s:b,s:b}", "name", v->name, "up", v->up, "draining",
                          v->up && v->st.draining == RELAYSTAT_YES);
    json_t *drops = json_object(), *workers = json_array(), *le = json_array(),
           *streams = json_array();
    bool rates = v->have_rates;

    json_object_set_new(o, "sessions", dashboard__count(v->up ? v->st.sessions : -1));
    json_object_set_new(o, "links", dashboard__count(v->up ? v->st.links : -1));
    json_object_set_new(o, "capacity", dashboard__count(v->up ? v->st.capacity : -1));
    json_object_set_new(o, "packets_in_per_s", dashboard__num(rates ? v->rates.packets_in : -1));
    json_object_set_new(o, "packets_out_per_s", dashboard__num(rates ? v->rates.packets_out : -1));
    json_object_set_new(o, "bits_in_per_s", dashboard__num(rates ? v->rates.bits_in : -1));
    json_object_set_new(o, "bits_out_per_s", dashboard__num(rates ? v->rates.bits_out : -1));
    json_object_set_new(o, "tcp_packets_in_per_s",
                        dashboard__num(rates ? v->rates.tcp_packets_in : -1));
    json_object_set_new(o, "tcp_packets_out_per_s",
                        dashboard__num(rates ? v->rates.tcp_packets_out : -1));
    json_object_set_new(o, "tcp_connections", dashboard__count(v->up ? v->st.tcp_open : -1));
    for (unsigned i = 0; rates && i < v->rates.n_drops; i++)
        json_object_set_new(drops, v->rates.drops[i].reason,
                            dashboard__num(v->rates.drops[i].per_s));
    json_object_set_new(o, "drops_per_s", drops);
    for (unsigned i = 0; v->up && i < v->st.n_workers; i++)
        json_array_append_new(workers, json_real(v->st.worker_busy[i]));
    json_object_set_new(o, "worker_busy", workers);
    for (unsigned i = 0; v->up && i < v->st.n_loss; i++)
        json_array_append_new(le, json_real(v->st.loss_le[i]));
    for (unsigned i = 0; v->up && v->st.n_loss > 0 && i <= v->st.n_loss; i++)
        json_array_append_new(streams, json_integer((json_int_t)v->st.loss_streams[i]));
    json_object_set_new(o, "loss", json_pack("{s:o,s:o}", "le", le, "active_streams", streams));
    return o;
}

char *dashboard_json(struct signal_server *srv)
{
    unsigned n = relays_count(srv->relays);
    json_t *doc = json_object(), *relays = json_array();
    struct relays_view v;
    char *text;

    json_object_set_new(doc, "time_ms", json_integer((json_int_t)clock_wall_ms()));
    json_object_set_new(doc, "signal", dashboard__signal(srv));
    for (unsigned i = 0; i < n; i++) {
        relays_view(srv->relays, i, &v);
        json_array_append_new(relays, dashboard__relay(&v));
    }
    json_object_set_new(doc, "relays", relays);
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}
