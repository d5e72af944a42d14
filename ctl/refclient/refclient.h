/* Reference native client: a WebRTC-style peer built from libraries that are
 * not our own code — libnice (full ICE agent), OpenSSL (DTLS-SRTP with RFC
 * 5764 key export), libsrtp2 and Opus. One stream, one component (BUNDLE +
 * rtcp-mux). quietroomctl probe places real calls with it; tests and the load
 * tester use it as the peer of the relay. Each client runs its own GLib main
 * loop thread; every function below may be called from any other thread,
 * never from inside that loop. Keys, key material, SDP and payload are never
 * logged. */
#ifndef QR_REFCLIENT_H
#define QR_REFCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct refclient; /* opaque */
union netaddr;

struct refclient_config {
    const char *local_address; /* the only address libnice may use, e.g. "127.0.0.1" or "::1" */
    bool controlling;          /* true against the relay */
    bool regular_nomination;   /* false = aggressive nomination (USE-CANDIDATE on every check) */
    bool dtls_client;          /* true = DTLS client (setup:active), false = server (passive);
                                  a remote description decides instead when one is applied */
    double tone_hz;            /* frequency of the tone this client sends, e.g. 440.0 */
    const char *local_ufrag;   /* optional fixed ICE credentials; NULL = libnice's own */
    const char *local_pwd;
    const char *srtp_profiles; /* optional OpenSSL use_srtp list; NULL = "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80" */
    bool ice_tcp;              /* ICE-TCP only (RFC 6544, RFC 4571 framing): TCP host
                                  candidates, active ones connecting to the peer's
                                  passive ones, as to the relay's; false = UDP only */
};

struct refclient_stats {
    bool ice_ready;          /* libnice component reached READY (again, after an ICE restart) */
    bool dtls_done;          /* handshake finished */
    bool peer_verified;      /* peer certificate matched the expected fingerprint */
    char srtp_profile[32];   /* e.g. "SRTP_AEAD_AES_128_GCM" */
    uint64_t rtp_sent, rtp_received;
    uint64_t srtp_unprotect_failures;
    uint64_t frames_decoded;
    double detected_tone_hz; /* dominant frequency of decoded audio, 0 if none */
    uint64_t dtls_packets_sent, dtls_packets_received;
    uint64_t first_rtp_mono_us; /* CLOCK_MONOTONIC µs the peer's first RTP was read; 0 if none */
    uint64_t rtp_lost;          /* peer's RTP missing by sequence number (RFC 3550 A.3) */
    uint64_t rtcp_sent, rtcp_received;
    /* Round trip to the peer and back as RTCP measures it (RFC 3550 §6.4.1,
     * LSR/DLSR): through the relay both ways. 0 until the first sample. */
    uint64_t rtt_samples;
    double rtt_last_s, rtt_min_s, rtt_max_s, rtt_avg_s;
    uint64_t ice_restarts;      /* refclient_restart_ice calls that succeeded */
};

/* Creates a client and starts its own GLib main loop thread. Returns NULL and
 * writes a reason to err (errlen bytes) on failure. Caller frees with refclient_free. */
struct refclient *refclient_new(const struct refclient_config *cfg, char *err, size_t errlen);
/* NULL-safe; stops the thread. */
void refclient_free(struct refclient *rc);

/* Own ICE credentials. */
void refclient_local_credentials(const struct refclient *rc, char *ufrag, size_t ufrag_len,
                                 char *pwd, size_t pwd_len);
/* Own DTLS fingerprint ("sha-256 AB:CD:..." as in SDP a=fingerprint). */
const char *refclient_fingerprint(const struct refclient *rc);

/* Session descriptions as a browser writes them (JSEP, RFC 8829, with
 * bundlePolicy max-bundle and rtcpMuxPolicy require): one audio section,
 * Opus, a=group:BUNDLE, a=rtcp-mux, our ICE credentials and gathered host
 * candidates, our DTLS fingerprint. An offer says a=setup:actpass; an answer
 * takes the DTLS role the offer leaves us (active to actpass, as browsers
 * do). Each writes a NUL-terminated SDP into out (cap bytes) and returns its
 * length, or -1 (out too small, or create_answer before a remote offer). */
int refclient_create_offer(struct refclient *rc, char *out, size_t cap);
int refclient_create_answer(struct refclient *rc, char *out, size_t cap);
/* Applies the peer's description (the remote offer, or the answer to our
 * offer): ICE credentials, host candidates of the client's transport (UDP
 * ones; an ICE-TCP client's passive TCP ones), the fingerprint the peer's
 * certificate must have, our DTLS role from its a=setup, and our ICE role
 * (controlling when we offered or when the peer is ICE-lite, as against the
 * relay). Before refclient_start, or once after each refclient_restart_ice:
 * then the peer's fingerprint must be the one it had (DTLS does not restart)
 * and its a=setup must leave our DTLS role as it is. Returns 0, or -1 with a
 * reason in err that quotes nothing of the SDP. */
int refclient_set_remote_description(struct refclient *rc, bool is_answer, const char *sdp,
                                     size_t len, char *err, size_t errlen);

/* Local host candidates gathered (for a direct peer-to-peer test): fills up to max
 * "ADDR PORT" pairs; returns the count. Available after refclient_new returned.
 * With ice_tcp only the passive ones: an active candidate has no port a peer
 * could reach. */
int refclient_local_candidates(const struct refclient *rc, char addrs[][64], uint16_t *ports, int max);

/* Remote ICE credentials and the fingerprint the peer's DTLS certificate must have.
 * Returns 0, or -1 on bad arguments. */
int refclient_set_remote(struct refclient *rc, const char *ufrag, const char *pwd,
                         const char *peer_fingerprint);
/* One remote host candidate (IPv4 or IPv6 address + port) of the client's
 * transport: UDP, or with ice_tcp a passive TCP one (tcptype passive, as the
 * relay's) that the client connects to. Before or after start. */
int refclient_add_remote_candidate(struct refclient *rc, const char *addr, uint16_t port);
/* The same for an address as configurations hold it (a relay's listen). */
int refclient_add_remote_netaddr(struct refclient *rc, const union netaddr *a);

/* Begins ICE checks; refclient_set_remote must have been called. */
int refclient_start(struct refclient *rc);
/* ICE restart (RFC 8445 §9), as a browser does for a new relay: new local
 * ICE credentials (refclient_local_credentials and the next offer or answer
 * carry them), the peer's credentials and candidates forgotten. DTLS and
 * SRTP stay as they are. The side that offers calls it before
 * refclient_create_offer, the side that answers before applying that offer;
 * applying the peer's new description then starts checks at once, and
 * refclient_wait_ready waits until a pair is selected again. Media keeps
 * being sent; what goes while no pair is selected is lost. Only after
 * refclient_start; 0 or -1. */
int refclient_restart_ice(struct refclient *rc);
/* Blocks until ICE ready, DTLS done, peer verified and SRTP keyed, or timeout.
 * Returns 0 on success, -1 on failure/timeout (with the reason in err). */
int refclient_wait_ready(struct refclient *rc, int timeout_ms, char *err, size_t errlen);
/* Sends one Opus RTP packet every 20 ms; -1 until SRTP is keyed. */
int refclient_start_media(struct refclient *rc);
/* Stops sending; receiving and decoding go on. */
void refclient_stop_media(struct refclient *rc);
/* Changes the frequency of the tone sent from now on (the phase stays continuous). */
int refclient_set_tone(struct refclient *rc, double tone_hz);
/* Thread-safe snapshot. */
void refclient_get_stats(struct refclient *rc, struct refclient_stats *out);

#endif
