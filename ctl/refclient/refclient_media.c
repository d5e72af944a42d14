/* Opus over SRTP. The sender encodes 20 ms of our sine every 20 ms (PT 111,
 * 48 kHz mono, RFC 7587); the receiver unprotects, decodes, keeps the last
 * 0.5 s of audio and names its dominant frequency every 0.5 s, so a test can
 * tell that what arrived is the far end's tone and nobody else's. RTCP that
 * arrives on the same port (rtcp-mux) goes to refclient_rtcp.c. */
#include "refclient_internal.h"

#include <openssl/rand.h>
#include <string.h>

#define MEDIA_PT REFCLIENT__OPUS_PT
#define MEDIA_INTERVAL_US 20000
#define MEDIA_MAX_LAG_US 200000
#define MEDIA_BITRATE 32000
#define MEDIA_AMPLITUDE 0.5f
#define MEDIA_RTP_HEADER 12
#define MEDIA_MAX_PAYLOAD 1000
#define MEDIA_DETECT_EVERY 25 /* frames: 0.5 s */

int refclient__media_init(struct refclient__media *m, double tone_hz, char *err, size_t errlen)
{
    int e;

    m->enc = opus_encoder_create(REFCLIENT__SAMPLE_RATE, 1, OPUS_APPLICATION_AUDIO, &e);
    if (m->enc == NULL || e != OPUS_OK ||
        opus_encoder_ctl(m->enc, OPUS_SET_BITRATE(MEDIA_BITRATE)) != OPUS_OK) {
        refclient__errf(err, errlen, "cannot create the Opus encoder");
        return -1;
    }
    m->dec = opus_decoder_create(REFCLIENT__SAMPLE_RATE, 1, &e);
    if (m->dec == NULL || e != OPUS_OK) {
        refclient__errf(err, errlen, "cannot create the Opus decoder");
        return -1;
    }
    if (RAND_bytes((unsigned char *)&m->ssrc, sizeof(m->ssrc)) != 1 ||
        RAND_bytes((unsigned char *)&m->seq, sizeof(m->seq)) != 1 ||
        RAND_bytes((unsigned char *)&m->ts, sizeof(m->ts)) != 1) {
        refclient__errf(err, errlen, "RAND_bytes failed");
        return -1;
    }
    refclient__tone_set(&m->tone, tone_hz, REFCLIENT__SAMPLE_RATE);
    return 0;
}

void refclient__media_free(struct refclient__media *m)
{
    if (m->timer != NULL) {
        g_source_destroy(m->timer);
        g_source_unref(m->timer);
        m->timer = NULL;
    }
    opus_encoder_destroy(m->enc);
    opus_decoder_destroy(m->dec);
    m->enc = NULL;
    m->dec = NULL;
}

static void media__put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void media__rtp_header(struct refclient__media *m, unsigned char *p)
{
    p[0] = 0x80; /* V=2, no padding, no extension, no CSRC */
    p[1] = MEDIA_PT;
    p[2] = (unsigned char)(m->seq >> 8);
    p[3] = (unsigned char)m->seq;
    media__put32(p + 4, m->ts);
    media__put32(p + 8, m->ssrc);
}

/* One 20 ms frame: encode, protect, send. */
static void media__send_frame(struct refclient *rc)
{
    struct refclient__media *m = &rc->media;
    unsigned char pkt[MEDIA_RTP_HEADER + MEDIA_MAX_PAYLOAD + SRTP_MAX_TRAILER_LEN];
    opus_int32 n;
    int len;

    refclient__tone_fill(&m->tone, m->pcm_out, REFCLIENT__FRAME, MEDIA_AMPLITUDE);
    n = opus_encode_float(m->enc, m->pcm_out, REFCLIENT__FRAME, pkt + MEDIA_RTP_HEADER,
                          MEDIA_MAX_PAYLOAD);
    if (n < 0)
        return;
    media__rtp_header(m, pkt);
    m->seq++;
    m->ts += REFCLIENT__FRAME;
    len = MEDIA_RTP_HEADER + (int)n;
    if (srtp_protect(rc->srtp.out, pkt, &len) != srtp_err_status_ok)
        return;
    if (refclient__ice_send(rc, pkt, (size_t)len) == 0) {
        refclient__count(rc, &rc->stats.rtp_sent, 1);
        refclient__rtcp_on_sent(rc, (size_t)n);
    }
}

/* The sender runs on absolute deadlines (start + n * 20 ms) rather than a
 * 20 ms GLib timeout, which re-arms from the dispatch time and so drifts to
 * about 48 packets/s; the relay's bitrate and jitter figures should see a
 * true 50. After a stall longer than MEDIA_MAX_LAG_US it resynchronises
 * instead of sending a burst. */
struct media__source {
    GSource base;
    struct refclient *rc;
};

static gboolean media__dispatch(GSource *src, GSourceFunc cb, gpointer data)
{
    struct refclient *rc = ((struct media__source *)src)->rc;
    struct refclient__media *m = &rc->media;
    gint64 now = g_get_monotonic_time();

    (void)cb;
    (void)data;
    media__send_frame(rc);
    m->next_us += MEDIA_INTERVAL_US;
    if (now - m->next_us > MEDIA_MAX_LAG_US)
        m->next_us = now + MEDIA_INTERVAL_US;
    g_source_set_ready_time(src, m->next_us);
    return G_SOURCE_CONTINUE;
}

/* Read-only (so not a mutable global): g_source_new() merely takes a
 * non-const pointer, and GLib never writes through it. */
static const GSourceFuncs media__source_funcs = {.dispatch = media__dispatch};

int refclient__media_start(struct refclient *rc)
{
    struct refclient__media *m = &rc->media;

    if (rc->srtp.out == NULL)
        return -1;
    if (m->timer != NULL)
        return 0;
    m->timer = g_source_new((GSourceFuncs *)&media__source_funcs, sizeof(struct media__source));
    ((struct media__source *)m->timer)->rc = rc;
    m->next_us = g_get_monotonic_time();
    g_source_set_ready_time(m->timer, m->next_us);
    g_source_attach(m->timer, rc->ctx);
    refclient__rtcp_start(rc);
    return 0;
}

void refclient__media_stop(struct refclient *rc)
{
    struct refclient__media *m = &rc->media;

    refclient__rtcp_stop(rc);
    if (m->timer == NULL)
        return;
    g_source_destroy(m->timer);
    g_source_unref(m->timer);
    m->timer = NULL;
}

/* Finds the payload of an RTP packet (RFC 3550 §5.1); -1 if malformed. */
static int media__payload(const unsigned char *p, size_t len, size_t *off, size_t *plen)
{
    size_t hdr = MEDIA_RTP_HEADER + 4u * (p[0] & 0x0Fu);
    size_t pad = 0;

    if (len < MEDIA_RTP_HEADER || (p[0] >> 6) != 2 || len < hdr)
        return -1;
    if (p[0] & 0x10) {
        if (len < hdr + 4)
            return -1;
        hdr += 4 + 4u * (((size_t)p[hdr + 2] << 8) | p[hdr + 3]);
    }
    if (p[0] & 0x20)
        pad = p[len - 1];
    if (len < hdr + pad)
        return -1;
    *off = hdr;
    *plen = len - hdr - pad;
    return 0;
}

static void media__remember(struct refclient__media *m, const float *pcm, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        m->ring[m->ring_pos] = pcm[i];
        m->ring_pos = (m->ring_pos + 1) % REFCLIENT__WINDOW;
    }
    m->ring_fill = m->ring_fill + n > REFCLIENT__WINDOW ? REFCLIENT__WINDOW : m->ring_fill + n;
}

/* Runs the detector on the full window, oldest sample first. */
static double media__detect(struct refclient__media *m)
{
    size_t tail = REFCLIENT__WINDOW - m->ring_pos;

    memcpy(m->scratch, m->ring + m->ring_pos, tail * sizeof(float));
    memcpy(m->scratch + tail, m->ring, m->ring_pos * sizeof(float));
    return refclient__tone_detect(m->scratch, REFCLIENT__WINDOW, REFCLIENT__SAMPLE_RATE);
}

static void media__decode(struct refclient *rc, const unsigned char *payload, size_t len)
{
    struct refclient__media *m = &rc->media;
    int n = opus_decode_float(m->dec, payload, (opus_int32)len, m->pcm_in, REFCLIENT__MAX_FRAME, 0);
    double hz;

    if (n <= 0)
        return;
    media__remember(m, m->pcm_in, (size_t)n);
    refclient__count(rc, &rc->stats.frames_decoded, 1);
    if (++m->frames_since_detect < MEDIA_DETECT_EVERY || m->ring_fill < REFCLIENT__WINDOW)
        return;
    m->frames_since_detect = 0;
    hz = media__detect(m);
    refclient__lock(rc);
    rc->stats.detected_tone_hz = hz;
    refclient__unlock_notify(rc);
}

void refclient__media_receive(struct refclient *rc, const unsigned char *buf, size_t len)
{
    unsigned char pkt[REFCLIENT__DGRAM_MAX];
    int n = (int)len;
    size_t off, plen;

    /* SRTP arriving before our handshake finished (the DTLS server is keyed
     * one flight earlier than the client) cannot be read; it is dropped. */
    if (len < 2 || rc->srtp.in == NULL || len > sizeof(pkt))
        return;
    /* RFC 5761 §4: under rtcp-mux, payload types 64-95 (RTCP 192-223). */
    if ((buf[1] & 0x7F) >= 64 && (buf[1] & 0x7F) <= 95) {
        refclient__rtcp_receive(rc, buf, len);
        return;
    }
    memcpy(pkt, buf, len);
    if (srtp_unprotect(rc->srtp.in, pkt, &n) != srtp_err_status_ok) {
        refclient__count(rc, &rc->stats.srtp_unprotect_failures, 1);
        return;
    }
    if (media__payload(pkt, (size_t)n, &off, &plen) != 0)
        return;
    refclient__lock(rc);
    if (rc->stats.rtp_received++ == 0)
        rc->stats.first_rtp_mono_us = (uint64_t)g_get_monotonic_time();
    pthread_mutex_unlock(&rc->lock);
    refclient__rtcp_on_rtp(rc, (uint32_t)pkt[8] << 24 | (uint32_t)pkt[9] << 16 |
                                   (uint32_t)pkt[10] << 8 | pkt[11],
                           (uint16_t)(pkt[2] << 8 | pkt[3]));
    if ((pkt[1] & 0x7F) == MEDIA_PT)
        media__decode(rc, pkt + off, plen);
}
