/* SDP rewriting for a relay that both browsers must use (RFC 8866, JSEP
 * RFC 8829, BUNDLE RFC 9143): the receiver's relay ICE credentials, relay
 * candidates only, a=ice-lite, voice-activity header extensions removed,
 * DTLS fingerprints and setup untouched. Caller-owned buffers, no I/O. */
#ifndef QUIETROOM_SDP_H
#define QUIETROOM_SDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quietroom/base/limits.h"

#define SDP_ADDR_MAX 64
/* Every address a relay can listen on, UDP and TCP, can be announced. */
#define SDP_CANDIDATES_MAX (QR_LISTEN_MAX + QR_TCP_LISTEN_MAX)

/* How browsers reach a relay address. UDP is zero, so that {addr, port}
 * means UDP; TCP is a passive ICE-TCP candidate (RFC 6544, RFC 4571
 * framing), the fallback where UDP is blocked. */
enum sdp_transport {
    SDP_TRANSPORT_UDP = 0,
    SDP_TRANSPORT_TCP,
    SDP_TRANSPORT_COUNT
};

/* A relay media address to put in a=candidate lines (numeric IPv4/IPv6). */
struct sdp_candidate {
    char addr[SDP_ADDR_MAX];
    uint16_t port;
    enum sdp_transport transport;
};

struct sdp_rewrite_params {
    const char *ice_ufrag;                 /* relay credentials of the receiver's leg */
    const char *ice_pwd;
    /* The relay's candidates, in preference order within a transport: UDP
     * ones are written first and TCP ones after them, at lower priorities;
     * m= and c= take UDP addresses only. */
    const struct sdp_candidate *cands;
    unsigned n_cands;
};

/* Why an SDP cannot be made safe. Stable wire codes via sdp_error_code. */
enum sdp_error {
    SDP_OK = 0,
    SDP_ERR_TOO_LARGE,        /* sdp_too_large */
    SDP_ERR_MALFORMED,        /* sdp_malformed: not v=0 ... lines of type=value */
    SDP_ERR_NO_MEDIA,         /* sdp_no_media */
    SDP_ERR_NO_FINGERPRINT,   /* sdp_no_fingerprint: DTLS could not be end to end */
    SDP_ERR_NO_BUNDLE,        /* sdp_no_bundle */
    SDP_ERR_NO_RTCP_MUX,      /* sdp_no_rtcp_mux */
    SDP_ERR_BAD_TRANSPORT,    /* sdp_bad_transport: an m= line not over DTLS */
    SDP_ERR_OUT_OF_SPACE,     /* sdp_out_of_space: output buffer too small */
    SDP_ERR_BAD_PARAMS,       /* sdp_bad_params: the relay credentials or candidates given */
    SDP_ERR_COUNT
};

const char *sdp_error_code(enum sdp_error e);
const char *sdp_error_message(enum sdp_error e);

/* Rewrites an offer or answer (in, len bytes; LF or CRLF) into out (cap
 * bytes, CRLF, NUL-terminated, length in *out_len). */
enum sdp_error sdp_rewrite(const char *in, size_t len, const struct sdp_rewrite_params *p,
                           char *out, size_t cap, size_t *out_len);

/* What a native client needs from an SDP it received. */
struct sdp_summary {
    char ice_ufrag[257];
    char ice_pwd[257];
    char fingerprint[160];                 /* "sha-256 AB:CD:..." */
    char setup[16];                        /* actpass, active, passive */
    bool ice_lite;
    struct sdp_candidate cands[SDP_CANDIDATES_MAX];   /* UDP candidates */
    unsigned n_cands;
};

/* Reads the first media section's transport parameters (session-level
 * values apply where a media section has none). */
enum sdp_error sdp_summarize(const char *in, size_t len, struct sdp_summary *out);

#endif
