/* quietroomctl probe: one synthetic visit through the real system. A
 * clinician and a patient (tokens minted here, signed like an EHR's) join
 * over signaling, the clinician admits the patient, two reference native
 * clients negotiate through signaling's SDP rewrite, run full ICE against the
 * relay, DTLS-SRTP end to end and an Opus tone each way. The result names the
 * stage that failed. Nothing here prints a token, SDP, key or id. */
#ifndef QUIETROOM_CTL_PROBE_H
#define QUIETROOM_CTL_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wsconn.h"

/* Stages in the order a probe passes them; the first that fails is reported. */
enum probe_stage {
    PROBE_OK,
    PROBE_LOCAL,     /* this host: key, randomness, the native client */
    PROBE_CONNECT,   /* WebSocket to signaling */
    PROBE_AUTH,      /* token refused */
    PROBE_ADMIT,     /* waiting room, admission, media link (relay choice) */
    PROBE_NEGOTIATE, /* offer/answer through the SDP rewrite */
    PROBE_ICE,       /* connectivity checks against the relay */
    PROBE_DTLS,      /* end-to-end handshake through the relay */
    PROBE_MEDIA,     /* SRTP both ways */
    PROBE_TONE,      /* the far end's tone decoded */
    PROBE_TIMEOUT,   /* the probe's deadline passed between stages */
};

/* "ok", "connect", "auth", ... */
const char *probe_stage_name(enum probe_stage s);

struct probe_opts {
    struct wsconn_target target;
    const char *origin;         /* Origin header */
    const char *ca_file;        /* NULL: system CAs */
    const char *key;            /* EHR private key (PEM) */
    const char *kid, *iss, *aud;
    const char *local_address;  /* NULL: the address routing to signaling */
    uint32_t seconds;           /* media time */
    uint32_t timeout_s;         /* bound on setup (join to media both ways) */
    bool ice_tcp;               /* both clients reach the relay over ICE-TCP */
};

struct probe_side {
    uint64_t rtp_sent, rtp_received, rtp_lost;
    double tone_hz;             /* dominant frequency decoded, 0 if none */
    double rtt_s;               /* RTCP mean, 0 without a sample */
};

struct probe_result {
    enum probe_stage failed;    /* PROBE_OK on success */
    char reason[192];           /* one line, no identifiers */
    double setup_s;             /* first join to first media arriving at both sides */
    double rtt_s;               /* mean of both sides' RTCP round trips */
    double loss;                /* lost / (received + lost), both directions */
    bool tone;                  /* each side decoded the other's tone */
    bool media_ran;             /* setup_s, rtt_s, loss and tone were measured */
    char relay[64];             /* relay candidate "ADDR:PORT" signaling handed out */
    const char *transport;      /* of that candidate: "udp" or "tcp" */
    char srtp_profile[32];
    struct probe_side side[2];  /* [0] clinician, [1] patient */
    uint64_t finished_unix;     /* wall clock seconds */
};

/* Runs one probe. Always fills r; returns 0 on success, -1 if a stage failed. */
int probe_run(const struct probe_opts *o, struct probe_result *r);

/* probe_report.c: a human summary or JSON on stdout; 0 or -1. */
void probe_report_text(const struct probe_result *r, uint32_t seconds);
int probe_report_json(const struct probe_result *r, uint32_t seconds);
/* node_exporter textfile-collector format, written to path + ".tmp" and
 * renamed over path so the collector never reads half a file. 0 or -1 with
 * a reason in err. */
int probe_report_prometheus(const struct probe_result *r, const char *path, char *err,
                            size_t errlen);

/* probe_signal.c: one participant's WebSocket side. */
struct probe_party {
    const char *role;           /* "clinician" or "patient" */
    struct wsconn *ws;          /* owned */
    char id[32];                /* the server's participant id */
    char peer[32];              /* the other participant's id */
    bool initiator;             /* the server asked us to offer */
};

/* Every wait below ends at deadline_ms (clock_mono_ms); on failure each
 * writes a reason to r and returns -1. */
int probe_signal_join(const struct probe_opts *o, struct probe_party *p, const char *token,
                      uint64_t deadline_ms, struct probe_result *r);
/* The clinician admits the waiting patient; both learn of their media link. */
int probe_signal_admit(struct probe_party *doc, struct probe_party *pat, uint64_t deadline_ms,
                       struct probe_result *r);
/* Sends an SDP ("offer" or "answer") to p's peer. */
int probe_signal_send_sdp(struct probe_party *p, const char *type, const char *sdp,
                          struct probe_result *r);
/* Waits for the peer's SDP of that type; *sdp is a new string the caller frees. */
int probe_signal_recv_sdp(struct probe_party *p, const char *type, char **sdp,
                          uint64_t deadline_ms, struct probe_result *r);
/* Leaves: the clinician ends the visit, so the relay revokes the link at once. */
void probe_signal_leave(struct probe_party *p);

/* Records the first failure; later ones are consequences. */
void probe_fail(struct probe_result *r, enum probe_stage s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
