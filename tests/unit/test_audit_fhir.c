/* FHIR AuditEvent export, R5 and R4. In-process: each record type maps to
 * the R5 elements (codes, agents, entity, labels, details), and to R4's
 * (type/subtype, outcome codes, required requestor, network, string
 * details) with the same codes; filters, hostile records. With --schema
 * PYTHON SCRIPT SCHEMA: builds a sealed log, runs the real quietroomctl
 * audit verify/export/show on it, validates the exported R5 Bundle against
 * the R5 schema fixture (and checks that the fixture does reject R4-shaped
 * AuditEvents), and checks --format (R4 by default). The R4 export is
 * validated independently in tests/integration/test_audit_export.c. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "quietroom/audit/audit_fhir.h"
#include "quietroom/audit/audit_record.h"

#define DCM "http://dicom.nema.org/resources/ontology/DCM"
#define THO_OUTCOME "http://terminology.hl7.org/CodeSystem/audit-event-outcome"
#define KEY1 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

/* Records as the signaling server and the relay write them (sealing fields
 * left out where a test does not need them). */
static const char rec_login[] =
    "{\"type\":\"auth.success\",\"action\":\"E\",\"outcome\":0,"
    "\"agents\":[{\"sub\":\"dr-a\",\"role\":\"clinician\",\"requestor\":true,"
    "\"address\":\"10.1.2.3:50000\"}],\"session\":\"appt-42\",\"labels\":[\"R\",\"42CFRPart2\"],"
    "\"detail\":{\"participant\":\"c1\",\"method\":\"token\"},"
    "\"time\":\"2026-11-24T07:03:00.021Z\",\"node\":\"signal-1\",\"seq\":3,\"kid\":1,"
    "\"prev\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\","
    "\"mac\":\"bWFjbWFjbWFjbWFjbWFjbWFjbWFjbWFjbWFjbWFjbWE=\"}";
static const char rec_attack[] =
    "{\"type\":\"auth.failure\",\"action\":\"E\",\"outcome\":4,\"reason\":\"token_alg_none\","
    "\"agents\":[{\"requestor\":true,\"address\":\"203.0.113.9:1234\"}],"
    "\"time\":\"2026-11-24T07:04:00.000Z\",\"node\":\"signal-1\",\"seq\":4}";
static const char rec_expired[] =
    "{\"type\":\"auth.failure\",\"action\":\"E\",\"outcome\":4,\"reason\":\"token_expired\","
    "\"agents\":[{\"sub\":\"p-78\",\"role\":\"patient\",\"requestor\":true,\"address\":\"::1\"}],"
    "\"session\":\"appt-43\",\"labels\":[\"R\"],"
    "\"time\":\"2026-11-24T07:05:00.000Z\",\"node\":\"signal-1\",\"seq\":5}";
static const char rec_leg_down[] =
    "{\"type\":\"leg.down\",\"action\":\"D\",\"outcome\":4,\"reason\":\"consent\","
    "\"agents\":[{\"role\":\"leg-a\",\"requestor\":true,\"address\":\"h:0123456789abcdef\"}],"
    "\"session\":\"0011223344556677\",\"labels\":[\"R\"],"
    "\"period\":{\"start\":\"2026-11-24T07:15:00.000Z\",\"end\":\"2026-11-24T08:20:00.500Z\"},"
    "\"detail\":{\"duration_ms\":3900500,\"bytes_in\":3000000000,\"loss\":0.25,"
    "\"relayed\":true,\"rtp_streams\":[{\"lost\":3}],\"empty\":\"\",\"none\":null,\"\":1},"
    "\"time\":\"2026-11-24T08:20:00.501Z\",\"node\":\"relay-1\",\"seq\":9}";
static const char rec_admitted[] =
    "{\"type\":\"participant.admitted\",\"action\":\"U\",\"outcome\":0,"
    "\"agents\":[{\"sub\":\"p-77\",\"role\":\"patient\",\"requestor\":false}],"
    "\"by\":{\"sub\":\"dr-a\",\"role\":\"clinician\"},\"session\":\"appt-42\","
    "\"labels\":[\"R\"],\"time\":\"2026-11-24T07:06:00.000Z\",\"node\":\"signal-1\",\"seq\":6}";
static const char rec_ended[] =
    "{\"type\":\"session.ended\",\"action\":\"E\",\"outcome\":0,\"reason\":\"ended_by_clinician\","
    "\"agents\":[{\"sub\":\"dr-a\",\"role\":\"clinician\",\"requestor\":true}],"
    "\"by\":{\"sub\":\"dr-a\",\"role\":\"clinician\"},\"session\":\"appt-42\","
    "\"labels\":[\"R\",\"42CFRPart2\"],\"time\":\"2026-11-24T08:00:00.000Z\","
    "\"node\":\"signal-1\",\"seq\":7}";
static const char rec_start_no_agent[] =
    "{\"type\":\"relay.start\",\"action\":\"E\",\"outcome\":0,"
    "\"time\":\"2026-11-24T07:00:00.000Z\",\"node\":\"relay-1\",\"seq\":2}";
static const char rec_purge[] =
    "{\"type\":\"audit.purge\",\"action\":\"D\",\"outcome\":0,\"reason\":\"retention\","
    "\"file\":\"audit.jsonl.20201124T000000Z\",\"first_seq\":1,\"last_seq\":900,"
    "\"last_mac\":\"bWFjbWFjbWFjbWFjbWFjbWFjbWFjbWFjbWFjbWFjbWE=\","
    "\"time\":\"2026-11-24T07:00:00.100Z\",\"node\":\"relay-1\",\"seq\":901}";
static const char rec_overflow[] =
    "{\"type\":\"audit.overflow\",\"action\":\"E\",\"outcome\":4,\"lost\":3,"
    "\"time\":\"2026-11-24T07:30:00.000Z\",\"node\":\"relay-1\",\"seq\":12}";

static const char rec_ship_stopped[] =
    "{\"type\":\"audit.ship\",\"action\":\"E\",\"outcome\":4,\"reason\":\"stopped\","
    "\"detail\":{\"error\":\"certificate\"},"
    "\"time\":\"2026-11-24T07:40:00.000Z\",\"node\":\"relay-1\",\"seq\":13}";

static json_t *load(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);

    if (v == NULL)
        fail_msg("fixture does not parse: %s", err.text);
    return v;
}

static json_t *event_in(const char *text, enum audit_fhir_release rel)
{
    json_t *rec = load(text), *ev = audit_fhir_event(rec, rel);

    json_decref(rec);
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_object_get(ev, "resourceType")), "AuditEvent");
    return ev;
}

/* The R5 AuditEvent of a record. */
static json_t *event_of(const char *text)
{
    return event_in(text, AUDIT_FHIR_R5);
}

/* The R4 AuditEvent of a record. */
static json_t *r4_of(const char *text)
{
    return event_in(text, AUDIT_FHIR_R4);
}

/* The value at a path like "agent/0/who/identifier/value". */
static json_t *at(json_t *v, const char *path)
{
    char buf[256], *save = NULL;

    snprintf(buf, sizeof(buf), "%s", path);
    for (char *part = strtok_r(buf, "/", &save); v != NULL && part != NULL;
         part = strtok_r(NULL, "/", &save))
        v = json_is_array(v) ? json_array_get(v, strtoul(part, NULL, 10))
                             : json_object_get(v, part);
    return v;
}

static const char *str_at(json_t *v, const char *path)
{
    const char *s = json_string_value(at(v, path));

    if (s == NULL)
        fail_msg("no string at %s", path);
    return s;
}

static void test_parse_time(void **state)
{
    int64_t ms;

    (void)state;
    assert_int_equal(audit_fhir_parse_time("2026-11-24T07:34:00.123Z", &ms), 0);
    assert_int_equal(ms, 1795505640123LL);
    assert_int_equal(audit_fhir_parse_time("2026-11-24T08:34:00.123+01:00", &ms), 0);
    assert_int_equal(ms, 1795505640123LL);
    assert_int_equal(audit_fhir_parse_time("2026-11-24t07:34:00z", &ms), 0);
    assert_int_equal(ms, 1795505640000LL);
    assert_int_equal(audit_fhir_parse_time("2026-11-24T07:34:00.1234567Z", &ms), 0);
    assert_int_equal(ms, 1795505640123LL);
    assert_int_equal(audit_fhir_parse_time("2026-11-24", &ms), 0);
    assert_int_equal(ms, 1795478400000LL);
    assert_int_equal(audit_fhir_parse_time("2028-02-29", &ms), 0);
    /* Refused: no zone, no such day or hour, trailing text, before 1970. */
    assert_int_equal(audit_fhir_parse_time("2026-11-24T07:34:00", &ms), -1);
    assert_int_equal(audit_fhir_parse_time("2027-02-29", &ms), -1);
    assert_int_equal(audit_fhir_parse_time("2026-11-24T24:00:00Z", &ms), -1);
    assert_int_equal(audit_fhir_parse_time("2026-11-24T07:34:00Zjunk", &ms), -1);
    assert_int_equal(audit_fhir_parse_time("2026-11-24T07:34:00.Z", &ms), -1);
    assert_int_equal(audit_fhir_parse_time("1969-12-31", &ms), -1);
    assert_int_equal(audit_fhir_parse_time("yesterday", &ms), -1);
    assert_int_equal(audit_fhir_parse_time(NULL, &ms), -1);
}

static void test_login(void **state)
{
    json_t *ev = event_of(rec_login);

    (void)state;
    assert_string_equal(str_at(ev, "category/0/coding/0/system"), DCM);
    assert_string_equal(str_at(ev, "category/0/coding/0/code"), "110114");
    assert_string_equal(str_at(ev, "code/coding/0/code"), "110122");
    assert_string_equal(str_at(ev, "code/coding/0/display"), "Login");
    assert_string_equal(str_at(ev, "code/coding/1/system"), "urn:quietroom:audit-event");
    assert_string_equal(str_at(ev, "code/coding/1/code"), "auth.success");
    assert_string_equal(str_at(ev, "action"), "E");
    assert_string_equal(str_at(ev, "severity"), "informational");
    assert_string_equal(str_at(ev, "recorded"), "2026-11-24T07:03:00.021Z");
    assert_string_equal(str_at(ev, "occurredDateTime"), "2026-11-24T07:03:00.021Z");
    assert_string_equal(str_at(ev, "outcome/code/system"), THO_OUTCOME);
    assert_string_equal(str_at(ev, "outcome/code/code"), "0");
    assert_null(at(ev, "outcome/detail"));
    assert_string_equal(str_at(ev, "agent/0/who/identifier/system"), "urn:quietroom:sub");
    assert_string_equal(str_at(ev, "agent/0/who/identifier/value"), "dr-a");
    assert_string_equal(str_at(ev, "agent/0/role/0/coding/0/code"), "clinician");
    assert_true(json_is_true(at(ev, "agent/0/requestor")));
    assert_string_equal(str_at(ev, "agent/0/networkString"), "10.1.2.3:50000");
    assert_string_equal(str_at(ev, "source/observer/display"), "signal-1");
    assert_string_equal(str_at(ev, "source/type/0/coding/0/code"), "4");
    assert_string_equal(str_at(ev, "entity/0/what/identifier/system"), "urn:quietroom:session");
    assert_string_equal(str_at(ev, "entity/0/what/identifier/value"), "appt-42");
    assert_string_equal(str_at(ev, "entity/0/securityLabel/0/coding/0/code"), "R");
    assert_string_equal(str_at(ev, "entity/0/securityLabel/1/coding/0/code"), "42CFRPart2");
    assert_string_equal(str_at(ev, "entity/0/securityLabel/1/coding/0/system"),
                        "http://terminology.hl7.org/CodeSystem/v3-ActCode");
    assert_string_equal(str_at(ev, "entity/0/detail/0/type/text"), "participant");
    assert_string_equal(str_at(ev, "entity/0/detail/0/valueString"), "c1");
    /* R5 element names, none of R4's. */
    for (const char *const *n = (const char *const[]){"type", "subtype", "period", "outcomeDesc",
                                                      "purposeOfEvent", NULL};
         *n; n++)
        assert_null(json_object_get(ev, *n));
    assert_null(at(ev, "agent/0/network"));
    assert_null(at(ev, "agent/0/altId"));
    json_decref(ev);
}

static void test_attack_is_security_alert(void **state)
{
    json_t *ev = event_of(rec_attack), *plain = event_of(rec_expired);

    (void)state;
    assert_string_equal(str_at(ev, "category/0/coding/0/code"), "110113");
    assert_string_equal(str_at(ev, "category/1/coding/0/code"), "110114");
    assert_string_equal(str_at(ev, "severity"), "alert");
    assert_string_equal(str_at(ev, "outcome/code/code"), "4");
    assert_string_equal(str_at(ev, "outcome/code/display"), "Minor failure");
    assert_string_equal(str_at(ev, "outcome/detail/0/text"), "token_alg_none");
    assert_string_equal(str_at(ev, "agent/0/who/display"), "unidentified client");
    assert_string_equal(str_at(ev, "agent/0/networkString"), "203.0.113.9:1234");
    /* An expired token is a user's failure, not an attack. */
    assert_string_equal(str_at(plain, "category/0/coding/0/code"), "110114");
    assert_null(at(plain, "category/1"));
    assert_string_equal(str_at(plain, "severity"), "warning");
    assert_string_equal(str_at(plain, "entity/0/securityLabel/0/coding/0/code"), "R");
    assert_null(at(plain, "entity/0/securityLabel/1"));
    json_decref(ev);
    json_decref(plain);
}

/* A detail by name: its value element. */
static json_t *detail(json_t *ev, const char *name, const char *value_key)
{
    json_t *details = at(ev, "entity/0/detail"), *d;
    size_t i;

    json_array_foreach(details, i, d)
    {
        if (strcmp(str_at(d, "type/text"), name) == 0)
            return json_object_get(d, value_key);
    }
    return NULL;
}

/* An R4 detail's valueString by name. */
static json_t *detail_r4(json_t *ev, const char *name)
{
    json_t *details = at(ev, "entity/0/detail"), *d;
    size_t i;

    json_array_foreach(details, i, d)
    {
        if (strcmp(str_at(d, "type"), name) == 0)
            return json_object_get(d, "valueString");
    }
    return NULL;
}

static void test_leg_down(void **state)
{
    json_t *ev = event_of(rec_leg_down);

    (void)state;
    assert_string_equal(str_at(ev, "category/0/coding/0/code"), "110100");
    assert_int_equal(json_array_size(at(ev, "code/coding")), 1);
    assert_string_equal(str_at(ev, "occurredPeriod/start"), "2026-11-24T07:15:00.000Z");
    assert_string_equal(str_at(ev, "occurredPeriod/end"), "2026-11-24T08:20:00.500Z");
    assert_null(json_object_get(ev, "occurredDateTime"));
    assert_string_equal(str_at(ev, "agent/0/who/display"), "relay leg a");
    assert_string_equal(str_at(ev, "agent/0/networkString"), "h:0123456789abcdef");
    assert_int_equal(json_integer_value(detail(ev, "duration_ms", "valueInteger")), 3900500);
    /* Beyond FHIR's 32-bit integer: a Quantity. */
    assert_null(detail(ev, "bytes_in", "valueInteger"));
    assert_int_equal(json_integer_value(at(detail(ev, "bytes_in", "valueQuantity"), "value")),
                     3000000000LL);
    assert_true(json_real_value(at(detail(ev, "loss", "valueQuantity"), "value")) == 0.25);
    assert_true(json_is_true(detail(ev, "relayed", "valueBoolean")));
    assert_string_equal(json_string_value(detail(ev, "rtp_streams", "valueString")),
                        "[{\"lost\":3}]");
    /* FHIR has no empty strings and no nulls: such details are left out. */
    assert_int_equal(json_array_size(at(ev, "entity/0/detail")), 5);
    json_decref(ev);
}

static void test_agents_by_and_application(void **state)
{
    json_t *adm = event_of(rec_admitted), *end = event_of(rec_ended),
           *start = event_of(rec_start_no_agent);

    (void)state;
    /* The clinician who admitted is an agent of their own, the requestor. */
    assert_int_equal(json_array_size(json_object_get(adm, "agent")), 2);
    assert_true(json_is_false(at(adm, "agent/0/requestor")));
    assert_string_equal(str_at(adm, "agent/1/who/identifier/value"), "dr-a");
    assert_true(json_is_true(at(adm, "agent/1/requestor")));
    /* ...but not twice when already an agent. */
    assert_int_equal(json_array_size(json_object_get(end, "agent")), 1);
    assert_string_equal(str_at(end, "code/coding/0/code"), "110123");
    assert_string_equal(str_at(end, "outcome/detail/0/text"), "ended_by_clinician");
    /* No one took part: the recording application is the agent. */
    assert_string_equal(str_at(start, "agent/0/type/coding/0/code"), "110150");
    assert_string_equal(str_at(start, "agent/0/who/display"), "relay-1");
    assert_string_equal(str_at(start, "code/coding/0/code"), "110120");
    assert_null(json_object_get(start, "entity"));
    json_decref(adm);
    json_decref(end);
    json_decref(start);
}

static void test_writer_records(void **state)
{
    static const char *const skipped[] = {
        "{\"type\":\"audit.open\",\"previous_file\":null,\"reason\":\"start\","
        "\"time\":\"2026-11-24T07:00:00.000Z\"}",
        "{\"type\":\"audit.close\",\"rotated_to\":null,\"time\":\"2026-11-24T07:00:00.000Z\"}",
        "{\"type\":\"audit.checkpoint\",\"records\":7,\"time\":\"2026-11-24T07:00:00.000Z\"}",
        "{\"type\":\"audit.future\",\"time\":\"2026-11-24T07:00:00.000Z\"}",
    };
    json_t *purge = event_of(rec_purge), *over = event_of(rec_overflow);
    json_t *ship = event_of(rec_ship_stopped);

    (void)state;
    for (size_t i = 0; i < sizeof(skipped) / sizeof(skipped[0]); i++) {
        json_t *rec = load(skipped[i]);

        assert_false(audit_fhir_exported(rec));
        assert_null(audit_fhir_event(rec, AUDIT_FHIR_R5));
        assert_null(audit_fhir_event(rec, AUDIT_FHIR_R4));
        json_decref(rec);
    }
    assert_string_equal(str_at(purge, "entity/0/what/identifier/system"),
                        "urn:quietroom:audit-file");
    assert_string_equal(str_at(purge, "entity/0/what/identifier/value"),
                        "audit.jsonl.20201124T000000Z");
    assert_int_equal(json_integer_value(detail(purge, "last_seq", "valueInteger")), 900);
    assert_non_null(detail(purge, "last_mac", "valueString"));
    assert_string_equal(str_at(purge, "action"), "D");
    assert_string_equal(str_at(over, "category/0/coding/0/code"), "110113");
    assert_string_equal(str_at(over, "severity"), "error");
    assert_int_equal(json_integer_value(detail(over, "lost", "valueInteger")), 3);
    /* The off-machine copy stopping is exported: the EHR's auditors see it. */
    assert_string_equal(str_at(ship, "category/0/coding/0/code"), "110113");
    json_decref(purge);
    json_decref(over);
    json_decref(ship);
}

static void test_filter(void **state)
{
    struct audit_fhir_filter f = {.session = "appt-42"};
    json_t *login = load(rec_login), *expired = load(rec_expired), *attack = load(rec_attack);

    (void)state;
    assert_true(audit_fhir_wanted(login, &f));
    assert_false(audit_fhir_wanted(expired, &f));
    assert_false(audit_fhir_wanted(attack, &f));
    f.session = "appt-4"; /* exact, not a prefix */
    assert_false(audit_fhir_wanted(login, &f));
    f.session = NULL;
    f.has_since = true;
    assert_int_equal(audit_fhir_parse_time("2026-11-24T07:04:00Z", &f.since_ms), 0);
    assert_false(audit_fhir_wanted(login, &f));
    assert_true(audit_fhir_wanted(attack, &f)); /* at the very millisecond */
    assert_true(audit_fhir_wanted(expired, &f));
    assert_true(audit_fhir_wanted(login, NULL));
    json_decref(login);
    json_decref(expired);
    json_decref(attack);
}

/* Records are distrusted even when sealed: wrong types never crash and
 * never reach the output as something else. */
static void test_hostile_records(void **state)
{
    static const char *const none[] = {
        "[]", "\"auth.success\"", "{}", "{\"type\":7,\"time\":\"2026-11-24T07:00:00Z\"}",
        "{\"type\":\"\",\"time\":\"2026-11-24T07:00:00Z\"}",
        "{\"type\":\"auth  success\",\"time\":\"2026-11-24T07:00:00Z\"}",
        "{\"type\":\"auth.success\\n\",\"time\":\"2026-11-24T07:00:00Z\"}",
        "{\"type\":\"auth.success\"}", "{\"type\":\"auth.success\",\"time\":17950000}",
        "{\"type\":\"auth.success\",\"time\":\"2026-11-24\"}",
    };
    const char *odd = "{\"type\":\"auth.success\",\"time\":\"2026-11-24T07:00:00+02:00\","
                      "\"action\":\"X\",\"outcome\":\"0\",\"agents\":{\"sub\":\"x\"},"
                      "\"by\":\"dr-a\",\"session\":5,\"labels\":\"42CFRPart2\","
                      "\"period\":{\"start\":\"soon\"},\"detail\":[1,2],\"node\":\"\\u001b[2J\"}";
    json_t *ev;

    (void)state;
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        json_t *rec = load(none[i]);

        assert_null(audit_fhir_event(rec, AUDIT_FHIR_R5));
        assert_null(audit_fhir_event(rec, AUDIT_FHIR_R4));
        json_decref(rec);
    }
    ev = event_of(odd);
    assert_string_equal(str_at(ev, "recorded"), "2026-11-24T05:00:00.000Z");
    assert_null(json_object_get(ev, "action"));
    assert_null(json_object_get(ev, "outcome"));
    assert_null(json_object_get(ev, "severity"));
    assert_null(json_object_get(ev, "entity"));
    assert_null(json_object_get(ev, "occurredPeriod"));
    assert_int_equal(json_array_size(json_object_get(ev, "agent")), 1);
    assert_string_equal(str_at(ev, "agent/0/type/coding/0/code"), "110150");
    json_decref(ev);
}

static void test_bundle(void **state)
{
    json_t *bundle = audit_fhir_bundle(1795505640123ULL), *recs[3];
    struct audit_fhir_filter all = {0};
    const char *id0, *id1;
    char url[80];

    (void)state;
    assert_string_equal(str_at(bundle, "resourceType"), "Bundle");
    assert_string_equal(str_at(bundle, "type"), "collection");
    assert_string_equal(str_at(bundle, "timestamp"), "2026-11-24T07:34:00.123Z");
    assert_null(json_object_get(bundle, "entry")); /* no empty array */
    recs[0] = load(rec_login);
    recs[1] = load(rec_attack);
    recs[2] = load("{\"type\":\"audit.checkpoint\",\"time\":\"2026-11-24T07:00:00Z\"}");
    assert_int_equal(audit_fhir_add(bundle, recs[0], &all, AUDIT_FHIR_R5), 1);
    assert_int_equal(audit_fhir_add(bundle, recs[1], &all, AUDIT_FHIR_R4), 1);
    assert_int_equal(audit_fhir_add(bundle, recs[2], &all, AUDIT_FHIR_R4), 0);
    assert_int_equal(json_array_size(json_object_get(bundle, "entry")), 2);
    id0 = str_at(bundle, "entry/0/resource/id");
    id1 = str_at(bundle, "entry/1/resource/id");
    assert_int_equal(strlen(id0), 36);
    assert_int_equal(id0[14], '8'); /* UUID version 8 */
    assert_string_not_equal(id0, id1);
    snprintf(url, sizeof(url), "urn:uuid:%s", id0);
    assert_string_equal(str_at(bundle, "entry/0/fullUrl"), url);
    /* The same record always gets the same id. */
    {
        json_t *again = event_of(rec_login);

        assert_string_equal(str_at(again, "id"), id0);
        json_decref(again);
    }
    for (int i = 0; i < 3; i++)
        json_decref(recs[i]);
    json_decref(bundle);
}

/* --- R4: the same codes in R4's element names and types ---------------------- */

/* No element of R5 alone. */
static void assert_no_r5_names(json_t *ev)
{
    for (const char *const *n = (const char *const[]){"category", "code", "severity",
                                                      "occurredDateTime", "occurredPeriod",
                                                      NULL};
         *n; n++)
        assert_null(json_object_get(ev, *n));
    assert_null(at(ev, "agent/0/networkString"));
}

static void test_r4_login(void **state)
{
    json_t *ev = r4_of(rec_login);
    char *text = json_dumps(ev, 0);

    (void)state;
    /* type: the DICOM event ID; subtype: the event type, then ours. */
    assert_string_equal(str_at(ev, "type/system"), DCM);
    assert_string_equal(str_at(ev, "type/code"), "110114");
    assert_string_equal(str_at(ev, "type/display"), "User Authentication");
    assert_string_equal(str_at(ev, "subtype/0/system"), DCM);
    assert_string_equal(str_at(ev, "subtype/0/code"), "110122");
    assert_string_equal(str_at(ev, "subtype/1/system"), "urn:quietroom:audit-event");
    assert_string_equal(str_at(ev, "subtype/1/code"), "auth.success");
    assert_string_equal(str_at(ev, "action"), "E");
    assert_string_equal(str_at(ev, "recorded"), "2026-11-24T07:03:00.021Z");
    assert_string_equal(str_at(ev, "outcome"), "0");
    assert_null(json_object_get(ev, "outcomeDesc"));
    assert_null(json_object_get(ev, "period"));
    assert_string_equal(str_at(ev, "agent/0/who/identifier/system"), "urn:quietroom:sub");
    assert_string_equal(str_at(ev, "agent/0/who/identifier/value"), "dr-a");
    assert_string_equal(str_at(ev, "agent/0/role/0/coding/0/code"), "clinician");
    assert_true(json_is_true(at(ev, "agent/0/requestor")));
    assert_string_equal(str_at(ev, "agent/0/network/address"), "10.1.2.3:50000");
    assert_string_equal(str_at(ev, "agent/0/network/type"), "2");
    assert_string_equal(str_at(ev, "source/observer/display"), "signal-1");
    /* source.type and entity.securityLabel are Codings in R4. */
    assert_string_equal(str_at(ev, "source/type/0/code"), "4");
    assert_null(at(ev, "source/type/0/coding"));
    assert_string_equal(str_at(ev, "entity/0/what/identifier/value"), "appt-42");
    assert_string_equal(str_at(ev, "entity/0/securityLabel/0/code"), "R");
    assert_string_equal(str_at(ev, "entity/0/securityLabel/1/code"), "42CFRPart2");
    assert_string_equal(str_at(ev, "entity/0/securityLabel/1/system"),
                        "http://terminology.hl7.org/CodeSystem/v3-ActCode");
    assert_string_equal(str_at(ev, "entity/0/detail/0/type"), "participant");
    assert_string_equal(str_at(ev, "entity/0/detail/0/valueString"), "c1");
    assert_no_r5_names(ev);
    /* Nothing of the seal rides along. */
    assert_null(strstr(text, "bWFjbWFj"));
    assert_null(strstr(text, "AAAAAAAA"));
    free(text);
    json_decref(ev);
}

static void test_r4_attack_and_outcomes(void **state)
{
    static const struct {
        int outcome;
        const char *code;
    } outcomes[] = {{0, "0"}, {4, "4"}, {8, "8"}, {12, "12"}};
    json_t *ev = r4_of(rec_attack), *plain = r4_of(rec_expired);

    (void)state;
    /* One type in R4: the Security Alert; the login stays in subtype. */
    assert_string_equal(str_at(ev, "type/code"), "110113");
    assert_string_equal(str_at(ev, "subtype/0/code"), "110122");
    assert_string_equal(str_at(ev, "subtype/1/code"), "auth.failure");
    assert_string_equal(str_at(ev, "outcome"), "4");
    assert_string_equal(str_at(ev, "outcomeDesc"), "token_alg_none");
    assert_string_equal(str_at(ev, "agent/0/who/display"), "unidentified client");
    assert_string_equal(str_at(ev, "agent/0/network/address"), "203.0.113.9:1234");
    assert_string_equal(str_at(plain, "type/code"), "110114");
    assert_string_equal(str_at(plain, "outcomeDesc"), "token_expired");
    assert_string_equal(str_at(plain, "agent/0/network/type"), "2"); /* ::1 */
    assert_no_r5_names(ev);
    json_decref(ev);
    json_decref(plain);
    for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
        char text[160];

        snprintf(text, sizeof(text),
                 "{\"type\":\"relay.stop\",\"outcome\":%d,"
                 "\"time\":\"2026-11-24T07:00:00Z\",\"node\":\"relay-1\"}",
                 outcomes[i].outcome);
        ev = r4_of(text);
        assert_string_equal(str_at(ev, "outcome"), outcomes[i].code);
        assert_string_equal(str_at(ev, "subtype/0/code"), "110121");
        json_decref(ev);
    }
}

static void test_r4_leg_down(void **state)
{
    json_t *ev = r4_of(rec_leg_down);

    (void)state;
    assert_string_equal(str_at(ev, "type/code"), "110100");
    assert_int_equal(json_array_size(json_object_get(ev, "subtype")), 1);
    assert_string_equal(str_at(ev, "period/start"), "2026-11-24T07:15:00.000Z");
    assert_string_equal(str_at(ev, "period/end"), "2026-11-24T08:20:00.500Z");
    assert_string_equal(str_at(ev, "recorded"), "2026-11-24T08:20:00.501Z");
    assert_string_equal(str_at(ev, "outcomeDesc"), "consent");
    /* A hashed address is no IP address: no network type. */
    assert_string_equal(str_at(ev, "agent/0/network/address"), "h:0123456789abcdef");
    assert_null(at(ev, "agent/0/network/type"));
    /* R4 details are strings: every value as text. */
    assert_string_equal(str_at(ev, "entity/0/detail/0/type"), "duration_ms");
    assert_string_equal(json_string_value(detail_r4(ev, "duration_ms")), "3900500");
    assert_string_equal(json_string_value(detail_r4(ev, "bytes_in")), "3000000000");
    assert_string_equal(json_string_value(detail_r4(ev, "loss")), "0.25");
    assert_string_equal(json_string_value(detail_r4(ev, "relayed")), "true");
    assert_string_equal(json_string_value(detail_r4(ev, "rtp_streams")), "[{\"lost\":3}]");
    assert_int_equal(json_array_size(at(ev, "entity/0/detail")), 5);
    assert_no_r5_names(ev);
    json_decref(ev);
}

static void test_r4_requestor(void **state)
{
    json_t *adm = r4_of(rec_admitted), *start = r4_of(rec_start_no_agent),
           *quiet = r4_of("{\"type\":\"participant.left\",\"outcome\":0,"
                          "\"agents\":[{\"sub\":\"p-1\",\"role\":\"patient\"}],"
                          "\"time\":\"2026-11-24T07:00:00Z\"}"),
           *r5 = event_of("{\"type\":\"participant.left\",\"outcome\":0,"
                          "\"agents\":[{\"sub\":\"p-1\",\"role\":\"patient\"}],"
                          "\"time\":\"2026-11-24T07:00:00Z\"}");

    (void)state;
    /* Required in R4: as the record says, the clinician who acted true,
     * false when the record does not say (R5 leaves it out). */
    assert_true(json_is_false(at(adm, "agent/0/requestor")));
    assert_true(json_is_true(at(adm, "agent/1/requestor")));
    assert_string_equal(str_at(adm, "agent/1/who/identifier/value"), "dr-a");
    assert_true(json_is_false(at(quiet, "agent/0/requestor")));
    assert_null(at(r5, "agent/0/requestor"));
    assert_null(at(quiet, "agent/0/network"));
    /* The recording application. */
    assert_string_equal(str_at(start, "agent/0/type/coding/0/code"), "110150");
    assert_true(json_is_false(at(start, "agent/0/requestor")));
    assert_string_equal(str_at(start, "subtype/0/code"), "110120");
    json_decref(adm);
    json_decref(start);
    json_decref(quiet);
    json_decref(r5);
}

/* Both absent, or equal. */
static bool same(json_t *a, json_t *b)
{
    return a == NULL ? b == NULL : json_equal(a, b);
}

/* The codes are the releases' common ground: R4 type is the first R5
 * category (or ours), R4 subtype the codings of R5 code. */
static void test_r4_r5_same_codes(void **state)
{
    const char *const recs[] = {rec_login,  rec_attack,         rec_expired, rec_leg_down,
                                rec_admitted, rec_ended, rec_start_no_agent, rec_purge,
                                rec_overflow};
    json_t *r4, *r5, *other;

    (void)state;
    for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
        r4 = r4_of(recs[i]);
        r5 = event_of(recs[i]);
        assert_true(json_equal(json_object_get(r4, "type"), at(r5, "category/0/coding/0")));
        assert_true(json_equal(json_object_get(r4, "subtype"), at(r5, "code/coding")));
        assert_true(json_equal(json_object_get(r4, "id"), json_object_get(r5, "id")));
        assert_true(same(at(r4, "entity/0/what"), at(r5, "entity/0/what")));
        assert_true(same(at(r4, "agent/0/who"), at(r5, "agent/0/who")));
        assert_true(same(at(r4, "agent/0/role"), at(r5, "agent/0/role")));
        json_decref(r4);
        json_decref(r5);
    }
    /* A type DICOM has no ID for: ours is R4's one type. */
    other = r4_of("{\"type\":\"future.thing\",\"time\":\"2026-11-24T07:00:00Z\"}");
    assert_string_equal(str_at(other, "type/system"), "urn:quietroom:audit-event");
    assert_string_equal(str_at(other, "type/code"), "future.thing");
    json_decref(other);
}

/* --- the exported Bundle against the schema, through the real CLI ------------ */

struct pipeline {
    const char *python, *script, *schema;
    char dir[64], log[128], keys[128], out[128], err[128];
};

/* Runs argv with stdout and stderr to files; returns the exit code. */
static int run(char *const argv[], const char *out, const char *err)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(127);
        execvp(argv[0], argv);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *buf = calloc(1, 1 << 20);

    assert_non_null(fp);
    assert_true(fread(buf, 1, (1 << 20) - 1, fp) < (1 << 20) - 1);
    fclose(fp);
    return buf;
}

static void append(const char *path, const char *text)
{
    FILE *fp = fopen(path, "a");

    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Writes a sealed log of one session, as signaling and the writer would. */
static void write_log(struct pipeline *p)
{
    static const char *const events[] = {
        "{\"type\":\"audit.open\",\"action\":\"E\",\"outcome\":0,\"previous_file\":null,"
        "\"reason\":\"start\"}",
        "{\"type\":\"signal.start\",\"action\":\"E\",\"outcome\":0,"
        "\"agents\":[{\"role\":\"signaling\",\"requestor\":true}]}",
        NULL, /* rec_login */
        NULL, /* rec_attack */
        NULL, /* rec_admitted */
        NULL, /* rec_leg_down */
        NULL, /* rec_expired */
        NULL, /* rec_overflow */
        "{\"type\":\"audit.checkpoint\",\"action\":\"E\",\"outcome\":0,\"records\":9}",
        NULL, /* rec_ended */
        "{\"type\":\"audit.close\",\"action\":\"E\",\"outcome\":0,\"rotated_to\":null,"
        "\"reason\":\"stop\"}",
    };
    const char *recs[] = {NULL,         NULL,         rec_login,    rec_attack,
                          rec_admitted, rec_leg_down, rec_expired,  rec_overflow,
                          NULL,         rec_ended,    NULL};
    static const char *const sealing[] = {"seq", "kid", "prev", "mac"};
    char prev[AUDIT_MAC_B64] = AUDIT_GENESIS, mac[AUDIT_MAC_B64], err[128];
    struct hmac *h = hmac_new(HMAC_SHA256);
    struct keyring kr;
    FILE *fp = fopen(p->log, "w");
    int fd;

    assert_int_equal(keyring_parse("1 " KEY1 "\n", &kr, err, sizeof(err)), 0);
    assert_true((fd = open(p->keys, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0);
    assert_int_equal(write(fd, "1 " KEY1 "\n", strlen(KEY1) + 3), (ssize_t)strlen(KEY1) + 3);
    close(fd);
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        json_t *ev = load(recs[i] ? recs[i] : events[i]);
        size_t len;
        char *line;

        /* The fixtures carry sealing fields of their own: the writer's win. */
        for (size_t k = 0; k < sizeof(sealing) / sizeof(sealing[0]); k++)
            json_object_del(ev, sealing[k]);
        if (json_object_get(ev, "time") == NULL)
            json_object_set_new(ev, "time", json_string("2026-11-24T07:00:00.000Z"));
        json_object_set_new(ev, "node", json_string("signal-1"));
        line = audit_record_seal(ev, i + 1, keyring_find(&kr, 1), prev, h, mac, &len);
        assert_non_null(line);
        fwrite(line, 1, len, fp);
        memcpy(prev, mac, AUDIT_MAC_B64);
        free(line);
        json_decref(ev);
    }
    fclose(fp);
    hmac_free(h);
    keyring_wipe(&kr);
}

static int pipeline_setup(void **state)
{
    struct pipeline *p = *state;

    snprintf(p->dir, sizeof(p->dir), "/tmp/qr-audit-fhir-XXXXXX");
    if (mkdtemp(p->dir) == NULL)
        return -1;
    snprintf(p->log, sizeof(p->log), "%.63s/audit.jsonl", p->dir);
    snprintf(p->keys, sizeof(p->keys), "%.63s/audit.key", p->dir);
    snprintf(p->out, sizeof(p->out), "%.63s/out", p->dir);
    snprintf(p->err, sizeof(p->err), "%.63s/err", p->dir);
    write_log(p);
    return 0;
}

static int pipeline_teardown(void **state)
{
    struct pipeline *p = *state;
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %.63s", p->dir);
    return getenv("QR_KEEP_TEST_DIRS") || system(cmd) == 0 ? 0 : -1;
}

static int validate(struct pipeline *p, const char *doc)
{
    char *argv[] = {(char *)p->python, (char *)p->script, (char *)p->schema, (char *)doc, NULL};
    char vout[160], verr[160];
    int rc;
    char *text;

    snprintf(vout, sizeof(vout), "%s/validate.out", p->dir);
    snprintf(verr, sizeof(verr), "%s/validate.err", p->dir);
    rc = run(argv, vout, verr);
    text = slurp(verr);
    if (rc == 2)
        fail_msg("fhir_validate.py could not run:\n%s", text);
    if (rc != 0)
        print_message("%s: schema errors:\n%s", doc, text);
    free(text);
    return rc;
}

static int ctl(struct pipeline *p, ...) __attribute__((sentinel));

/* Runs quietroomctl audit with the arguments up to a NULL. */
static int ctl(struct pipeline *p, ...)
{
    char *argv[16] = {QR_CTL_BIN, "audit"};
    size_t n = 2;
    va_list ap;

    va_start(ap, p);
    while (n < 15 && (argv[n] = va_arg(ap, char *)) != NULL)
        n++;
    va_end(ap);
    argv[n] = NULL;
    return run(argv, p->out, p->err);
}

static void assert_output(const char *path, const char *fragment)
{
    char *text = slurp(path);

    if (strstr(text, fragment) == NULL)
        fail_msg("\"%s\" not in %s:\n%s", fragment, path, text);
    free(text);
}

static void test_export_validates(void **state)
{
    struct pipeline *p = *state;
    char doc[160];
    json_t *bundle;

    assert_int_equal(ctl(p, "verify", "--key-file", p->keys, p->log, NULL), 0);
    assert_output(p->out, "intact: 1 file(s), 11 record(s)");
    assert_int_equal(
        ctl(p, "export", "--key-file", p->keys, "--format", "fhir-r5", p->log, NULL), 0);
    snprintf(doc, sizeof(doc), "%s/bundle.json", p->dir);
    assert_int_equal(rename(p->out, doc), 0);
    assert_int_equal(validate(p, doc), 0);
    bundle = json_load_file(doc, 0, NULL);
    /* 11 records less open, checkpoint and close. */
    assert_int_equal(json_array_size(json_object_get(bundle, "entry")), 8);
    json_decref(bundle);

    assert_int_equal(ctl(p, "export", "--key-file", p->keys, "--format", "fhir-r5", "--session",
                         "appt-42", p->log, NULL),
                     0);
    bundle = json_load_file(p->out, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(bundle, "entry")), 3);
    json_decref(bundle);
    assert_int_equal(validate(p, p->out), 0);

    /* Nothing matches: a Bundle without entries, still valid. */
    assert_int_equal(ctl(p, "export", "--key-file", p->keys, "--format", "fhir-r5", "--since",
                         "2030-01-01", p->log, NULL),
                     0);
    assert_int_equal(validate(p, p->out), 0);
}

/* The fixture has teeth: R4 element names are rejected. */
static void test_schema_rejects_r4_shapes(void **state)
{
    struct pipeline *p = *state;
    char doc[160], path[160];
    json_t *bundle, *ev, *agent;

    snprintf(doc, sizeof(doc), "%s/bundle.json", p->dir);
    snprintf(path, sizeof(path), "%s/r4.json", p->dir);
    bundle = json_load_file(doc, 0, NULL);
    assert_non_null(bundle);
    ev = json_object_get(json_array_get(json_object_get(bundle, "entry"), 0), "resource");
    agent = json_array_get(json_object_get(ev, "agent"), 0);
    /* R4: agent.network.address, outcome a code, type a Coding. */
    json_object_set_new(agent, "network", json_pack("{s:s,s:s}", "address", "10.1.2.3",
                                                    "type", "2"));
    json_object_set_new(ev, "outcome", json_string("0"));
    json_object_set_new(ev, "type", json_pack("{s:s,s:s}", "system", DCM, "code", "110114"));
    assert_int_equal(json_dump_file(bundle, path, 0), 0);
    assert_int_equal(validate(p, path), 1);
    json_decref(bundle);

    bundle = json_load_file(doc, 0, NULL);
    ev = json_object_get(json_array_get(json_object_get(bundle, "entry"), 0), "resource");
    json_object_del(ev, "agent");
    json_object_del(json_object_get(ev, "source"), "observer");
    assert_int_equal(json_dump_file(bundle, path, 0), 0);
    assert_int_equal(validate(p, path), 1);
    json_decref(bundle);
}

/* The entries quietroomctl audit export prints with these options. */
static json_t *export_entries(struct pipeline *p, const char *format)
{
    json_t *bundle, *entries;
    int rc = format ? ctl(p, "export", "--key-file", p->keys, "--format", format, p->log, NULL)
                    : ctl(p, "export", "--key-file", p->keys, p->log, NULL);

    assert_int_equal(rc, 0);
    bundle = json_load_file(p->out, 0, NULL);
    assert_non_null(bundle);
    entries = json_incref(json_object_get(bundle, "entry"));
    json_decref(bundle);
    assert_int_equal(json_array_size(entries), 8);
    return entries;
}

/* R4 by default, under either of its names; R5 when asked. */
static void test_cli_formats(void **state)
{
    struct pipeline *p = *state;
    json_t *dflt = export_entries(p, NULL), *r4 = export_entries(p, "fhir-r4"),
           *fhir = export_entries(p, "fhir"), *r5 = export_entries(p, "fhir-r5");

    assert_true(json_equal(dflt, r4));
    assert_true(json_equal(dflt, fhir));
    assert_non_null(at(dflt, "0/resource/type/code"));
    assert_null(at(dflt, "0/resource/category"));
    assert_non_null(at(r5, "0/resource/category"));
    assert_null(at(r5, "0/resource/type"));
    assert_int_equal(ctl(p, "export", "--key-file", p->keys, "--format", "fhir-r6", p->log, NULL),
                     2);
    assert_output(p->err, "fhir-r4");
    json_decref(dflt);
    json_decref(r4);
    json_decref(fhir);
    json_decref(r5);
}

static void test_cli_tampered_and_torn(void **state)
{
    struct pipeline *p = *state;
    char *text = slurp(p->log), *at_line = text;

    /* Edit line 3 (the clinician's login) without resealing it. */
    for (int i = 0; i < 2; i++)
        at_line = strchr(at_line, '\n') + 1;
    memcpy(strstr(at_line, "dr-a"), "dr-b", 4);
    {
        FILE *fp = fopen(p->log, "w");

        fputs(text, fp);
        fclose(fp);
    }
    assert_int_equal(ctl(p, "verify", "--key-file", p->keys, p->log, NULL), 1);
    assert_output(p->err, "line 3 of");
    assert_output(p->err, ": edited: ");
    assert_int_equal(ctl(p, "export", "--key-file", p->keys, p->log, NULL), 1);
    assert_output(p->err, "refusing to export a broken chain");
    assert_int_equal(
        ctl(p, "export", "--key-file", p->keys, "--format", "fhir-r5", "--force", p->log, NULL),
        0);
    assert_int_equal(validate(p, p->out), 0);

    /* Undo the edit; a crash leaves half a line at the end. */
    memcpy(strstr(at_line, "dr-b"), "dr-a", 4);
    {
        FILE *fp = fopen(p->log, "w");

        fputs(text, fp);
        fclose(fp);
    }
    append(p->log, "{\"type\":\"participant.left\",\"action\":\"E\",\"out");
    assert_int_equal(ctl(p, "verify", "--key-file", p->keys, p->log, NULL), 3);
    assert_output(p->err, ": torn: ");
    assert_int_equal(ctl(p, "export", "--key-file", p->keys, p->log, NULL), 0);
    {
        FILE *fp = fopen(p->log, "w");

        fputs(text, fp);
        fclose(fp);
    }
    free(text);
}

static void test_cli_show_and_usage(void **state)
{
    struct pipeline *p = *state;

    assert_int_equal(
        ctl(p, "show", "--session", "appt-42", "--key-file", p->keys, p->log, NULL), 0);
    assert_output(p->out, "auth.success");
    assert_output(p->out, "dr-a (clinician)");
    assert_output(p->out, "p-77 (patient) by dr-a (clinician)");
    assert_int_equal(ctl(p, "show", "--session", "appt-43", p->log, NULL), 0);
    assert_output(p->out, "minor failure: token_expired");
    assert_output(p->err, "seals not checked");
    assert_int_equal(ctl(p, "verify", p->log, NULL), 2);
    assert_output(p->err, "--key-file is required");
    assert_int_equal(ctl(p, "verify", "--key-file", p->keys, NULL), 2);
    assert_int_equal(ctl(p, "export", "--key-file", p->keys, "--format", "csv", p->log, NULL), 2);
    assert_int_equal(ctl(p, "export", "--key-file", p->keys, "--since", "noon", p->log, NULL), 2);
    assert_int_equal(ctl(p, "verify", "--session", "x", "--key-file", p->keys, p->log, NULL), 2);
    assert_int_equal(ctl(p, "frobnicate", NULL), 2);
    assert_int_equal(ctl(p, "verify", "--key-file", "/nonexistent", p->log, NULL), 1);
}

int main(int argc, char **argv)
{
    static struct pipeline p;
    const struct CMUnitTest unit[] = {
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_login),
        cmocka_unit_test(test_attack_is_security_alert),
        cmocka_unit_test(test_leg_down),
        cmocka_unit_test(test_agents_by_and_application),
        cmocka_unit_test(test_writer_records),
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_hostile_records),
        cmocka_unit_test(test_bundle),
        cmocka_unit_test(test_r4_login),
        cmocka_unit_test(test_r4_attack_and_outcomes),
        cmocka_unit_test(test_r4_leg_down),
        cmocka_unit_test(test_r4_requestor),
        cmocka_unit_test(test_r4_r5_same_codes),
    };
    /* In order: the second reads the Bundle the first exported. */
    const struct CMUnitTest schema[] = {
        {.name = "test_export_validates", .test_func = test_export_validates, .initial_state = &p},
        {.name = "test_schema_rejects_r4_shapes", .test_func = test_schema_rejects_r4_shapes,
         .initial_state = &p},
        {.name = "test_cli_formats", .test_func = test_cli_formats, .initial_state = &p},
        {.name = "test_cli_tampered_and_torn", .test_func = test_cli_tampered_and_torn,
         .initial_state = &p},
        {.name = "test_cli_show_and_usage", .test_func = test_cli_show_and_usage,
         .initial_state = &p},
    };

    if (argc == 5 && strcmp(argv[1], "--schema") == 0) {
        void *state = &p;
        int rc;

        p.python = argv[2];
        p.script = argv[3];
        p.schema = argv[4];
        if (pipeline_setup(&state) != 0)
            return 1;
        rc = _cmocka_run_group_tests("audit_fhir_schema", schema,
                                     sizeof(schema) / sizeof(schema[0]), NULL, NULL);
        return pipeline_teardown(&state) != 0 ? 1 : rc;
    }
    return cmocka_run_group_tests(unit, NULL, NULL);
}
