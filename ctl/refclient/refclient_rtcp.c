/* RTCP over SRTCP, as browsers send it on the muxed port: every half second a
 * compound packet of a sender report (with one report block on the peer's
 * stream once it has sent) and an SDES CNAME (RFC 3550 §6.1). The peer's
 * report block echoes our last sender report (LSR) and how long it held it
 * (DLSR), which gives the round trip through the relay both ways without
 * the two ends sharing a clock (§6.4.1). NTP times here are taken from the
 * monotonic clock: they only ever come back to us, and a wall-clock step
 * mid-call must not make a round trip negative. */
#include "refclient_internal.h"

#include <string.h>

#define RTCP_INTERVAL_MS 500
#define RTCP_SR 200
#define RTCP_RR 201
#define RTCP_SDES 202
#define RTCP_SDES_CNAME 1
#define RTCP_HEADER 4
#define RTCP_SR_LEN 28     /* header, SSRC, NTP (8), RTP time, packets, octets */
#define RTCP_RR_LEN 8      /* header, SSRC */
#define RTCP_BLOCK_LEN 24
#define RTCP_MAX_DROPOUT 3000 /* RFC 3550 A.1: a jump further than this is not counted */
#define RTCP_MAX_MISORDER 100
#define RTCP_SEQ_MOD 65536u
/* A "round trip" longer than this is a peer's garbage, not a measurement. */
#define RTCP_RTT_MAX_S 60.0
/* Room SRTCP adds: E flag and index (4), then the tag and MKI. */
#define RTCP_SRTCP_TRAILER (4 + SRTP_MAX_TRAILER_LEN)

static void rtcp__put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t rtcp__get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void rtcp__header(unsigned char *p, unsigned count, unsigned pt, size_t len)
{
    p[0] = (unsigned char)(0x80 | count); /* V=2, no padding */
    p[1] = (unsigned char)pt;
    p[2] = (unsigned char)((len / 4 - 1) >> 8);
    p[3] = (unsigned char)(len / 4 - 1);
}

/* 64-bit NTP format of a monotonic time in µs. */
static void rtcp__ntp(uint64_t us, uint32_t *sec, uint32_t *frac)
{
    *sec = (uint32_t)(us / 1000000u);
    *frac = (uint32_t)(((us % 1000000u) << 32) / 1000000u);
}

/* The middle 32 bits, as LSR carries them: 16.16 fixed-point seconds. */
static uint32_t rtcp__ntp_mid(uint64_t us)
{
    uint32_t sec, frac;

    rtcp__ntp(us, &sec, &frac);
    return sec << 16 | frac >> 16;
}

/* One report block on the peer's stream (RFC 3550 §6.4.1, A.3). */
static void rtcp__block(struct refclient *rc, unsigned char *b, uint64_t now_us)
{
    struct refclient__rtcp *r = &rc->rtcp;
    uint64_t ext_max = (uint64_t)r->cycles + r->max_seq;
    uint64_t expected = ext_max - r->base_seq + 1;
    int64_t lost = (int64_t)expected - (int64_t)r->received;
    uint64_t exp_int = expected - r->expected_prior;
    int64_t lost_int = (int64_t)exp_int - (int64_t)(r->received - r->received_prior);
    uint32_t fraction = 0, dlsr = 0;

    r->expected_prior = expected;
    r->received_prior = r->received;
    if (exp_int > 0 && lost_int > 0)
        fraction = (uint32_t)(((uint64_t)lost_int << 8) / exp_int);
    if (fraction > 255)
        fraction = 255;
    /* cumulative lost is a signed 24-bit field */
    if (lost > 0x7fffff)
        lost = 0x7fffff;
    if (lost < -0x800000)
        lost = -0x800000;
    if (r->lsr != 0)
        dlsr = (uint32_t)(((uint64_t)(now_us - (uint64_t)r->lsr_arrival_us) << 16) / 1000000u);
    rtcp__put32(b, r->peer_ssrc);
    rtcp__put32(b + 4, fraction << 24 | ((uint32_t)lost & 0xffffffu));
    rtcp__put32(b + 8, (uint32_t)ext_max);
    rtcp__put32(b + 12, 0); /* interarrival jitter: not measured */
    rtcp__put32(b + 16, r->lsr);
    rtcp__put32(b + 20, dlsr);
}

/* SDES with our CNAME, padded to a 32-bit boundary with the END item. */
static size_t rtcp__sdes(struct refclient *rc, unsigned char *p)
{
    size_t name = strlen(rc->cname), len = RTCP_HEADER + 4 + 2 + name + 1;

    len = (len + 3) & ~(size_t)3;
    memset(p, 0, len);
    rtcp__header(p, 1, RTCP_SDES, len);
    rtcp__put32(p + 4, rc->media.ssrc);
    p[8] = RTCP_SDES_CNAME;
    p[9] = (unsigned char)name;
    memcpy(p + 10, rc->cname, name);
    return len;
}

static void rtcp__send_report(struct refclient *rc)
{
    struct refclient__rtcp *r = &rc->rtcp;
    unsigned char pkt[RTCP_SR_LEN + RTCP_BLOCK_LEN + 64 + RTCP_SRTCP_TRAILER];
    uint64_t now_us = (uint64_t)g_get_monotonic_time();
    size_t len = RTCP_SR_LEN + (r->have_peer ? RTCP_BLOCK_LEN : 0);
    uint32_t sec, frac;
    int n;

    if (rc->srtp.out == NULL)
        return;
    rtcp__header(pkt, r->have_peer ? 1 : 0, RTCP_SR, len);
    rtcp__put32(pkt + 4, rc->media.ssrc);
    rtcp__ntp(now_us, &sec, &frac);
    rtcp__put32(pkt + 8, sec);
    rtcp__put32(pkt + 12, frac);
    rtcp__put32(pkt + 16, rc->media.ts);
    rtcp__put32(pkt + 20, (uint32_t)r->packets_sent);
    rtcp__put32(pkt + 24, (uint32_t)r->octets_sent);
    if (r->have_peer)
        rtcp__block(rc, pkt + RTCP_SR_LEN, now_us);
    len += rtcp__sdes(rc, pkt + len);
    n = (int)len;
    if (srtp_protect_rtcp(rc->srtp.out, pkt, &n) != srtp_err_status_ok)
        return;
    if (refclient__ice_send(rc, pkt, (size_t)n) == 0)
        refclient__count(rc, &rc->stats.rtcp_sent, 1);
}

static gboolean rtcp__on_timer(gpointer data)
{
    rtcp__send_report(data);
    return G_SOURCE_CONTINUE;
}

void refclient__rtcp_start(struct refclient *rc)
{
    struct refclient__rtcp *r = &rc->rtcp;

    if (r->timer != NULL)
        return;
    r->timer = g_timeout_source_new(RTCP_INTERVAL_MS);
    g_source_set_callback(r->timer, rtcp__on_timer, rc, NULL);
    g_source_attach(r->timer, rc->ctx);
}

void refclient__rtcp_stop(struct refclient *rc)
{
    struct refclient__rtcp *r = &rc->rtcp;

    if (r->timer == NULL)
        return;
    g_source_destroy(r->timer);
    g_source_unref(r->timer);
    r->timer = NULL;
}

void refclient__rtcp_on_sent(struct refclient *rc, size_t payload_len)
{
    rc->rtcp.packets_sent++;
    rc->rtcp.octets_sent += payload_len;
}

/* RFC 3550 A.1 without the probation: the stream is authenticated SRTP from
 * the one peer the DTLS handshake verified. Other SSRCs are not tracked. */
void refclient__rtcp_on_rtp(struct refclient *rc, uint32_t ssrc, uint16_t seq)
{
    struct refclient__rtcp *r = &rc->rtcp;
    uint16_t delta;
    uint64_t expected;

    if (!r->have_peer) {
        r->have_peer = true;
        r->peer_ssrc = ssrc;
        r->base_seq = seq;
        r->max_seq = seq;
        r->received = 1;
        return;
    }
    if (ssrc != r->peer_ssrc)
        return;
    delta = (uint16_t)(seq - r->max_seq);
    if (delta < RTCP_MAX_DROPOUT) {
        if (seq < r->max_seq)
            r->cycles += RTCP_SEQ_MOD;
        r->max_seq = seq;
    } else if (delta <= RTCP_SEQ_MOD - RTCP_MAX_MISORDER) {
        return; /* a jump: neither counted nor followed */
    }
    r->received++;
    expected = (uint64_t)r->cycles + r->max_seq - r->base_seq + 1;
    refclient__lock(rc);
    rc->stats.rtp_lost = expected > r->received ? expected - r->received : 0;
    pthread_mutex_unlock(&rc->lock);
}

static void rtcp__rtt_sample(struct refclient *rc, uint32_t lsr, uint32_t dlsr)
{
    struct refclient__rtcp *r = &rc->rtcp;
    uint32_t now = rtcp__ntp_mid((uint64_t)g_get_monotonic_time());
    int32_t units = (int32_t)(now - lsr - dlsr);
    double s;

    /* Rounding DLSR to 1/65536 s can take a loopback round trip below zero. */
    s = units > 0 ? (double)units / 65536.0 : 0.0;
    if (s > RTCP_RTT_MAX_S)
        return;
    r->rtt_sum_s += s;
    refclient__lock(rc);
    if (rc->stats.rtt_samples == 0 || s < rc->stats.rtt_min_s)
        rc->stats.rtt_min_s = s;
    if (s > rc->stats.rtt_max_s)
        rc->stats.rtt_max_s = s;
    rc->stats.rtt_last_s = s;
    rc->stats.rtt_samples++;
    rc->stats.rtt_avg_s = r->rtt_sum_s / (double)rc->stats.rtt_samples;
    refclient__unlock_notify(rc);
}

/* Report blocks about our own stream carry the echo of our sender report. */
static void rtcp__blocks(struct refclient *rc, const unsigned char *p, size_t len, unsigned count)
{
    for (unsigned i = 0; i < count && (size_t)(i + 1) * RTCP_BLOCK_LEN <= len; i++) {
        const unsigned char *b = p + (size_t)i * RTCP_BLOCK_LEN;
        uint32_t lsr = rtcp__get32(b + 16);

        if (rtcp__get32(b) == rc->media.ssrc && lsr != 0)
            rtcp__rtt_sample(rc, lsr, rtcp__get32(b + 20));
    }
}

static void rtcp__packet(struct refclient *rc, const unsigned char *p, size_t len)
{
    struct refclient__rtcp *r = &rc->rtcp;
    unsigned count = p[0] & 0x1fu;

    if (p[1] == RTCP_SR && len >= RTCP_SR_LEN) {
        if (rtcp__get32(p + 4) == rc->media.ssrc)
            return; /* our own report reflected back: not the peer's */
        r->lsr = rtcp__get32(p + 8) << 16 | rtcp__get32(p + 12) >> 16;
        r->lsr_arrival_us = g_get_monotonic_time();
        rtcp__blocks(rc, p + RTCP_SR_LEN, len - RTCP_SR_LEN, count);
    } else if (p[1] == RTCP_RR && len >= RTCP_RR_LEN) {
        rtcp__blocks(rc, p + RTCP_RR_LEN, len - RTCP_RR_LEN, count);
    }
}

void refclient__rtcp_receive(struct refclient *rc, const unsigned char *buf, size_t len)
{
    unsigned char pkt[REFCLIENT__DGRAM_MAX];
    int n = (int)len;
    size_t off = 0;

    if (len > sizeof(pkt))
        return;
    memcpy(pkt, buf, len);
    if (srtp_unprotect_rtcp(rc->srtp.in, pkt, &n) != srtp_err_status_ok) {
        refclient__count(rc, &rc->stats.srtp_unprotect_failures, 1);
        return;
    }
    refclient__count(rc, &rc->stats.rtcp_received, 1);
    /* A compound packet: each part says its own length in 32-bit words. */
    while (off + RTCP_HEADER <= (size_t)n) {
        const unsigned char *p = pkt + off;
        size_t plen = ((size_t)(p[2] << 8 | p[3]) + 1) * 4;

        if ((p[0] >> 6) != 2 || plen > (size_t)n - off)
            break;
        rtcp__packet(rc, p, plen);
        off += plen;
    }
}
