/* Offers and answers shaped like Chromium's with bundlePolicy max-bundle and
 * rtcpMuxPolicy require (tests/fixtures/sdp/), cut down to what this client
 * does: one audio section with Opus, its gathered host candidates, its DTLS
 * fingerprint. Signaling's rewriter (common/wire/sdp.c) treats it like any
 * browser's, and the peer's description is read with sdp_summarize, the
 * same reader the rewriter's tests use. */
#include "refclient_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "quietroom/wire/sdp.h"

/* The caller's buffer; an overflow fails the whole description. */
struct sdp__writer {
    char *out;
    size_t cap;
    size_t len;
    bool overflow;
};

static void sdp__line(struct sdp__writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sdp__line(struct sdp__writer *w, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (w->overflow)
        return;
    va_start(ap, fmt);
    n = vsnprintf(w->out + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n + 2 >= w->cap - w->len) {
        w->overflow = true;
        return;
    }
    w->len += (size_t)n;
    memcpy(w->out + w->len, "\r\n", 3);
    w->len += 2;
}

static bool sdp__is_v6(const char *addr)
{
    return strchr(addr, ':') != NULL;
}

/* A candidate of our transport: libnice is given no other (an ICE-TCP
 * client would take a UDP address for a passive TCP one). */
static bool sdp__our_transport(const struct refclient *rc, const struct sdp_candidate *c)
{
    return c->transport == (rc->ice_tcp ? SDP_TRANSPORT_TCP : SDP_TRANSPORT_UDP);
}

/* Our description with a=setup:<setup>. Runs on the loop thread: the ICE
 * credentials and the version change with a restart. */
static int sdp__write(const struct refclient *rc, const char *setup, char *out, size_t cap)
{
    struct sdp__writer w = {.out = out, .cap = cap};
    const struct refclient__cand *first = &rc->local[0];

    if (out == NULL || cap == 0 || rc->n_local == 0)
        return -1;
    out[0] = '\0';
    sdp__line(&w, "v=0");
    /* RFC 3264 §8: a new description after an ICE restart is a new version. */
    sdp__line(&w, "o=- %" PRIu64 " %u IN IP4 127.0.0.1", rc->sdp_session_id,
              2u + rc->ice.restarts);
    sdp__line(&w, "s=-");
    sdp__line(&w, "t=0 0");
    sdp__line(&w, "a=group:BUNDLE 0");
    sdp__line(&w, "a=msid-semantic: WMS quietroom");
    sdp__line(&w, "m=audio %u UDP/TLS/RTP/SAVPF %d", (unsigned)first->port, REFCLIENT__OPUS_PT);
    sdp__line(&w, "c=IN %s %s", sdp__is_v6(first->addr) ? "IP6" : "IP4", first->addr);
    sdp__line(&w, "a=rtcp:9 IN IP4 0.0.0.0");
    /* An ICE-TCP client's are its passive candidates (RFC 6544 §4.5). */
    for (int i = 0; i < rc->n_local; i++)
        sdp__line(&w, "a=candidate:%d 1 %s %" PRIu32 " %s %u typ host%s generation 0", i + 1,
                  rc->ice_tcp ? "tcp" : "udp", refclient__ice_host_priority(rc->ice_tcp, i),
                  rc->local[i].addr, (unsigned)rc->local[i].port,
                  rc->ice_tcp ? " tcptype passive" : "");
    sdp__line(&w, "a=ice-ufrag:%s", rc->local_ufrag);
    sdp__line(&w, "a=ice-pwd:%s", rc->local_pwd);
    sdp__line(&w, "a=fingerprint:%s", rc->dtls.fingerprint);
    sdp__line(&w, "a=setup:%s", setup);
    sdp__line(&w, "a=mid:0");
    sdp__line(&w, "a=sendrecv");
    sdp__line(&w, "a=msid:quietroom audio0");
    sdp__line(&w, "a=rtcp-mux");
    sdp__line(&w, "a=rtpmap:%d opus/48000/2", REFCLIENT__OPUS_PT);
    sdp__line(&w, "a=fmtp:%d minptime=10;useinbandfec=1", REFCLIENT__OPUS_PT);
    sdp__line(&w, "a=ssrc:%" PRIu32 " cname:%s", rc->media.ssrc, rc->cname);
    if (w.overflow) {
        out[0] = '\0';
        return -1;
    }
    return (int)w.len;
}

struct sdp__create_args {
    bool answer;
    char *out;
    size_t cap;
};

static int sdp__create_on_loop(struct refclient *rc, void *arg)
{
    struct sdp__create_args *a = arg;
    int n;

    if (a->answer && !rc->sdp_remote_offer)
        return -1;
    n = sdp__write(rc, a->answer ? rc->sdp_answer_setup : "actpass", a->out, a->cap);
    if (n < 0)
        return -1;
    if (a->answer)
        rc->sdp_remote_offer = false;
    else
        rc->sdp_local_offer = true;
    return n;
}

int refclient_create_offer(struct refclient *rc, char *out, size_t cap)
{
    struct sdp__create_args a = {.answer = false, .out = out, .cap = cap};

    return refclient__call(rc, sdp__create_on_loop, &a);
}

int refclient_create_answer(struct refclient *rc, char *out, size_t cap)
{
    struct sdp__create_args a = {.answer = true, .out = out, .cap = cap};

    return refclient__call(rc, sdp__create_on_loop, &a);
}

/* RFC 5763 §5 / RFC 8842: the offerer says actpass, the answerer picks. */
static int sdp__dtls_role(bool is_answer, const char *remote, bool *we_client,
                          const char **our_answer)
{
    if (is_answer) {
        *our_answer = NULL;
        if (strcmp(remote, "active") == 0)
            *we_client = false;
        else if (strcmp(remote, "passive") == 0)
            *we_client = true;
        else
            return -1;
        return 0;
    }
    if (strcmp(remote, "actpass") == 0 || strcmp(remote, "passive") == 0) {
        *we_client = true;
        *our_answer = "active";
    } else if (strcmp(remote, "active") == 0) {
        *we_client = false;
        *our_answer = "passive";
    } else {
        return -1;
    }
    return 0;
}

struct sdp__remote_args {
    bool is_answer;
    const struct sdp_summary *sum;
    bool we_client;
    const char *our_answer;
    char *err;
    size_t errlen;
};

/* After an ICE restart the DTLS association goes on (RFC 8842 §5.5): the
 * a=setup of a new offer or answer must leave our role as it is, and our
 * answer says the role we have. */
static int sdp__keep_role(const struct refclient *rc, bool is_answer, const char *remote,
                          const char **our_answer)
{
    bool client = rc->dtls.is_client;

    *our_answer = NULL;
    if (is_answer)
        return strcmp(remote, client ? "passive" : "active") == 0 ? 0 : -1;
    if (strcmp(remote, client ? "active" : "passive") == 0)
        return -1;
    *our_answer = client ? "active" : "passive";
    return 0;
}

/* Sets the peer's new ICE credentials and hands libnice its candidates at
 * once (ICE runs already): checks start without a refclient_start. */
static int sdp__give_ice(struct refclient *rc, const struct sdp__remote_args *a)
{
    const struct sdp_summary *sum = a->sum;

    if (refclient__ice_set_remote(rc, sum->ice_ufrag, sum->ice_pwd) != 0) {
        refclient__errf(a->err, a->errlen, "libnice refused the remote ICE credentials");
        return -1;
    }
    for (unsigned i = 0; i < sum->n_cands; i++) {
        if (sdp__our_transport(rc, &sum->cands[i]) &&
            refclient__ice_add_remote(rc, sum->cands[i].addr, sum->cands[i].port) != 0) {
            refclient__errf(a->err, a->errlen, "libnice refused a remote candidate");
            return -1;
        }
    }
    return 0;
}

/* The peer's description after refclient_restart_ice: new ICE, the same
 * DTLS. Nothing is applied unless all of it is acceptable. */
static int sdp__apply_restart(struct refclient *rc, struct sdp__remote_args *a)
{
    const struct sdp_summary *sum = a->sum;
    const char *our_answer;

    if (a->is_answer && !rc->sdp_local_offer) {
        refclient__errf(a->err, a->errlen, "an answer without an offer of ours");
        return -1;
    }
    if (strcasecmp(sum->fingerprint, rc->dtls.expected) != 0) {
        refclient__errf(a->err, a->errlen, "the peer's DTLS fingerprint changed in an ICE "
                                           "restart (DTLS does not restart)");
        return -1;
    }
    if (sdp__keep_role(rc, a->is_answer, sum->setup, &our_answer) != 0) {
        refclient__errf(a->err, a->errlen, "the peer's a=setup would change the DTLS role in an "
                                           "ICE restart");
        return -1;
    }
    if (sdp__give_ice(rc, a) != 0)
        return -1;
    rc->ice.restarting = false;
    refclient__ice_set_controlling(rc, a->is_answer || sum->ice_lite);
    if (a->is_answer) {
        rc->sdp_local_offer = false;
    } else {
        rc->sdp_remote_offer = true;
        snprintf(rc->sdp_answer_setup, sizeof(rc->sdp_answer_setup), "%s", our_answer);
    }
    return 0;
}

static int sdp__apply_on_loop(struct refclient *rc, void *arg)
{
    struct sdp__remote_args *a = arg;
    const struct sdp_summary *sum = a->sum;

    if (rc->ice.restarting)
        return sdp__apply_restart(rc, a);
    if (rc->ice.started || rc->ice.have_remote) {
        refclient__errf(a->err, a->errlen, "a second remote description (renegotiation) is not supported");
        return -1;
    }
    if (a->is_answer && !rc->sdp_local_offer) {
        refclient__errf(a->err, a->errlen, "an answer without an offer of ours");
        return -1;
    }
    if (refclient__dtls_set_role(rc, a->we_client) != 0 ||
        refclient__dtls_set_expected(rc, sum->fingerprint) != 0) {
        refclient__errf(a->err, a->errlen, "the peer's DTLS fingerprint is not a SHA-256 one");
        return -1;
    }
    for (unsigned i = 0; i < sum->n_cands; i++) {
        if (sdp__our_transport(rc, &sum->cands[i]) &&
            refclient__ice_add_remote(rc, sum->cands[i].addr, sum->cands[i].port) != 0) {
            refclient__errf(a->err, a->errlen, "libnice refused a remote candidate");
            return -1;
        }
    }
    if (refclient__ice_set_remote(rc, sum->ice_ufrag, sum->ice_pwd) != 0) {
        refclient__errf(a->err, a->errlen, "libnice refused the remote ICE credentials");
        return -1;
    }
    /* RFC 8445 §6.1.1: the offerer controls, and a full agent facing a lite
     * one always does (the relay answers ICE-CONTROLLED with 487). */
    refclient__ice_set_controlling(rc, a->is_answer || sum->ice_lite);
    if (a->is_answer) {
        rc->sdp_local_offer = false;
    } else {
        rc->sdp_remote_offer = true;
        snprintf(rc->sdp_answer_setup, sizeof(rc->sdp_answer_setup), "%s", a->our_answer);
    }
    return 0;
}

/* Candidates of our transport and of the family our one local address has:
 * libnice pairs no others. */
static unsigned sdp__usable(const struct refclient *rc, const struct sdp_summary *sum)
{
    bool v6 = rc->n_local > 0 && sdp__is_v6(rc->local[0].addr);
    unsigned n = 0;

    for (unsigned i = 0; i < sum->n_cands; i++)
        n += sdp__our_transport(rc, &sum->cands[i]) && sdp__is_v6(sum->cands[i].addr) == v6;
    return n;
}

int refclient_set_remote_description(struct refclient *rc, bool is_answer, const char *sdp,
                                     size_t len, char *err, size_t errlen)
{
    struct sdp_summary *sum = malloc(sizeof(*sum)); /* ~1 KB of credentials: not on the stack */
    struct sdp__remote_args a = {.is_answer = is_answer, .sum = sum, .err = err, .errlen = errlen};
    enum sdp_error e;
    int ret = -1;

    if (sum == NULL || sdp == NULL) {
        refclient__errf(err, errlen, sum == NULL ? "out of memory" : "no description");
        goto out;
    }
    if ((e = sdp_summarize(sdp, len, sum)) != SDP_OK) {
        refclient__errf(err, errlen, "the peer's description is unusable (%s)", sdp_error_code(e));
        goto out;
    }
    if (sdp__dtls_role(is_answer, sum->setup, &a.we_client, &a.our_answer) != 0) {
        refclient__errf(err, errlen, "the peer's description has no usable a=setup for an %s",
                        is_answer ? "answer" : "offer");
        goto out;
    }
    /* sdp_summarize reads UDP candidates only so far: an ICE-TCP client
     * takes the rest of the description and is given the relay's passive
     * candidate with refclient_add_remote_candidate. */
    if (sdp__usable(rc, sum) == 0 && !rc->ice_tcp) {
        refclient__errf(err, errlen, "the peer's description has no %s candidate of our "
                                     "address family", rc->ice_tcp ? "TCP" : "UDP");
        goto out;
    }
    ret = refclient__call(rc, sdp__apply_on_loop, &a);
out:
    if (sum != NULL)
        OPENSSL_cleanse(sum, sizeof(*sum)); /* the relay's ICE password */
    free(sum);
    return ret;
}
