/* Message parsing: JSON (jansson, duplicate keys refused) into a struct of
 * checked fields. One table row per message type says what it carries. */
#include "protocol.h"

#include <string.h>

#include "quietroom/base/limits.h"

#define PROTO_ID_MAX 16
#define PROTO_RESUME_MAX 128

enum proto_field {
    F_NONE = 0,
    F_TOKEN = 1,
    F_RESUME = 2,
    F_PARTICIPANT = 4,
    F_TO = 8,
    F_SDP = 16,
    F_TEXT = 32,
    F_OPT_PARTICIPANT = 64, /* participant, if present */
    F_CHECK = 128,
};

static const struct {
    const char *name;
    unsigned fields;
} proto_types[MSG_TYPE_COUNT] = {
    [MSG_AUTH] = {"auth", F_TOKEN},
    [MSG_RESUME] = {"resume", F_RESUME},
    [MSG_ADMIT] = {"admit", F_PARTICIPANT},
    [MSG_DECLINE] = {"decline", F_PARTICIPANT},
    [MSG_REMOVE] = {"remove", F_PARTICIPANT},
    [MSG_END] = {"end", F_NONE},
    [MSG_OFFER] = {"offer", F_TO | F_SDP},
    [MSG_ANSWER] = {"answer", F_TO | F_SDP},
    [MSG_CANDIDATE] = {"candidate", F_NONE},
    [MSG_LEAVE] = {"leave", F_NONE},
    [MSG_PING] = {"ping", F_NONE},
    [MSG_CHECK_LINK] = {"check_link", F_TOKEN},
    [MSG_ADMIT_ALL] = {"admit_all", F_NONE},
    [MSG_NOTIFY] = {"notify", F_TEXT | F_OPT_PARTICIPANT},
    [MSG_CHECK_OFFER] = {"check_offer", F_SDP},
    [MSG_CHECK_ANSWER] = {"check_answer", F_SDP},
    [MSG_CHECK_RESULT] = {"check_result", F_CHECK},
};

static const char *const proto_error_codes[] = {
    [PROTO_OK] = "ok",
    [PROTO_BAD_JSON] = "bad_json",
    [PROTO_UNKNOWN_TYPE] = "unknown_type",
    [PROTO_MISSING_FIELD] = "missing_field",
    [PROTO_BAD_FIELD] = "bad_field",
};

const char *protocol_error_code(enum proto_error e)
{
    return proto_error_codes[e];
}

const char *msg_type_name(enum msg_type t)
{
    return (unsigned)t < MSG_TYPE_COUNT ? proto_types[t].name : "unknown";
}

/* Reads string field name, at most max bytes, no NUL inside. */
static enum proto_error proto__string(struct msg *m, const char *name, size_t max,
                                      const char **out, size_t *len)
{
    json_t *v = json_object_get(m->root, name);
    size_t n;

    m->field = name;
    if (v == NULL)
        return PROTO_MISSING_FIELD;
    if (!json_is_string(v))
        return PROTO_BAD_FIELD;
    n = json_string_length(v);
    if (n == 0 || n > max || strlen(json_string_value(v)) != n)
        return PROTO_BAD_FIELD;
    *out = json_string_value(v);
    if (len != NULL)
        *len = n;
    m->field = NULL;
    return PROTO_OK;
}

/* Reads string field name, which must be one of the NULL-ended words. */
static enum proto_error proto__word(struct msg *m, const char *name, const char *const *words,
                                    const char **out)
{
    enum proto_error e = proto__string(m, name, PROTO_ID_MAX, out, NULL);

    for (; e == PROTO_OK && *words != NULL; words++) {
        if (strcmp(*out, *words) == 0)
            return PROTO_OK;
    }
    m->field = name;
    return e == PROTO_OK ? PROTO_BAD_FIELD : e;
}

/* Reads integer field name in [0, max]. */
static enum proto_error proto__int(struct msg *m, const char *name, int max, int *out)
{
    json_t *v = json_object_get(m->root, name);

    m->field = name;
    if (v == NULL)
        return PROTO_MISSING_FIELD;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
        return PROTO_BAD_FIELD;
    *out = (int)json_integer_value(v);
    m->field = NULL;
    return PROTO_OK;
}

const char *const protocol_check_verdicts[] = {"good", "weak", "none", NULL};
const char *const protocol_check_transports[] = {"udp", "tcp", "none", NULL};

static enum proto_error proto__check(struct msg *m)
{
    enum proto_error e = proto__word(m, "video", protocol_check_verdicts, &m->check.video);

    if (e == PROTO_OK)
        e = proto__word(m, "transport", protocol_check_transports, &m->check.transport);
    if (e == PROTO_OK)
        e = proto__int(m, "loss_pct", 100, &m->check.loss_pct);
    if (e == PROTO_OK)
        e = proto__int(m, "rtt_ms", 60000, &m->check.rtt_ms);
    if (e == PROTO_OK)
        e = proto__int(m, "kbps", 1000000, &m->check.kbps);
    return e;
}

static enum proto_error proto__fields(struct msg *m, unsigned fields)
{
    enum proto_error e = PROTO_OK;

    if (e == PROTO_OK && (fields & F_TOKEN))
        e = proto__string(m, "token", QR_TOKEN_MAX, &m->token, NULL);
    if (e == PROTO_OK && (fields & F_RESUME))
        e = proto__string(m, "resume", PROTO_RESUME_MAX, &m->resume, NULL);
    if (e == PROTO_OK && (fields & F_PARTICIPANT))
        e = proto__string(m, "participant", PROTO_ID_MAX, &m->participant, NULL);
    if (e == PROTO_OK && (fields & F_TO))
        e = proto__string(m, "to", PROTO_ID_MAX, &m->to, NULL);
    if (e == PROTO_OK && (fields & F_SDP))
        e = proto__string(m, "sdp", QR_SDP_MAX, &m->sdp, &m->sdp_len);
    if (e == PROTO_OK && (fields & F_TEXT))
        e = proto__string(m, "text", QR_NOTICE_TEXT_MAX, &m->text, NULL);
    if (e == PROTO_OK && (fields & F_OPT_PARTICIPANT) &&
        json_object_get(m->root, "participant") != NULL)
        e = proto__string(m, "participant", PROTO_ID_MAX, &m->participant, NULL);
    if (e == PROTO_OK && (fields & F_CHECK))
        e = proto__check(m);
    return e;
}

enum proto_error protocol_parse(const char *buf, size_t len, struct msg *m)
{
    json_error_t jerr;
    const char *type;
    enum proto_error e;

    memset(m, 0, sizeof(*m));
    m->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (m->root == NULL || !json_is_object(m->root)) {
        json_decref(m->root);
        m->root = NULL;
        return PROTO_BAD_JSON;
    }
    type = json_string_value(json_object_get(m->root, "type"));
    e = PROTO_UNKNOWN_TYPE;
    for (int t = 0; type != NULL && t < MSG_TYPE_COUNT; t++) {
        if (strcmp(type, proto_types[t].name) == 0) {
            m->type = (enum msg_type)t;
            e = proto__fields(m, proto_types[t].fields);
            break;
        }
    }
    if (e != PROTO_OK) {
        const char *field = m->field;

        json_decref(m->root);
        memset(m, 0, sizeof(*m));
        m->field = field; /* static string: the field's name literal */
    }
    return e;
}

void msg_free(struct msg *m)
{
    json_decref(m->root);
    memset(m, 0, sizeof(*m));
}
