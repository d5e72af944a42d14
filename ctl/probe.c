/* One probe call, stage by stage: tokens, join, admit, negotiate, ICE and
 * DTLS, media, tone. Each stage's waits end at the setup deadline (start +
 * --timeout); the media phase then runs --seconds. Setup time is measured as
 * a participant would feel it: from opening the first WebSocket until audio
 * arrives at both ends. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "probe.h"
#include "quietroom/base/clock.h"
#include "quietroom/base/limits.h"
#include "quietroom/wire/sdp.h"
#include "refclient.h"
#include "token_mint.h"

#define PROBE_SID_BYTES 12
#define PROBE_POLL_MS 20

static const double probe_tone_hz[2] = {QR_PROBE_TONE_CLINICIAN_HZ, QR_PROBE_TONE_PATIENT_HZ};

const char *probe_stage_name(enum probe_stage s)
{
    static const char *const names[] = {
        [PROBE_OK] = "ok",           [PROBE_LOCAL] = "local",   [PROBE_CONNECT] = "connect",
        [PROBE_AUTH] = "auth",       [PROBE_ADMIT] = "admit",   [PROBE_NEGOTIATE] = "negotiate",
        [PROBE_ICE] = "ice",         [PROBE_DTLS] = "dtls",     [PROBE_MEDIA] = "media",
        [PROBE_TONE] = "tone",       [PROBE_TIMEOUT] = "timeout",
    };

    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

static int probe__left_ms(uint64_t deadline_ms)
{
    uint64_t now = clock_mono_ms();

    return now >= deadline_ms ? 0 : (int)(deadline_ms - now);
}

static void probe__sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* A fresh visit id per probe: tokens are single-use and visits must not mix. */
static int probe__sid(char *out, size_t len)
{
    unsigned char raw[PROBE_SID_BYTES];
    size_t n = (size_t)snprintf(out, len, "quietroom-probe-");

    if (RAND_bytes(raw, sizeof(raw)) != 1 || n + 2 * sizeof(raw) >= len)
        return -1;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(out + n + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

static int probe__tokens(const struct probe_opts *o, char *tok[2], struct probe_result *r)
{
    static const char *const role[2] = {"clinician", "patient"};
    static const char *const sub[2] = {"quietroom-probe-clinician", "quietroom-probe-patient"};
    char sid[64], err[256];

    if (probe__sid(sid, sizeof(sid)) != 0) {
        probe_fail(r, PROBE_LOCAL, "no randomness for a visit id");
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        struct token_mint_claims c = {
            .key = o->key, .kid = o->kid, .iss = o->iss, .aud = o->aud, .sub = sub[i],
            .role = role[i], .sid = sid,
            .ttl = o->timeout_s + o->seconds + QR_PROBE_TOKEN_SLACK_S};

        if (token_mint(&c, &tok[i], err, sizeof(err)) != 0) {
            probe_fail(r, PROBE_LOCAL, "cannot mint a token: %s", err);
            return -1;
        }
    }
    return 0;
}

/* The local address the kernel routes toward signaling: the relay is
 * usually reached the same way, and libnice gathers on one address only. */
static int probe__local_address(const struct probe_opts *o, char *out, size_t len,
                                struct probe_result *r)
{
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char port[8];
    int fd = -1, ret = -1;

    if (o->local_address != NULL) {
        snprintf(out, len, "%s", o->local_address);
        return 0;
    }
    snprintf(port, sizeof(port), "%d", o->target.port);
    if (getaddrinfo(o->target.host, port, &hints, &ai) != 0) {
        probe_fail(r, PROBE_CONNECT, "cannot resolve the signaling host");
        return -1;
    }
    if ((fd = socket(ai->ai_family, SOCK_DGRAM, 0)) < 0 ||
        connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
        getnameinfo((struct sockaddr *)&ss, sl, out, (socklen_t)len, NULL, 0, NI_NUMERICHOST) != 0) {
        probe_fail(r, PROBE_CONNECT, "no route to the signaling host");
        goto out;
    }
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return ret;
}

static int probe__clients(const struct probe_opts *o, const char *local, struct refclient *rc[2],
                          struct probe_result *r)
{
    char err[192];

    for (int i = 0; i < 2; i++) {
        struct refclient_config cfg = {
            .local_address = local, .controlling = true, .regular_nomination = true,
            .dtls_client = i == 0, .tone_hz = probe_tone_hz[i], .ice_tcp = o->ice_tcp};

        if ((rc[i] = refclient_new(&cfg, err, sizeof(err))) == NULL) {
            probe_fail(r, PROBE_LOCAL, "native client: %s", err);
            return -1;
        }
    }
    return 0;
}

/* The relay candidate signaling put into the SDP, of our address family
 * and transport. */
static void probe__note_relay(const char *sdp, const char *local, bool tcp,
                              struct probe_result *r)
{
    struct sdp_summary *sum = malloc(sizeof(*sum));
    bool v6 = strchr(local, ':') != NULL;
    enum sdp_transport t = tcp ? SDP_TRANSPORT_TCP : SDP_TRANSPORT_UDP;

    r->transport = tcp ? "tcp" : "udp";
    if (sum != NULL && sdp_summarize(sdp, strlen(sdp), sum) == SDP_OK) {
        for (unsigned i = 0; i < sum->n_cands && r->relay[0] == '\0'; i++) {
            if ((strchr(sum->cands[i].addr, ':') != NULL) == v6 && sum->cands[i].transport == t)
                snprintf(r->relay, sizeof(r->relay), v6 ? "[%s]:%u" : "%s:%u",
                         sum->cands[i].addr, (unsigned)sum->cands[i].port);
        }
    }
    if (sum != NULL)
        OPENSSL_cleanse(sum, sizeof(*sum)); /* the relay's ICE password */
    free(sum);
}

/* SDP strings carry relay ICE passwords: wiped before they are freed. */
static void probe__free_sdp(char *sdp)
{
    if (sdp != NULL)
        OPENSSL_cleanse(sdp, strlen(sdp));
    free(sdp);
}

/* Our description, or the peer's applied: a failure names the side. */
static int probe__local_sdp(struct refclient *rc, bool answer, char *buf, struct probe_result *r)
{
    int n = answer ? refclient_create_answer(rc, buf, QR_SDP_MAX)
                   : refclient_create_offer(rc, buf, QR_SDP_MAX);

    if (n < 0)
        probe_fail(r, PROBE_LOCAL, "native client: cannot write an %s", answer ? "answer" : "offer");
    return n < 0 ? -1 : 0;
}

static int probe__apply(struct refclient *rc, const struct probe_party *p, bool answer,
                        const char *sdp, struct probe_result *r)
{
    char err[192];

    if (refclient_set_remote_description(rc, answer, sdp, strlen(sdp), err, sizeof(err)) == 0)
        return 0;
    probe_fail(r, PROBE_NEGOTIATE, "%s: %s", p->role, err);
    return -1;
}

/* The initiator offers, the other answers, both through signaling's rewrite. */
static int probe__negotiate(struct probe_party party[2], struct refclient *rc[2],
                            const char *local, bool tcp, uint64_t deadline_ms,
                            struct probe_result *r)
{
    int off = party[0].initiator ? 0 : 1, ans = 1 - off;
    char *buf = malloc(QR_SDP_MAX), *offer = NULL, *answer = NULL;
    int ret = -1;

    if (buf == NULL) {
        probe_fail(r, PROBE_LOCAL, "out of memory");
        return -1;
    }
    buf[0] = '\0';
    if (probe__local_sdp(rc[off], false, buf, r) != 0 ||
        probe_signal_send_sdp(&party[off], "offer", buf, r) != 0 ||
        probe_signal_recv_sdp(&party[ans], "offer", &offer, deadline_ms, r) != 0)
        goto out;
    probe__note_relay(offer, local, tcp, r);
    if (probe__apply(rc[ans], &party[ans], false, offer, r) != 0 ||
        probe__local_sdp(rc[ans], true, buf, r) != 0 ||
        probe_signal_send_sdp(&party[ans], "answer", buf, r) != 0 ||
        probe_signal_recv_sdp(&party[off], "answer", &answer, deadline_ms, r) != 0 ||
        probe__apply(rc[off], &party[off], true, answer, r) != 0)
        goto out;
    ret = 0;
out:
    probe__free_sdp(answer);
    probe__free_sdp(offer);
    OPENSSL_cleanse(buf, QR_SDP_MAX);
    free(buf);
    return ret;
}

/* ICE, then DTLS, then SRTP keys, on both sides. */
static int probe__connect(const struct probe_party party[2], struct refclient *rc[2],
                          uint64_t deadline_ms, struct probe_result *r)
{
    struct refclient_stats st;
    char err[192];

    for (int i = 0; i < 2; i++) {
        if (refclient_start(rc[i]) != 0) {
            probe_fail(r, PROBE_ICE, "%s: cannot start connectivity checks", party[i].role);
            return -1;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (refclient_wait_ready(rc[i], probe__left_ms(deadline_ms), err, sizeof(err)) == 0)
            continue;
        refclient_get_stats(rc[i], &st);
        probe_fail(r, !st.ice_ready ? PROBE_ICE : !st.dtls_done ? PROBE_DTLS : PROBE_MEDIA,
                   "%s: %s", party[i].role,
                   !st.ice_ready ? "no ICE connectivity to the relay" : err);
        return -1;
    }
    refclient_get_stats(rc[0], &st);
    snprintf(r->srtp_profile, sizeof(r->srtp_profile), "%s", st.srtp_profile);
    return 0;
}

/* Starts the tone both ways; waits for audio at both ends: the setup time. */
static int probe__first_media(const struct probe_party party[2], struct refclient *rc[2],
                              uint64_t t0_us, uint64_t deadline_ms, struct probe_result *r)
{
    struct refclient_stats st[2];

    for (int i = 0; i < 2; i++) {
        if (refclient_start_media(rc[i]) != 0) {
            probe_fail(r, PROBE_MEDIA, "%s: cannot start sending", party[i].role);
            return -1;
        }
    }
    for (;;) {
        refclient_get_stats(rc[0], &st[0]);
        refclient_get_stats(rc[1], &st[1]);
        if (st[0].first_rtp_mono_us != 0 && st[1].first_rtp_mono_us != 0)
            break;
        if (probe__left_ms(deadline_ms) == 0) {
            int i = st[0].first_rtp_mono_us == 0 ? 0 : 1;

            probe_fail(r, PROBE_MEDIA, "no audio from the %s reached the %s", party[1 - i].role,
                       party[i].role);
            return -1;
        }
        probe__sleep_ms(PROBE_POLL_MS);
    }
    r->setup_s = (double)((st[0].first_rtp_mono_us > st[1].first_rtp_mono_us
                               ? st[0].first_rtp_mono_us
                               : st[1].first_rtp_mono_us) -
                          t0_us) / 1e6;
    return 0;
}

static bool probe__tone_ok(double got, double want)
{
    return got > want - QR_PROBE_TONE_TOLERANCE_HZ && got < want + QR_PROBE_TONE_TOLERANCE_HZ;
}

/* --seconds of audio both ways, then the figures. */
static int probe__media(struct refclient *rc[2], uint32_t seconds, struct probe_result *r)
{
    struct refclient_stats st;
    uint64_t lost = 0, got = 0;
    double rtt_sum = 0;
    int rtt_n = 0;

    probe__sleep_ms((int)seconds * 1000);
    for (int i = 0; i < 2; i++) {
        refclient_stop_media(rc[i]);
        refclient_get_stats(rc[i], &st);
        r->side[i] = (struct probe_side){.rtp_sent = st.rtp_sent, .rtp_received = st.rtp_received,
                                         .rtp_lost = st.rtp_lost, .tone_hz = st.detected_tone_hz,
                                         .rtt_s = st.rtt_samples ? st.rtt_avg_s : 0};
        lost += st.rtp_lost;
        got += st.rtp_received;
        if (st.rtt_samples > 0) {
            rtt_sum += st.rtt_avg_s;
            rtt_n++;
        }
    }
    r->media_ran = true;
    r->loss = got + lost > 0 ? (double)lost / (double)(got + lost) : 1.0;
    r->rtt_s = rtt_n > 0 ? rtt_sum / rtt_n : 0;
    r->tone = probe__tone_ok(r->side[0].tone_hz, probe_tone_hz[1]) &&
              probe__tone_ok(r->side[1].tone_hz, probe_tone_hz[0]);
    if (!r->tone) {
        probe_fail(r, PROBE_TONE, "the far end's tone was not decoded (clinician heard %.0f Hz, "
                                  "patient %.0f Hz)", r->side[0].tone_hz, r->side[1].tone_hz);
        return -1;
    }
    return 0;
}

/* Tokens and signaling up to an agreed SDP pair; the clients are made here. */
static int probe__setup(const struct probe_opts *o, struct probe_party party[2],
                        struct refclient *rc[2], uint64_t *joined_us, uint64_t deadline_ms,
                        struct probe_result *r)
{
    char *tok[2] = {NULL, NULL}, local[NI_MAXHOST];
    int ret = -1;

    if (probe__tokens(o, tok, r) != 0 || probe__local_address(o, local, sizeof(local), r) != 0)
        goto out;
    *joined_us = clock_mono_us(); /* what an EHR does before this is not the call's setup */
    for (int i = 0; i < 2; i++) {
        if (probe_signal_join(o, &party[i], tok[i], deadline_ms, r) != 0)
            goto out;
    }
    if (probe_signal_admit(&party[0], &party[1], deadline_ms, r) != 0 ||
        probe__clients(o, local, rc, r) != 0 ||
        probe__negotiate(party, rc, local, o->ice_tcp, deadline_ms, r) != 0)
        goto out;
    ret = 0;
out:
    token_mint_free(tok[1]);
    token_mint_free(tok[0]);
    return ret;
}

int probe_run(const struct probe_opts *o, struct probe_result *r)
{
    struct probe_party party[2] = {{.role = "clinician"}, {.role = "patient"}};
    struct refclient *rc[2] = {NULL, NULL};
    uint64_t joined_us = 0, deadline_ms = clock_mono_ms() + (uint64_t)o->timeout_s * 1000;

    memset(r, 0, sizeof(*r));
    if (probe__setup(o, party, rc, &joined_us, deadline_ms, r) == 0 &&
        probe__connect(party, rc, deadline_ms, r) == 0 &&
        probe__first_media(party, rc, joined_us, deadline_ms, r) == 0)
        probe__media(rc, o->seconds, r);
    probe_signal_leave(&party[0]);
    probe_signal_leave(&party[1]);
    refclient_free(rc[0]);
    refclient_free(rc[1]);
    r->finished_unix = clock_wall_ms() / 1000;
    return r->failed == PROBE_OK ? 0 : -1;
}
