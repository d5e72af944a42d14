/* Internals of the reference client, shared by its files:
 *   refclient.c        lifecycle, loop thread, public entry points, readiness
 *   refclient_ice.c    libnice agent (UDP or ICE-TCP), candidates, first-byte demultiplexing
 *   refclient_dtls.c   certificate, DTLS handshake over a datagram BIO, fingerprint
 *   refclient_srtp.c   RFC 5764 key export into libsrtp2 sessions
 *   refclient_media.c  Opus over RTP: the 20 ms sender and the receiver
 *   refclient_rtcp.c   RTCP sender and receiver reports: loss and round-trip time
 *   refclient_sdp.c    browser-like offers and answers, applying the peer's
 *   refclient_tone.c   sine generator and dominant-frequency detector (no I/O)
 *
 * Threading: everything touching libnice, OpenSSL's SSL object, libsrtp2 and
 * Opus runs on the client's own loop thread. Public functions hop onto it with
 * refclient__call(). Fields under "guarded by lock" are the only ones another
 * thread reads while the loop runs. */
#ifndef QR_REFCLIENT_INTERNAL_H
#define QR_REFCLIENT_INTERNAL_H

#include "refclient.h"
#include "refclient_tone.h"

#include <glib.h>
#include <nice/agent.h>
#include <openssl/ssl.h>
#include <opus/opus.h>
#include <pthread.h>
#include <srtp2/srtp.h>

#define REFCLIENT__DGRAM_MAX 1500   /* nothing larger crosses the relay */
#define REFCLIENT__DTLS_QUEUE 16    /* received DTLS datagrams not yet read by OpenSSL */
#define REFCLIENT__DTLS_MTU 1200    /* link MTU for handshake fragmentation */
#define REFCLIENT__MAX_CANDS 8      /* local and remote host candidates kept */
#define REFCLIENT__FP_LEN 112       /* "sha-256 " + 32 * "XX:" */
#define REFCLIENT__SAMPLE_RATE 48000
#define REFCLIENT__FRAME 960        /* 20 ms at 48 kHz */
#define REFCLIENT__MAX_FRAME 5760   /* 120 ms, the longest Opus frame */
#define REFCLIENT__WINDOW 24000     /* 0.5 s of decoded audio analysed */
#define REFCLIENT__CNAME_LEN 17     /* RTCP CNAME: 16 random base64 characters */
#define REFCLIENT__OPUS_PT 111      /* the payload type our SDP gives Opus, as Chromium does */

struct refclient__dgram {
    size_t len;
    unsigned char data[REFCLIENT__DGRAM_MAX];
};

struct refclient__cand {
    char addr[64];
    uint16_t port;
};

struct refclient__ice {
    NiceAgent *agent; /* owned */
    guint stream_id;
    bool have_remote; /* remote credentials set */
    bool started;
    bool restarting;  /* new local credentials; the peer's new ones not yet applied */
    unsigned restarts; /* ICE restarts so far: the o= line's version follows it */
    int n_remote;     /* remote candidates handed to libnice so far */
    struct refclient__cand pending[REFCLIENT__MAX_CANDS]; /* added before start */
    int n_pending;
};

struct refclient__dtls {
    SSL_CTX *ctx; /* owned; holds cert and key */
    SSL *ssl;     /* owned; owns the BIO */
    BIO_METHOD *method; /* owned; the BIO's, freed after ssl */
    char fingerprint[REFCLIENT__FP_LEN]; /* ours, immutable after refclient_new */
    char expected[REFCLIENT__FP_LEN];    /* the peer's, from refclient_set_remote */
    bool is_client;
    bool started;  /* ICE is ready: OpenSSL may read and write */
    bool done;
    bool failed;
    bool verified; /* the verify callback matched the peer certificate */
    bool mismatch; /* the verify callback rejected the peer certificate */
    struct refclient__dgram queue[REFCLIENT__DTLS_QUEUE];
    unsigned q_head, q_count;
    GSource *timer; /* owned ref; retransmission timer while one is pending */
};

struct refclient__srtp {
    srtp_t out; /* owned; our key, ssrc_any_outbound */
    srtp_t in;  /* owned; peer's key, ssrc_any_inbound */
};

/* What the receiver knows of the peer's RTP stream (RFC 3550 A.1, A.3) and
 * of its last sender report. Loop thread only. */
struct refclient__rtcp {
    GSource *timer;          /* owned ref; the report interval while media runs */
    bool have_peer;          /* an RTP packet from the peer was read */
    uint32_t peer_ssrc;
    uint16_t max_seq;
    uint32_t cycles;         /* sequence wraps, shifted left 16 */
    uint32_t base_seq;
    uint64_t received;
    uint64_t expected_prior, received_prior;
    uint32_t lsr;            /* middle 32 bits of the peer's last SR NTP time; 0 if none */
    gint64 lsr_arrival_us;   /* monotonic time that SR arrived */
    double rtt_sum_s;
    uint64_t packets_sent;   /* RTP packets and their payload octets, for our sender reports */
    uint64_t octets_sent;
};

struct refclient__media {
    OpusEncoder *enc; /* owned */
    OpusDecoder *dec; /* owned */
    struct refclient_tone tone;
    GSource *timer; /* owned ref; the 20 ms sender while media runs */
    gint64 next_us; /* monotonic time the next frame is due */
    uint32_t ssrc;
    uint16_t seq;
    uint32_t ts;
    float pcm_out[REFCLIENT__FRAME];
    float pcm_in[REFCLIENT__MAX_FRAME];
    float ring[REFCLIENT__WINDOW]; /* last decoded samples, circular */
    size_t ring_pos, ring_fill;
    unsigned frames_since_detect;
    float scratch[REFCLIENT__WINDOW]; /* ring unrolled for the detector */
};

struct refclient {
    GMainContext *ctx; /* owned */
    GMainLoop *loop;   /* owned */
    pthread_t thread;
    bool thread_started;
    bool sync_ready; /* lock and cond initialised */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC; broadcast on every state change */

    /* guarded by lock */
    struct refclient_stats stats;
    bool srtp_keyed;
    bool gathered;
    bool failed;
    char failure[192];

    /* immutable once refclient_new returned */
    char cname[REFCLIENT__CNAME_LEN];
    uint64_t sdp_session_id;
    bool controlling;
    bool regular_nomination;
    bool ice_tcp;     /* TCP candidates only (RFC 6544); local ones are the passive */
    /* ... except these two, which refclient_restart_ice rewrites (on the loop
     * thread, while its caller waits): a caller must not read them during
     * its own restart. */
    char local_ufrag[257];
    char local_pwd[257];
    struct refclient__cand local[REFCLIENT__MAX_CANDS];
    int n_local;

    /* loop thread only (after refclient_new) */
    struct refclient__ice ice;
    struct refclient__dtls dtls;
    struct refclient__srtp srtp;
    struct refclient__media media;
    struct refclient__rtcp rtcp;
    /* JSEP state: an offer of ours awaits an answer, or a remote offer awaits ours. */
    bool sdp_local_offer;
    bool sdp_remote_offer;
    char sdp_answer_setup[8]; /* what our answer says: "active" or "passive" */
};

/* refclient.c */
typedef int (*refclient__fn)(struct refclient *rc, void *arg);
/* Runs fn(rc, arg) on the loop thread and waits for its result. */
int refclient__call(struct refclient *rc, refclient__fn fn, void *arg);
/* Records the first failure reason and wakes waiters. */
void refclient__fail(struct refclient *rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds n to a counter in stats under the lock. */
void refclient__count(struct refclient *rc, uint64_t *counter, uint64_t n);
void refclient__lock(struct refclient *rc);
/* Unlocks and wakes every waiter: call after changing guarded state. */
void refclient__unlock_notify(struct refclient *rc);
void refclient__errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* refclient_ice.c (loop thread) */
int refclient__ice_init(struct refclient *rc, const struct refclient_config *cfg, char *err, size_t errlen);
void refclient__ice_free(struct refclient *rc);
int refclient__ice_snapshot_local(struct refclient *rc);
int refclient__ice_set_remote(struct refclient *rc, const char *ufrag, const char *pwd);
int refclient__ice_add_remote(struct refclient *rc, const char *addr, uint16_t port);
int refclient__ice_start(struct refclient *rc);
/* ICE restart (RFC 8445 §9): new local credentials, the peer's forgotten
 * until its new description is applied; ice_ready clears until a pair is
 * selected again. Only after refclient__ice_start; 0 or -1. */
int refclient__ice_restart(struct refclient *rc);
/* ICE role, before checks start. */
void refclient__ice_set_controlling(struct refclient *rc, bool controlling);
/* Sends one datagram on the selected pair; 0 or -1. */
int refclient__ice_send(struct refclient *rc, const void *buf, size_t len);
/* RFC 8445 §5.1.2.1 priority of a host candidate, with RFC 6544's local
 * preference for a passive TCP one; index keeps several distinct. */
uint32_t refclient__ice_host_priority(bool tcp_passive, int index);

/* refclient_dtls.c */
int refclient__dtls_init(struct refclient *rc, bool is_client, const char *profiles, char *err, size_t errlen);
void refclient__dtls_free(struct refclient__dtls *d);
int refclient__dtls_set_expected(struct refclient *rc, const char *fingerprint);
void refclient__dtls_start(struct refclient *rc);
void refclient__dtls_receive(struct refclient *rc, const unsigned char *buf, size_t len);
void refclient__dtls_stop(struct refclient *rc);
/* DTLS role, until the handshake starts; 0 or -1. */
int refclient__dtls_set_role(struct refclient *rc, bool is_client);

/* refclient_srtp.c */
void refclient__srtp_global_init(void);
/* Exports the keys from a finished handshake and creates both sessions;
 * writes the profile name. 0 or -1 (reason in err). */
int refclient__srtp_start(struct refclient__srtp *s, SSL *ssl, bool is_client, char *profile,
                          size_t profile_len, char *err, size_t errlen);
void refclient__srtp_free(struct refclient__srtp *s);

/* refclient_media.c */
int refclient__media_init(struct refclient__media *m, double tone_hz, char *err, size_t errlen);
void refclient__media_free(struct refclient__media *m);
int refclient__media_start(struct refclient *rc);
void refclient__media_stop(struct refclient *rc);
void refclient__media_receive(struct refclient *rc, const unsigned char *buf, size_t len);

/* refclient_rtcp.c (loop thread) */
void refclient__rtcp_start(struct refclient *rc);
void refclient__rtcp_stop(struct refclient *rc);
/* A peer's RTP packet was read: ssrc and sequence number. */
void refclient__rtcp_on_rtp(struct refclient *rc, uint32_t ssrc, uint16_t seq);
/* We sent an RTP packet with this many payload octets. */
void refclient__rtcp_on_sent(struct refclient *rc, size_t payload_len);
/* An SRTCP compound packet arrived. */
void refclient__rtcp_receive(struct refclient *rc, const unsigned char *buf, size_t len);

#endif
