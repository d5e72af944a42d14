/* The signaling wire protocol (docs/protocol.md): parsing a browser's JSON
 * message into a checked struct. No I/O; fuzzed. */
#ifndef QUIETROOM_SIGNAL_PROTOCOL_H
#define QUIETROOM_SIGNAL_PROTOCOL_H

#include <stddef.h>

#include <jansson.h>

enum msg_type {
    MSG_AUTH,       /* {"type":"auth","token":JWT} first message */
    MSG_RESUME,     /* {"type":"resume","resume":SECRET} first message instead */
    MSG_ADMIT,      /* clinician: {"participant":ID} */
    MSG_DECLINE,
    MSG_REMOVE,
    MSG_END,        /* clinician ends the session */
    MSG_OFFER,      /* {"to":ID,"sdp":SDP} */
    MSG_ANSWER,
    MSG_CANDIDATE,  /* trickled candidate: accepted and never forwarded */
    MSG_LEAVE,
    MSG_PING,
    MSG_CHECK_LINK,   /* {"token":JWT} first message: verify only, nothing spent */
    MSG_ADMIT_ALL,    /* clinician: admits everyone waiting */
    MSG_NOTIFY,       /* clinician: {"text":T[,"participant":ID]} to waiting people */
    MSG_CHECK_OFFER,  /* {"sdp":SDP} the page's connection check, first peer */
    MSG_CHECK_ANSWER, /* {"sdp":SDP} its second peer */
    MSG_CHECK_RESULT, /* {"video","transport","loss_pct","rtt_ms","kbps"} */
    MSG_TYPE_COUNT
};

/* Why a message was refused; stable wire codes via protocol_error_code. */
enum proto_error {
    PROTO_OK = 0,
    PROTO_BAD_JSON,        /* bad_json: not a JSON object */
    PROTO_UNKNOWN_TYPE,    /* unknown_type */
    PROTO_MISSING_FIELD,   /* missing_field */
    PROTO_BAD_FIELD,       /* bad_field: wrong type or too long */
};

/* A parsed message. Strings point into root, which the struct owns. */
struct msg {
    enum msg_type type;
    json_t *root;
    const char *token;
    const char *resume;
    const char *participant;   /* admit, decline, remove */
    const char *to;            /* offer, answer */
    const char *sdp;
    size_t sdp_len;
    const char *text;          /* notify: 1 to QR_NOTICE_TEXT_MAX bytes */
    struct msg_check {         /* check_result: what the page measured */
        const char *video;     /* "good", "weak", "none" */
        const char *transport; /* "udp", "tcp", "none" */
        int loss_pct, rtt_ms, kbps;
    } check;
    const char *field;         /* for MISSING_FIELD / BAD_FIELD: which */
};

/* The words of a check_result (NULL-terminated), also those a stored
 * visit record may hold. */
extern const char *const protocol_check_verdicts[];
extern const char *const protocol_check_transports[];

/* Parses len bytes. On success the caller frees with msg_free; on failure
 * nothing needs freeing and m->field may name the culprit. */
enum proto_error protocol_parse(const char *buf, size_t len, struct msg *m);
void msg_free(struct msg *m);

const char *protocol_error_code(enum proto_error e);
const char *msg_type_name(enum msg_type t);

#endif
