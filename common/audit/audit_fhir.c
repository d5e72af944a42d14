/* Mapping audit records to FHIR AuditEvent, R4 or R5. DICOM codes go where
 * DICOM has one (the event ID such as 110114 User Authentication; the event
 * type such as 110122 Login, as in the example-login of both releases), and
 * every code also carries the Quietroom type, so nothing is lost when DICOM
 * has no word for it. The codes, agents and entities are the same in both
 * releases; where the releases differ:
 *   event ID     R4 type (one Coding)         R5 category (CodeableConcept[])
 *   event type   R4 subtype (Coding[])        R5 code (CodeableConcept)
 *   when         R4 period                    R5 occurredPeriod/occurredDateTime
 *   outcome      R4 outcome code, outcomeDesc R5 outcome {code, detail}
 *   severity     (none in R4)                 R5 severity
 *   address      R4 agent.network {address,   R5 agent.networkString
 *                type 2 for an IP address}
 *   requestor    R4 required (false unless    R5 optional
 *                the record says so)
 *   codings      R4 Coding (source.type,      R5 CodeableConcept
 *                entity.securityLabel)
 *   detail       R4 type string, valueString  R5 type CodeableConcept, value
 *                (numbers as text)            as its own FHIR type */
#include "quietroom/audit/audit_fhir.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "quietroom/base/clock.h"

#define FHIR_DCM "http://dicom.nema.org/resources/ontology/DCM"
#define FHIR_OUTCOME "http://terminology.hl7.org/CodeSystem/audit-event-outcome"
#define FHIR_SOURCE_TYPE "http://terminology.hl7.org/CodeSystem/security-source-type"
#define FHIR_CONFIDENTIALITY "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
#define FHIR_ACT_CODE "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#define QR_EVENT "urn:quietroom:audit-event"
#define QR_SUB "urn:quietroom:sub"
#define QR_ROLE "urn:quietroom:role"
#define QR_SESSION "urn:quietroom:session"
#define QR_AUDIT_FILE "urn:quietroom:audit-file"
/* FHIR integer is 32-bit; larger counts go out as a Quantity. */
#define FHIR_INT_MAX 2147483647LL

struct fhir_coding {
    const char *system, *code, *display;
};

static const struct fhir_coding fhir_app_activity = {FHIR_DCM, "110100", "Application Activity"};
static const struct fhir_coding fhir_security_alert = {FHIR_DCM, "110113", "Security Alert"};
static const struct fhir_coding fhir_user_auth = {FHIR_DCM, "110114", "User Authentication"};
static const struct fhir_coding fhir_app_start = {FHIR_DCM, "110120", "Application Start"};
static const struct fhir_coding fhir_app_stop = {FHIR_DCM, "110121", "Application Stop"};
static const struct fhir_coding fhir_login = {FHIR_DCM, "110122", "Login"};
static const struct fhir_coding fhir_logout = {FHIR_DCM, "110123", "Logout"};
static const struct fhir_coding fhir_application = {FHIR_DCM, "110150", "Application"};
static const struct fhir_coding fhir_security_config = {FHIR_DCM, "110131",
                                                        "Security Configuration"};
static const struct fhir_coding fhir_app_server = {FHIR_SOURCE_TYPE, "4", "Application Server"};
static const struct fhir_coding fhir_restricted = {FHIR_CONFIDENTIALITY, "R", "restricted"};
static const struct fhir_coding fhir_part2 = {FHIR_ACT_CODE, "42CFRPart2", "42 CFR Part2"};

/* How each record type maps. A type ending in '.' names a family. */
static const struct fhir_type {
    const char *type;
    const struct fhir_coding *category;  /* the DICOM event ID */
    const struct fhir_coding *code;      /* the DICOM event type, if one fits */
    bool exported;
} fhir_types[] = {
    {"auth.success", &fhir_user_auth, &fhir_login, true},
    {"auth.failure", &fhir_user_auth, &fhir_login, true},
    {"participant.resumed", &fhir_user_auth, &fhir_login, true},
    {"participant.rejoined", &fhir_user_auth, &fhir_login, true},
    /* A clinician's waiting-room message was passed on (never its text). */
    {"session.notice", &fhir_app_activity, NULL, true},
    {"participant.left", &fhir_user_auth, &fhir_logout, true},
    {"participant.removed", &fhir_user_auth, &fhir_logout, true},
    {"participant.timeout", &fhir_user_auth, &fhir_logout, true},
    {"session.ended", &fhir_user_auth, &fhir_logout, true},
    {"session.revoked", &fhir_user_auth, &fhir_logout, true},
    /* A replica of the cluster took a visit over: the service's doing. */
    {"session.takeover", &fhir_app_activity, NULL, true},
    {"relay.start", &fhir_app_activity, &fhir_app_start, true},
    {"signal.start", &fhir_app_activity, &fhir_app_start, true},
    {"relay.stop", &fhir_app_activity, &fhir_app_stop, true},
    {"signal.stop", &fhir_app_activity, &fhir_app_stop, true},
    /* A reload may rotate secrets and keys: a security configuration change. */
    {"relay.reload", &fhir_security_alert, &fhir_security_config, true},
    {"signal.reload", &fhir_security_alert, &fhir_security_config, true},
    {"relay.drain", &fhir_app_activity, NULL, true},
    {"signal.drain", &fhir_app_activity, NULL, true},
    {"audit.purge", &fhir_app_activity, NULL, true},
    {"audit.overflow", &fhir_security_alert, NULL, true},
    {"audit.recovered", &fhir_security_alert, NULL, true},
    /* The off-machine copy stopped (or came back): evidence at risk. */
    {"audit.ship", &fhir_security_alert, NULL, true},
    {"participant.", &fhir_user_auth, NULL, true},
    {"session.", &fhir_user_auth, NULL, true},
    {"auth.", &fhir_user_auth, NULL, true},
    {"leg.", &fhir_app_activity, NULL, true},
    /* Signaling moved a call's media to another relay: the service's doing. */
    {"link.", &fhir_app_activity, NULL, true},
    /* The writer's bookkeeping: the chain itself, not something that happened. */
    {"audit.", NULL, NULL, false},
};

static const struct fhir_type fhir_other = {NULL, NULL, NULL, true};

/* Failure reasons that mean someone tried to get in with a forged or
 * replayed token, not a user with an expired one. */
static const char *const fhir_attacks[] = {
    "token_alg_none",    "token_alg_hmac",    "token_bad_signature",
    "token_replayed",    "token_unknown_kid", "token_alg_mismatch",
};

static const struct {
    int outcome;
    const char *display, *severity;
} fhir_outcomes[] = {
    {0, "Success", "informational"},
    {4, "Minor failure", "warning"},
    {8, "Serious failure", "error"},
    {12, "Major failure", "critical"},
};

/* Members of a record that are not the writer's own payload. */
static const char *const fhir_envelope[] = {
    "type",   "action", "outcome", "reason", "time",  "node", "seq",  "kid",
    "prev",   "mac",    "agents",  "by",     "session", "labels", "period", "detail",
};

/* --- reading a record --------------------------------------------------------------- */

/* A non-empty string member, or NULL (FHIR has no empty strings). */
static const char *fhir__str(const json_t *obj, const char *name)
{
    const char *s = json_string_value(json_object_get(obj, name));

    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* FHIR code: no leading, trailing or double whitespace. */
static bool fhir__is_code(const char *s)
{
    if (s == NULL || s[0] == '\0' || s[0] == ' ')
        return false;
    for (const char *p = s; *p; p++) {
        if (*p == '\t' || *p == '\n' || *p == '\r' || (*p == ' ' && (p[1] == ' ' || !p[1])))
            return false;
    }
    return true;
}

static const struct fhir_type *fhir__type(const char *type)
{
    size_t n = sizeof(fhir_types) / sizeof(fhir_types[0]);

    for (size_t i = 0; i < n; i++) {
        if (strcmp(fhir_types[i].type, type) == 0)
            return &fhir_types[i];
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(fhir_types[i].type);

        if (fhir_types[i].type[len - 1] == '.' && strncmp(fhir_types[i].type, type, len) == 0)
            return &fhir_types[i];
    }
    return &fhir_other;
}

static bool fhir__digits(const char **p, int n, int *out)
{
    *out = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return false;
        *out = *out * 10 + (**p - '0');
    }
    return true;
}

/* hh:mm:ss[.fff…] after the 'T'; the fraction is kept to milliseconds. */
static bool fhir__clock(const char **p, struct tm *tm, int *ms)
{
    int frac_digits = 0;

    if (!fhir__digits(p, 2, &tm->tm_hour) || *(*p)++ != ':' || !fhir__digits(p, 2, &tm->tm_min) ||
        *(*p)++ != ':' || !fhir__digits(p, 2, &tm->tm_sec) || tm->tm_hour > 23 ||
        tm->tm_min > 59 || tm->tm_sec > 60)
        return false;
    *ms = 0;
    if (**p == '.') {
        for ((*p)++; **p >= '0' && **p <= '9'; (*p)++, frac_digits++) {
            if (frac_digits < 3)
                *ms = *ms * 10 + (**p - '0');
        }
        if (frac_digits == 0)
            return false;
        for (; frac_digits < 3; frac_digits++)
            *ms *= 10;
    }
    return true;
}

/* 'Z' or ±hh:mm; *offset_s is east of UTC. */
static bool fhir__zone(const char **p, int *offset_s)
{
    int h, m;
    char sign = **p;

    if (sign == 'Z' || sign == 'z') {
        (*p)++;
        *offset_s = 0;
        return true;
    }
    if (sign != '+' && sign != '-')
        return false;
    (*p)++;
    if (!fhir__digits(p, 2, &h) || *(*p)++ != ':' || !fhir__digits(p, 2, &m) || h > 23 || m > 59)
        return false;
    *offset_s = (sign == '-' ? -1 : 1) * (h * 3600 + m * 60);
    return true;
}

int audit_fhir_parse_time(const char *text, int64_t *ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    struct tm tm = {0};
    const char *p = text;
    int year, mday, frac = 0, offset = 0;
    time_t secs;

    if (text == NULL || !fhir__digits(&p, 4, &year) || *p++ != '-' ||
        !fhir__digits(&p, 2, &tm.tm_mon) || *p++ != '-' || !fhir__digits(&p, 2, &tm.tm_mday) ||
        year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
        tm.tm_mday > mdays[tm.tm_mon - 1])
        return -1;
    if (*p != '\0' && ((*p != 'T' && *p != 't') || (p++, !fhir__clock(&p, &tm, &frac)) ||
                       !fhir__zone(&p, &offset) || *p != '\0'))
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon -= 1;
    if (tm.tm_sec == 60)
        tm.tm_sec = 59; /* a leap second sorts with the second before it */
    mday = tm.tm_mday;
    /* timegm moves 29 February of a common year to 1 March: refuse it. */
    if ((secs = timegm(&tm)) == (time_t)-1 || tm.tm_mday != mday)
        return -1;
    *ms = ((int64_t)secs - offset) * 1000 + frac;
    return *ms >= 0 ? 0 : -1;
}

/* A record time as an FHIR instant: normalised to UTC with milliseconds. */
static json_t *fhir__instant(const char *text)
{
    char buf[40];
    int64_t ms;

    if (text == NULL || strchr(text, 'T') == NULL || audit_fhir_parse_time(text, &ms) != 0)
        return NULL;
    return json_string(clock_format_utc((uint64_t)ms, buf, sizeof(buf)));
}

/* --- building FHIR ----------------------------------------------------------------------- */

/* Sets obj[name] to value (consumed) unless value is NULL or empty: FHIR
 * allows no empty arrays or objects. */
static void fhir__put(json_t *obj, const char *name, json_t *value)
{
    if (value == NULL)
        return;
    if ((json_is_array(value) && json_array_size(value) == 0) ||
        (json_is_object(value) && json_object_size(value) == 0)) {
        json_decref(value);
        return;
    }
    json_object_set_new(obj, name, value);
}

static json_t *fhir__coding(const struct fhir_coding *c)
{
    return json_pack("{s:s,s:s,s:s}", "system", c->system, "code", c->code, "display", c->display);
}

/* A CodeableConcept of one coding. */
static json_t *fhir__concept(const struct fhir_coding *c)
{
    return json_pack("{s:[o]}", "coding", fhir__coding(c));
}

static json_t *fhir__identifier(const char *system, const char *value)
{
    return json_pack("{s:{s:s,s:s}}", "identifier", "system", system, "value", value);
}

/* A coding where R4 has a Coding, a CodeableConcept where R5 has one. */
static json_t *fhir__coded(const struct fhir_coding *c, enum audit_fhir_release rel)
{
    return rel == AUDIT_FHIR_R4 ? fhir__coding(c) : fhir__concept(c);
}

static json_t *fhir__our_type(const char *type)
{
    return json_pack("{s:s,s:s}", "system", QR_EVENT, "code", type);
}

/* The event type: the DICOM one if there is one, always our type. R4's
 * subtype, the codings of R5's code. */
static json_t *fhir__subtypes(const struct fhir_type *t, const char *type)
{
    json_t *codings = json_array();

    if (t->code != NULL)
        json_array_append_new(codings, fhir__coding(t->code));
    json_array_append_new(codings, fhir__our_type(type));
    return codings;
}

static bool fhir__attack(const json_t *rec)
{
    const char *reason = fhir__str(rec, "reason");

    for (size_t i = 0; reason != NULL && i < sizeof(fhir_attacks) / sizeof(fhir_attacks[0]); i++) {
        if (strcmp(reason, fhir_attacks[i]) == 0)
            return true;
    }
    return false;
}

/* R5 category: the DICOM event IDs, a Security Alert first for an attack. */
static json_t *fhir__category(const struct fhir_type *t, bool attack)
{
    json_t *cats = json_array();

    if (attack)
        json_array_append_new(cats, fhir__concept(&fhir_security_alert));
    if (t->category != NULL && !(attack && t->category == &fhir_security_alert))
        json_array_append_new(cats, fhir__concept(t->category));
    return cats;
}

/* R4 type, a single Coding: the event ID that says most (a Security Alert
 * for an attack), our type where DICOM has none. */
static json_t *fhir__r4_type(const struct fhir_type *t, bool attack, const char *type)
{
    if (attack)
        return fhir__coding(&fhir_security_alert);
    return t->category != NULL ? fhir__coding(t->category) : fhir__our_type(type);
}

static int fhir__outcome_index(const json_t *rec)
{
    json_t *o = json_object_get(rec, "outcome");

    for (size_t i = 0; json_is_integer(o) && i < sizeof(fhir_outcomes) / sizeof(fhir_outcomes[0]);
         i++) {
        if (json_integer_value(o) == fhir_outcomes[i].outcome)
            return (int)i;
    }
    return -1;
}

/* R5 outcome: the DICOM outcome indicator (0, 4, 8, 12), the reason as text. */
static json_t *fhir__outcome(const json_t *rec)
{
    int i = fhir__outcome_index(rec);
    const char *reason = fhir__str(rec, "reason");
    char code[4];
    json_t *out;

    if (i < 0)
        return NULL;
    snprintf(code, sizeof(code), "%d", fhir_outcomes[i].outcome);
    out = json_pack("{s:{s:s,s:s,s:s}}", "code", "system", FHIR_OUTCOME, "code", code, "display",
                    fhir_outcomes[i].display);
    if (reason != NULL)
        json_object_set_new(out, "detail", json_pack("[{s:s}]", "text", reason));
    return out;
}

/* R4: the same indicator as a code, the reason as outcomeDesc. */
static void fhir__r4_outcome(json_t *ev, const json_t *rec)
{
    int i = fhir__outcome_index(rec);
    const char *reason = fhir__str(rec, "reason");

    if (i >= 0)
        json_object_set_new(ev, "outcome", json_sprintf("%d", fhir_outcomes[i].outcome));
    if (reason != NULL)
        json_object_set_new(ev, "outcomeDesc", json_string(reason));
}

static const char *fhir__severity(const json_t *rec, const char *type, bool attack)
{
    int i = fhir__outcome_index(rec);

    if (attack)
        return "alert";
    if (strcmp(type, "audit.overflow") == 0)
        return "error"; /* records were lost */
    if (strcmp(type, "audit.purge") == 0)
        return "notice";
    return i < 0 ? NULL : fhir_outcomes[i].severity;
}

/* The record's period as a FHIR Period, or NULL. */
static json_t *fhir__period(const json_t *rec)
{
    const json_t *period = json_object_get(rec, "period");
    json_t *start = fhir__instant(fhir__str(period, "start"));
    json_t *end = fhir__instant(fhir__str(period, "end"));
    json_t *p;

    if (start == NULL && end == NULL)
        return NULL;
    p = json_object();
    fhir__put(p, "start", start);
    fhir__put(p, "end", end);
    return p;
}

static json_t *fhir__role(const char *role)
{
    if (!fhir__is_code(role))
        return json_pack("[{s:s}]", "text", role);
    return json_pack("[{s:[{s:s,s:s}],s:s}]", "coding", "system", QR_ROLE, "code", role, "text",
                     role);
}

/* who: the person's subject id when known, else what the agent is. */
static json_t *fhir__who(const json_t *a)
{
    const char *sub = fhir__str(a, "sub"), *role = fhir__str(a, "role");
    json_t *leg = json_object_get(a, "leg");
    char text[96];

    if (sub != NULL)
        return fhir__identifier(QR_SUB, sub);
    if (json_is_string(leg) || json_is_integer(leg)) {
        if (json_is_string(leg))
            snprintf(text, sizeof(text), "relay leg %s", json_string_value(leg));
        else
            snprintf(text, sizeof(text), "relay leg %lld", (long long)json_integer_value(leg));
    } else if (role != NULL && strncmp(role, "leg-", 4) == 0 && role[4] != '\0') {
        snprintf(text, sizeof(text), "relay leg %s", role + 4);
    } else {
        snprintf(text, sizeof(text), "%s",
                 role ? role : fhir__str(a, "address") ? "unidentified client" : "unidentified");
    }
    return json_pack("{s:s}", "display", text);
}

/* An IP address, with or without a port ("10.1.2.3:5000", "[::1]:5000");
 * not a hashed one ("h:0123..."). */
static bool fhir__is_ip(const char *address)
{
    unsigned char bin[sizeof(struct in6_addr)];
    char buf[INET6_ADDRSTRLEN + 8], *end;

    if (strlen(address) >= sizeof(buf))
        return false;
    snprintf(buf, sizeof(buf), "%s", address);
    if (inet_pton(AF_INET, buf, bin) == 1 || inet_pton(AF_INET6, buf, bin) == 1)
        return true;
    if (buf[0] == '[' && (end = strchr(buf, ']')) != NULL && end[1] == ':') {
        *end = '\0';
        return inet_pton(AF_INET6, buf + 1, bin) == 1;
    }
    if ((end = strrchr(buf, ':')) == NULL)
        return false;
    *end = '\0';
    return inet_pton(AF_INET, buf, bin) == 1;
}

/* R4 agent.network: type 2 (IP address) only when it is one. */
static json_t *fhir__network(const char *address)
{
    json_t *n = json_pack("{s:s}", "address", address);

    if (fhir__is_ip(address))
        json_object_set_new(n, "type", json_string("2"));
    return n;
}

static json_t *fhir__agent(const json_t *a, const char *by_sub, enum audit_fhir_release rel)
{
    const char *sub = fhir__str(a, "sub"), *role = fhir__str(a, "role");
    const char *address = fhir__str(a, "address");
    json_t *out = json_object(), *req = json_object_get(a, "requestor");

    if (role != NULL)
        json_object_set_new(out, "role", fhir__role(role));
    json_object_set_new(out, "who", fhir__who(a));
    if (by_sub != NULL && sub != NULL && strcmp(sub, by_sub) == 0)
        json_object_set_new(out, "requestor", json_true());
    else if (json_is_boolean(req) || rel == AUDIT_FHIR_R4) /* required in R4 */
        json_object_set_new(out, "requestor", json_boolean(json_is_true(req)));
    if (address != NULL && rel == AUDIT_FHIR_R4)
        json_object_set_new(out, "network", fhir__network(address));
    else if (address != NULL)
        json_object_set_new(out, "networkString", json_string(address));
    return out;
}

/* The recording application, when no one else took part. */
static json_t *fhir__app_agent(const char *node, enum audit_fhir_release rel)
{
    json_t *a = json_pack("{s:o,s:{s:s}}", "type", fhir__concept(&fhir_application), "who",
                          "display", node ? node : "quietroom");

    if (rel == AUDIT_FHIR_R4)
        json_object_set_new(a, "requestor", json_false()); /* required in R4 */
    return a;
}

/* Every agent of the record; the clinician who acted ("by") unless already
 * among them; the recording application when no one else took part. */
static json_t *fhir__agents(const json_t *rec, enum audit_fhir_release rel)
{
    const json_t *by = json_object_get(rec, "by"), *agents = json_object_get(rec, "agents");
    const char *by_sub = fhir__str(by, "sub"), *node = fhir__str(rec, "node");
    bool by_listed = false;
    json_t *out = json_array(), *a;
    size_t i;

    json_array_foreach(agents, i, a)
    {
        if (!json_is_object(a))
            continue;
        by_listed = by_listed || (by_sub && fhir__str(a, "sub") &&
                                  strcmp(fhir__str(a, "sub"), by_sub) == 0);
        json_array_append_new(out, fhir__agent(a, by_sub, rel));
    }
    if (by_sub != NULL && !by_listed) {
        json_t *b = json_pack("{s:s,s:b}", "sub", by_sub, "requestor", 1);

        if (fhir__str(by, "role"))
            json_object_set_new(b, "role", json_string(fhir__str(by, "role")));
        json_array_append_new(out, fhir__agent(b, by_sub, rel));
        json_decref(b);
    }
    if (json_array_size(out) == 0)
        json_array_append_new(out, fhir__app_agent(node, rel));
    return out;
}

static json_t *fhir__source(const json_t *rec, enum audit_fhir_release rel)
{
    const char *node = fhir__str(rec, "node");

    return json_pack("{s:{s:s},s:[o]}", "observer", "display", node ? node : "quietroom", "type",
                     fhir__coded(&fhir_app_server, rel));
}

/* R4 entity.detail: a string type and the value as text (R4 has only
 * valueString and valueBase64Binary). Nulls and empty values are left out,
 * as in R5. */
static json_t *fhir__r4_detail(const char *name, const json_t *v)
{
    json_t *d;
    char *text;

    if (name[0] == '\0' || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0) ||
        (json_is_array(v) && json_array_size(v) == 0) ||
        (json_is_object(v) && json_object_size(v) == 0))
        return NULL;
    if (json_is_string(v))
        return json_pack("{s:s,s:s}", "type", name, "valueString", json_string_value(v));
    if ((text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY)) == NULL)
        return NULL;
    d = json_pack("{s:s,s:s}", "type", name, "valueString", text);
    free(text);
    return d;
}

/* One entity.detail: the value as the FHIR type that holds it. */
static json_t *fhir__detail(const char *name, const json_t *v, enum audit_fhir_release rel)
{
    json_t *d;
    char *text;

    if (rel == AUDIT_FHIR_R4)
        return fhir__r4_detail(name, v);
    if (name[0] == '\0' || (d = json_pack("{s:{s:s}}", "type", "text", name)) == NULL)
        return NULL;
    if (json_is_string(v) && json_string_length(v) > 0) {
        json_object_set_new(d, "valueString", json_string(json_string_value(v)));
    } else if (json_is_boolean(v)) {
        json_object_set_new(d, "valueBoolean", json_boolean(json_is_true(v)));
    } else if (json_is_integer(v) && json_integer_value(v) >= -FHIR_INT_MAX - 1 &&
               json_integer_value(v) <= FHIR_INT_MAX) {
        json_object_set_new(d, "valueInteger", json_integer(json_integer_value(v)));
    } else if (json_is_number(v)) {
        json_object_set_new(d, "valueQuantity", json_pack("{s:O}", "value", v));
    } else if ((json_array_size(v) > 0 || json_object_size(v) > 0) &&
               (text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER)) != NULL) {
        json_object_set_new(d, "valueString", json_string(text));
        free(text);
    } else {
        json_decref(d);
        return NULL;
    }
    return d;
}

/* The record's "detail" members and, for the writer's records, its own
 * members (lost, torn_bytes, first_seq...). */
static json_t *fhir__details(const json_t *rec, bool writer, enum audit_fhir_release rel)
{
    const json_t *detail = json_object_get(rec, "detail");
    json_t *out = json_array(), *v, *d;
    const char *name;

    json_object_foreach((json_t *)detail, name, v)
    {
        if ((d = fhir__detail(name, v, rel)) != NULL)
            json_array_append_new(out, d);
    }
    json_object_foreach((json_t *)rec, name, v)
    {
        bool envelope = strcmp(name, "file") == 0;

        for (size_t i = 0; !envelope && i < sizeof(fhir_envelope) / sizeof(fhir_envelope[0]); i++)
            envelope = strcmp(name, fhir_envelope[i]) == 0;
        if (writer && !envelope && (d = fhir__detail(name, v, rel)) != NULL)
            json_array_append_new(out, d);
    }
    return out;
}

static bool fhir__labelled(const json_t *rec, const char *label)
{
    const json_t *labels = json_object_get(rec, "labels"), *l;
    size_t i;

    json_array_foreach(labels, i, l)
    {
        if (json_is_string(l) && strcmp(json_string_value(l), label) == 0)
            return true;
    }
    return false;
}

/* The session ("R" always: every session is behavioral health; 42 CFR
 * Part 2 when labelled so), or the audit file a purge removed; the details
 * ride on it. */
static json_t *fhir__entities(const json_t *rec, const char *type, enum audit_fhir_release rel)
{
    const char *session = fhir__str(rec, "session"), *file = fhir__str(rec, "file");
    bool writer = strncmp(type, "audit.", 6) == 0;
    json_t *e = json_object(), *labels;

    if (session != NULL) {
        json_object_set_new(e, "what", fhir__identifier(QR_SESSION, session));
        labels = json_pack("[o]", fhir__coded(&fhir_restricted, rel));
        if (fhir__labelled(rec, "42CFRPart2"))
            json_array_append_new(labels, fhir__coded(&fhir_part2, rel));
        json_object_set_new(e, "securityLabel", labels);
    } else if (writer && file != NULL) {
        json_object_set_new(e, "what", fhir__identifier(QR_AUDIT_FILE, file));
    }
    fhir__put(e, "detail", fhir__details(rec, writer, rel));
    if (json_object_size(e) == 0) {
        json_decref(e);
        return NULL;
    }
    return json_pack("[o]", e);
}

/* A stable id for the record: a UUID (RFC 9562 version 8) from the SHA-256
 * of its text, which holds its mac, so it names this record only. */
static bool fhir__uuid(const json_t *rec, char *out, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
    bool ok = text != NULL &&
              EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen >= 16;

    free(text);
    if (!ok)
        return false;
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    snprintf(out, len,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", md[0],
             md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11],
             md[12], md[13], md[14], md[15]);
    return true;
}

/* --- the public face ------------------------------------------------------------------ */

bool audit_fhir_exported(const json_t *rec)
{
    const char *type = fhir__str(rec, "type");

    return json_is_object(rec) && fhir__is_code(type) && fhir__type(type)->exported;
}

bool audit_fhir_wanted(const json_t *rec, const struct audit_fhir_filter *f)
{
    const char *session = fhir__str(rec, "session");
    int64_t ms;

    if (!audit_fhir_exported(rec))
        return false;
    if (f == NULL)
        return true;
    if (f->session != NULL && (session == NULL || strcmp(session, f->session) != 0))
        return false;
    return !f->has_since ||
           (audit_fhir_parse_time(fhir__str(rec, "time"), &ms) == 0 && ms >= f->since_ms);
}

/* action: the same code in both releases. */
static void fhir__action(json_t *ev, const json_t *rec)
{
    const char *action = fhir__str(rec, "action");

    if (action != NULL && strlen(action) == 1 && strchr("CRUDE", action[0]) != NULL)
        json_object_set_new(ev, "action", json_string(action));
}

/* R4: the event ID and type, the period, the outcome code. */
static void fhir__r4_head(json_t *ev, const json_t *rec, const struct fhir_type *t,
                          const char *type, bool attack, json_t *recorded)
{
    json_object_set_new(ev, "type", fhir__r4_type(t, attack, type));
    json_object_set_new(ev, "subtype", fhir__subtypes(t, type));
    fhir__action(ev, rec);
    fhir__put(ev, "period", fhir__period(rec));
    json_object_set_new(ev, "recorded", recorded);
    fhir__r4_outcome(ev, rec);
}

/* R5: category and code, severity, occurred[x], the outcome element. */
static void fhir__r5_head(json_t *ev, const json_t *rec, const struct fhir_type *t,
                          const char *type, bool attack, json_t *recorded)
{
    const char *severity = fhir__severity(rec, type, attack);
    json_t *period = fhir__period(rec);

    fhir__put(ev, "category", fhir__category(t, attack));
    json_object_set_new(ev, "code", json_pack("{s:o,s:s}", "coding", fhir__subtypes(t, type),
                                              "text", type));
    fhir__action(ev, rec);
    if (severity != NULL)
        json_object_set_new(ev, "severity", json_string(severity));
    if (period != NULL)
        json_object_set_new(ev, "occurredPeriod", period);
    else
        json_object_set_new(ev, "occurredDateTime", json_copy(recorded));
    json_object_set_new(ev, "recorded", recorded);
    fhir__put(ev, "outcome", fhir__outcome(rec));
}

json_t *audit_fhir_event(const json_t *rec, enum audit_fhir_release rel)
{
    const char *type = fhir__str(rec, "type");
    const struct fhir_type *t;
    json_t *recorded, *ev;
    char uuid[40];
    bool attack;

    if (!audit_fhir_exported(rec) || (recorded = fhir__instant(fhir__str(rec, "time"))) == NULL)
        return NULL;
    t = fhir__type(type);
    attack = strcmp(type, "auth.failure") == 0 && fhir__attack(rec);
    ev = json_pack("{s:s}", "resourceType", "AuditEvent");
    if (fhir__uuid(rec, uuid, sizeof(uuid)))
        json_object_set_new(ev, "id", json_string(uuid));
    if (rel == AUDIT_FHIR_R4)
        fhir__r4_head(ev, rec, t, type, attack, recorded);
    else
        fhir__r5_head(ev, rec, t, type, attack, recorded);
    json_object_set_new(ev, "agent", fhir__agents(rec, rel));
    json_object_set_new(ev, "source", fhir__source(rec, rel));
    fhir__put(ev, "entity", fhir__entities(rec, type, rel));
    return ev;
}

json_t *audit_fhir_bundle(uint64_t now_ms)
{
    char stamp[40];

    return json_pack("{s:s,s:s,s:s}", "resourceType", "Bundle", "type", "collection",
                     "timestamp", clock_format_utc(now_ms, stamp, sizeof(stamp)));
}

int audit_fhir_add(json_t *bundle, const json_t *rec, const struct audit_fhir_filter *f,
                   enum audit_fhir_release rel)
{
    json_t *ev, *entries = json_object_get(bundle, "entry");
    char url[64];

    if (!audit_fhir_wanted(rec, f) || (ev = audit_fhir_event(rec, rel)) == NULL)
        return 0;
    /* Created with the first entry: FHIR allows no empty array. */
    if (entries == NULL && json_object_set_new(bundle, "entry", json_array()) == 0)
        entries = json_object_get(bundle, "entry");
    if (!json_is_array(entries)) {
        json_decref(ev);
        return -1;
    }
    if (json_object_get(ev, "id") == NULL) {
        json_decref(ev);
        return -1;
    }
    snprintf(url, sizeof(url), "urn:uuid:%s", json_string_value(json_object_get(ev, "id")));
    return json_array_append_new(entries, json_pack("{s:s,s:o}", "fullUrl", url, "resource",
                                                    ev)) == 0
               ? 1
               : -1;
}
