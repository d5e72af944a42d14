/* Media pairs: every two admitted people share a link on one relay, chosen
 * when the pair is made (by the visit core, through relays_pick) and kept
 * while it serves (a draining relay still serves the sessions it carries,
 * and both browsers must meet on it); the core moves the pair when its
 * relay is lost or about to stop (visit_tick). Each offer gets freshly derived relay
 * credentials (so an ICE restart really restarts), and every SDP is
 * rewritten before the other browser sees it: the receiver's relay
 * credentials, relay candidates only. The core decides whether an offer or
 * answer is allowed; this file does the crypto and the rewrite. */
#include <stdlib.h>
#include <string.h>

#include "quietroom/base/clock.h"
#include "quietroom/wire/sdp.h"
#include "relays.h"
#include "server.h"
#include "session.h"

/* Relay credentials outlive the longest session, within what relays accept. */
uint32_t media_creds_expiry(const struct signal_server *srv)
{
    uint32_t ttl = srv->cfg.max_session_s + 3600;

    if (ttl > QR_CREDS_MAX_TTL_S)
        ttl = QR_CREDS_MAX_TTL_S;
    return clock_wall_s() + ttl;
}

/* Rewrites sdp with the credentials of `side` of creds on relay `relay`
 * and sends it from `from` to `to` as `type`. Returns false (error sent to
 * the sender) if the SDP cannot be made safe. */
static bool media__forward(struct signal_server *srv, struct session *s, const char *from,
                           const char *to, int relay_index, const struct creds_link *creds,
                           int side, const char *type, const char *sdp, size_t len)
{
    const struct signal_relay_spec *relay = relays_spec(srv->relays, relay_index);
    struct sdp_rewrite_params params = {
        .ice_ufrag = creds->ufrag[side],
        .ice_pwd = creds->pwd[side],
        .cands = relay ? relay->cands : NULL,
        .n_cands = relay ? relay->n_cands : 0,
    };
    size_t cap = len + 4096, out_len = 0;
    char *out = relay ? malloc(cap) : NULL;
    enum sdp_error e = out ? sdp_rewrite(sdp, len, &params, out, cap, &out_len) : SDP_ERR_OUT_OF_SPACE;

    if (relay == NULL) {
        session_error(srv, s, from, "internal", "the visit's relay is not configured here", NULL);
        return false;
    }
    if (e != SDP_OK) {
        session_error(srv, s, from, sdp_error_code(e), sdp_error_message(e), "sdp");
        free(out);
        return false;
    }
    srv->stats.sdp_rewritten++;
    session_send(srv, s, to,
                 json_pack("{s:s,s:s,s:s%}", "type", type, "from", from, "sdp", out, out_len));
    free(out);
    return true;
}

/* A connection check: the page's first peer connection offers, its second
 * answers, both on the person's own relay session (side a the first, side
 * b the second). Both rewritten SDPs go back to the same page. */
static void media__check(struct signal_server *srv, struct session *s, const char *from,
                         const struct visit_out *o, const struct msg *m)
{
    struct visit_person *p = o->check;
    bool ok;

    if (o->media == MSG_CHECK_ANSWER) {
        media__forward(srv, s, from, from, p->check_relay, &p->check_creds, CREDS_SIDE_A,
                       "check_answer", m->sdp, m->sdp_len);
        return;
    }
    /* The check's credentials outlive the check only a little: the relay
     * refuses them after that even if its revocation were lost. */
    ok = creds_derive_link(&srv->relay_keys, p->check_sid, 0,
                           clock_wall_s() + QR_CHECK_MAX_MS / 1000 + QR_TOKEN_SKEW_MAX_S,
                           srv->sha256, &p->check_creds) == 0;
    if (!ok)
        session_error(srv, s, from, "internal", "could not derive relay credentials", NULL);
    else
        ok = media__forward(srv, s, from, from, p->check_relay, &p->check_creds, CREDS_SIDE_B,
                            "check_offer", m->sdp, m->sdp_len);
    visit_check_offered(&s->v, p, ok);
    if (ok)
        stats_count(&srv->stats.checks, "started");
}

/* The core found the pair and allowed the message; credentials and the SDP
 * rewrite are done here, and the core is told what was forwarded. */
void media_forward(struct signal_server *srv, struct session *s, const char *from,
                   const struct visit_env *env, const struct visit_out *o, const struct msg *m)
{
    struct visit_pair *pr = o->pair;
    int64_t setup_ms;

    if (o->media == MSG_CHECK_OFFER || o->media == MSG_CHECK_ANSWER) {
        media__check(srv, s, from, o, m);
        return;
    }
    if (o->media == MSG_OFFER) {
        if (creds_derive_link(&srv->relay_keys, pr->relay_sid, 0, media_creds_expiry(srv),
                              srv->sha256, &pr->creds) != 0) {
            session_error(srv, s, from, "internal", "could not derive relay credentials", NULL);
            return;
        }
        pr->have_creds = true;
        /* The offerer's leg is side a, the answerer's side b; the offer goes
         * to the answerer, so it carries side b's credentials. */
        if (media__forward(srv, s, from, o->peer, pr->relay, &pr->creds, CREDS_SIDE_B, "offer",
                           m->sdp, m->sdp_len))
            visit_offer_forwarded(pr, from);
        return;
    }
    if (!media__forward(srv, s, from, o->peer, pr->relay, &pr->creds, CREDS_SIDE_A, "answer",
                        m->sdp, m->sdp_len))
        return;
    if ((setup_ms = visit_answer_forwarded(pr, from, env)) >= 0)
        metrics_histogram_observe(&srv->stats.setup, (double)setup_ms / 1000.0);
}
