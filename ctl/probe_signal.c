/* The probe's signaling side: what the browser client (signaling/web/) does,
 * message for message (docs/protocol.md): auth first, the clinician admits
 * from the lobby, the initiator offers, the other answers. Server messages
 * are read for their type and the few fields the probe needs; an error is
 * reported by its code only, never with the message's other contents. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"
#include "quietroom/base/clock.h"

#define PROBE_CODE_MAX 48

void probe_fail(struct probe_result *r, enum probe_stage s, const char *fmt, ...)
{
    va_list ap;

    if (r->failed != PROBE_OK)
        return;
    r->failed = s;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
    va_end(ap);
}

/* A server-sent code, reduced to the characters codes are made of, so that
 * nothing else a server sends can reach the terminal. */
static void probe__code(json_t *m, const char *field, char *out)
{
    const char *s = json_string_value(json_object_get(m, field));
    size_t n = 0;

    for (; s != NULL && *s != '\0' && n < PROBE_CODE_MAX - 1; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_')
            out[n++] = *s;
    }
    out[n] = '\0';
    if (n == 0)
        snprintf(out, PROBE_CODE_MAX, "unknown");
}

static bool probe__is(json_t *m, const char *type)
{
    const char *t = json_string_value(json_object_get(m, "type"));

    return t != NULL && strcmp(t, type) == 0;
}

/* A message that ends the probe for this party: an error, or being sent away. */
static bool probe__fatal(struct probe_party *p, json_t *m, enum probe_stage stage,
                         struct probe_result *r)
{
    static const char *const away[] = {"error", "ended", "removed", "declined"};
    char code[PROBE_CODE_MAX];

    for (size_t i = 0; i < sizeof(away) / sizeof(away[0]); i++) {
        if (!probe__is(m, away[i]))
            continue;
        probe__code(m, i == 0 ? "code" : "reason", code);
        probe_fail(r, stage, "%s: signaling sent %s: %s", p->role, away[i], code);
        return true;
    }
    return false;
}

/* The next message of `type` for p, skipping others (lobby updates, pongs).
 * NULL once the deadline passes, the connection closes, or the server
 * refuses or ends; the reason is in r. */
static json_t *probe__expect(struct probe_party *p, const char *type, enum probe_stage stage,
                             uint64_t deadline_ms, struct probe_result *r)
{
    for (;;) {
        uint64_t now = clock_mono_ms();
        json_t *m;
        int code;

        if (now >= deadline_ms) {
            probe_fail(r, stage, "%s: no \"%s\" from signaling in time", p->role, type);
            return NULL;
        }
        if ((m = wsconn_recv(p->ws, (int)(deadline_ms - now))) == NULL) {
            if (wsconn_is_closed(p->ws, &code)) {
                probe_fail(r, stage, "%s: signaling closed the connection (code %d)", p->role,
                           code);
                return NULL;
            }
            continue;
        }
        if (probe__is(m, type))
            return m;
        if (probe__fatal(p, m, stage, r)) {
            json_decref(m);
            return NULL;
        }
        json_decref(m);
    }
}

/* Copies a short id field; false if absent or too long. */
static bool probe__id(json_t *m, const char *field, char *out, size_t len)
{
    const char *s = json_string_value(json_object_get(m, field));

    if (s == NULL || s[0] == '\0' || strlen(s) >= len)
        return false;
    memcpy(out, s, strlen(s) + 1);
    return true;
}

int probe_signal_join(const struct probe_opts *o, struct probe_party *p, const char *token,
                      uint64_t deadline_ms, struct probe_result *r)
{
    struct wsconn_opts wo = {
        .target = &o->target, .origin = o->origin, .protocol = "quietroom.v1", .ca_file = o->ca_file};
    uint64_t now = clock_mono_ms();
    char err[160];
    json_t *m;

    if (now >= deadline_ms) {
        probe_fail(r, PROBE_TIMEOUT, "%s: the deadline passed before connecting", p->role);
        return -1;
    }
    if ((p->ws = wsconn_open(&wo, (int)(deadline_ms - now), err, sizeof(err))) == NULL) {
        probe_fail(r, PROBE_CONNECT, "%s: %s", p->role, err);
        return -1;
    }
    if (wsconn_send_json(p->ws, json_pack("{s:s,s:s}", "type", "auth", "token", token)) != 0) {
        probe_fail(r, PROBE_CONNECT, "%s: the connection closed before auth", p->role);
        return -1;
    }
    if ((m = probe__expect(p, "welcome", PROBE_AUTH, deadline_ms, r)) == NULL)
        return -1;
    if (!probe__id(m, "participant", p->id, sizeof(p->id))) {
        json_decref(m);
        probe_fail(r, PROBE_AUTH, "%s: welcome without a participant", p->role);
        return -1;
    }
    json_decref(m);
    return 0;
}

/* True if the lobby lists id as waiting. */
static bool probe__waiting(json_t *lobby, const char *id)
{
    json_t *waiting = json_object_get(lobby, "waiting"), *w;
    size_t i;

    json_array_foreach(waiting, i, w) {
        const char *pid = json_string_value(json_object_get(w, "participant"));

        if (pid != NULL && strcmp(pid, id) == 0)
            return true;
    }
    return false;
}

/* The "peer" message: whom p is linked with and whether p offers. */
static int probe__peer(struct probe_party *p, uint64_t deadline_ms, struct probe_result *r)
{
    json_t *m = probe__expect(p, "peer", PROBE_ADMIT, deadline_ms, r);
    bool ok, waiting;

    if (m == NULL)
        return -1;
    ok = probe__id(m, "participant", p->peer, sizeof(p->peer));
    p->initiator = json_is_true(json_object_get(m, "initiator"));
    /* A browser would wait for a relay; a probe reports that none is ready. */
    waiting = json_is_true(json_object_get(m, "waiting_for_relay"));
    json_decref(m);
    if (!ok)
        probe_fail(r, PROBE_ADMIT, "%s: peer message without a participant", p->role);
    else if (waiting)
        probe_fail(r, PROBE_ADMIT, "%s: no_relay_available: signaling has no ready relay for the call",
                   p->role);
    return ok && !waiting ? 0 : -1;
}

int probe_signal_admit(struct probe_party *doc, struct probe_party *pat, uint64_t deadline_ms,
                       struct probe_result *r)
{
    json_t *m;

    for (;;) {
        bool seen;

        if ((m = probe__expect(doc, "lobby", PROBE_ADMIT, deadline_ms, r)) == NULL)
            return -1;
        seen = probe__waiting(m, pat->id);
        json_decref(m);
        if (seen)
            break;
    }
    if (wsconn_send_json(doc->ws, json_pack("{s:s,s:s}", "type", "admit", "participant",
                                            pat->id)) != 0) {
        probe_fail(r, PROBE_ADMIT, "clinician: the connection closed before admit");
        return -1;
    }
    if ((m = probe__expect(pat, "admitted", PROBE_ADMIT, deadline_ms, r)) == NULL)
        return -1;
    json_decref(m);
    if (probe__peer(doc, deadline_ms, r) != 0 || probe__peer(pat, deadline_ms, r) != 0)
        return -1;
    if (doc->initiator == pat->initiator) {
        probe_fail(r, PROBE_ADMIT, "signaling named %s initiator", doc->initiator ? "both" : "neither");
        return -1;
    }
    return 0;
}

int probe_signal_send_sdp(struct probe_party *p, const char *type, const char *sdp,
                          struct probe_result *r)
{
    if (wsconn_send_json(p->ws, json_pack("{s:s,s:s,s:s}", "type", type, "to", p->peer, "sdp",
                                          sdp)) != 0) {
        probe_fail(r, PROBE_NEGOTIATE, "%s: cannot send the %s", p->role, type);
        return -1;
    }
    return 0;
}

int probe_signal_recv_sdp(struct probe_party *p, const char *type, char **sdp,
                          uint64_t deadline_ms, struct probe_result *r)
{
    json_t *m = probe__expect(p, type, PROBE_NEGOTIATE, deadline_ms, r);
    const char *s;

    *sdp = NULL;
    if (m == NULL)
        return -1;
    s = json_string_value(json_object_get(m, "sdp"));
    if (s != NULL && (*sdp = strdup(s)) == NULL)
        probe_fail(r, PROBE_LOCAL, "out of memory");
    else if (s == NULL)
        probe_fail(r, PROBE_NEGOTIATE, "%s: %s without an SDP", p->role, type);
    json_decref(m);
    return *sdp != NULL ? 0 : -1;
}

void probe_signal_leave(struct probe_party *p)
{
    if (p->ws == NULL)
        return;
    wsconn_send_json(p->ws, json_pack("{s:s}", "type",
                                      strcmp(p->role, "clinician") == 0 ? "end" : "leave"));
    wsconn_close(p->ws);
    p->ws = NULL;
}
