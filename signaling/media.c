/* Media pairs: every two admitted people share a link on one relay, chosen
 * when the pair is made and kept for its life (a draining relay still
 * serves the sessions it carries, and both browsers must meet on it). Each
 * offer gets freshly derived relay credentials (so an ICE restart really
 * restarts), and every SDP is rewritten before the other browser sees it:
 * the receiver's relay credentials, relay candidates only. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conn.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/log.h"
#include "quietroom/wire/sdp.h"
#include "relays.h"
#include "server.h"
#include "session.h"

/* Relay credentials outlive the longest session, within what relays accept. */
static uint32_t media__creds_expiry(const struct signal_server *srv)
{
    uint32_t ttl = srv->cfg.max_session_s + 3600;

    if (ttl > QR_CREDS_MAX_TTL_S)
        ttl = QR_CREDS_MAX_TTL_S;
    return clock_wall_s() + ttl;
}

struct pair *media_pair_new(struct signal_server *srv, struct session *s, struct participant *a,
                            struct participant *b)
{
    int relay = relays_pick(srv->relays);
    struct pair *pr;

    if (relay < 0 || s->n_pairs == SESSION_PAIRS_MAX || (pr = calloc(1, sizeof(*pr))) == NULL)
        return NULL;
    pr->a = a;
    pr->b = b;
    pr->relay = relay;
    pr->created_ms = clock_mono_ms();
    snprintf(pr->relay_sid, sizeof(pr->relay_sid), "%s-%u", s->instance, ++s->next_pair);
    s->pairs[s->n_pairs++] = pr;
    return pr;
}

/* Stops the pair's media at its relay at once and forgets the pair. */
void media_pair_end(struct signal_server *srv, struct session *s, struct pair *pr)
{
    relays_revoke(srv->relays, pr->relay, pr->relay_sid, media__creds_expiry(srv));
    for (unsigned i = 0; i < s->n_pairs; i++) {
        if (s->pairs[i] == pr) {
            s->pairs[i] = s->pairs[--s->n_pairs];
            break;
        }
    }
    OPENSSL_cleanse(&pr->creds, sizeof(pr->creds));
    free(pr);
}

struct pair *media_pair_find(struct session *s, const struct participant *x,
                             const struct participant *y)
{
    for (unsigned i = 0; i < s->n_pairs; i++) {
        struct pair *pr = s->pairs[i];

        if ((pr->a == x && pr->b == y) || (pr->a == y && pr->b == x))
            return pr;
    }
    return NULL;
}

/* The pair between the sender and `to`, or NULL with an error sent. */
static struct pair *media__pair(struct conn *c, const char *to, struct participant **peer)
{
    struct session *s = c->p->s;
    struct pair *pr = NULL;

    *peer = NULL;
    for (unsigned i = 0; i < s->n_people && *peer == NULL; i++) {
        if (strcmp(s->people[i]->id, to) == 0)
            *peer = s->people[i];
    }
    if (*peer != NULL)
        pr = media_pair_find(s, c->p, *peer);
    if (pr == NULL)
        conn_error(c, "unknown_peer", "no media link with that participant", "to");
    return pr;
}

/* Rewrites sdp for the side `side` of pr and sends it to peer as `type`.
 * Returns false (error sent to the sender) if the SDP cannot be made safe. */
static bool media__forward(struct signal_server *srv, struct conn *c, struct pair *pr,
                           struct participant *peer, int side, const char *type, const char *sdp,
                           size_t len)
{
    const struct signal_relay_spec *relay = relays_spec(srv->relays, pr->relay);
    struct sdp_rewrite_params params = {
        .ice_ufrag = pr->creds.ufrag[side],
        .ice_pwd = pr->creds.pwd[side],
        .cands = relay->cands,
        .n_cands = relay->n_cands,
    };
    size_t cap = len + 4096, out_len = 0;
    char *out = malloc(cap);
    enum sdp_error e = out ? sdp_rewrite(sdp, len, &params, out, cap, &out_len) : SDP_ERR_OUT_OF_SPACE;

    if (e != SDP_OK) {
        conn_error(c, sdp_error_code(e), sdp_error_message(e), "sdp");
        free(out);
        return false;
    }
    srv->stats.sdp_rewritten++;
    if (peer->conn != NULL)
        conn_send(peer->conn, json_pack("{s:s,s:s,s:s%}", "type", type, "from", c->p->id, "sdp",
                                        out, out_len));
    free(out);
    return true;
}

void media_on_offer(struct signal_server *srv, struct conn *c, const char *to, const char *sdp,
                    size_t len)
{
    struct participant *peer;
    struct pair *pr = media__pair(c, to, &peer);

    if (pr == NULL)
        return;
    if (creds_derive_link(&srv->relay_keys, pr->relay_sid, 0, media__creds_expiry(srv),
                          srv->sha256, &pr->creds) != 0) {
        conn_error(c, "internal", "could not derive relay credentials", NULL);
        return;
    }
    pr->have_creds = true;
    /* The offerer's leg is side a, the answerer's side b; the offer goes to
     * the answerer, so it carries side b's credentials. */
    if (media__forward(srv, c, pr, peer, CREDS_SIDE_B, "offer", sdp, len))
        pr->offerer = c->p;
}

void media_on_answer(struct signal_server *srv, struct conn *c, const char *to, const char *sdp,
                     size_t len)
{
    struct participant *peer;
    struct pair *pr = media__pair(c, to, &peer);

    if (pr == NULL)
        return;
    if (!pr->have_creds || pr->offerer != peer) {
        conn_error(c, "unexpected_answer", "there is no offer from that participant to answer",
                   "to");
        return;
    }
    if (!media__forward(srv, c, pr, peer, CREDS_SIDE_A, "answer", sdp, len))
        return;
    pr->offerer = NULL;
    if (!pr->setup_observed) {
        pr->setup_observed = true;
        metrics_histogram_observe(&srv->stats.setup,
                                  (double)(clock_mono_ms() - pr->created_ms) / 1000.0);
    }
}
