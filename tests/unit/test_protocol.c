/* The signaling message parser: a table of messages and what each must
 * give, down to the field named in the error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol.h"
#include "quietroom/base/limits.h"

struct row {
    const char *text;
    enum proto_error want;
    enum msg_type type;
    const char *field;
};

static const struct row rows[] = {
    {"{\"type\":\"auth\",\"token\":\"a.b.c\"}", PROTO_OK, MSG_AUTH, NULL},
    {"{\"type\":\"resume\",\"resume\":\"abc\"}", PROTO_OK, MSG_RESUME, NULL},
    {"{\"type\":\"admit\",\"participant\":\"p2\"}", PROTO_OK, MSG_ADMIT, NULL},
    {"{\"type\":\"decline\",\"participant\":\"p2\"}", PROTO_OK, MSG_DECLINE, NULL},
    {"{\"type\":\"remove\",\"participant\":\"p2\"}", PROTO_OK, MSG_REMOVE, NULL},
    {"{\"type\":\"end\"}", PROTO_OK, MSG_END, NULL},
    {"{\"type\":\"offer\",\"to\":\"p1\",\"sdp\":\"v=0\"}", PROTO_OK, MSG_OFFER, NULL},
    {"{\"type\":\"answer\",\"to\":\"p1\",\"sdp\":\"v=0\"}", PROTO_OK, MSG_ANSWER, NULL},
    {"{\"type\":\"candidate\",\"candidate\":\"x\"}", PROTO_OK, MSG_CANDIDATE, NULL},
    {"{\"type\":\"leave\",\"extra\":1}", PROTO_OK, MSG_LEAVE, NULL},
    {"{\"type\":\"ping\"}", PROTO_OK, MSG_PING, NULL},
    {"", PROTO_BAD_JSON, 0, NULL},
    {"[1,2]", PROTO_BAD_JSON, 0, NULL},
    {"\"auth\"", PROTO_BAD_JSON, 0, NULL},
    {"{\"type\":\"ping\"", PROTO_BAD_JSON, 0, NULL},
    {"{\"type\":\"ping\",\"type\":\"end\"}", PROTO_BAD_JSON, 0, NULL},
    {"{\"type\":\"ping\"} trailing", PROTO_BAD_JSON, 0, NULL},
    {"{}", PROTO_UNKNOWN_TYPE, 0, NULL},
    {"{\"type\":7}", PROTO_UNKNOWN_TYPE, 0, NULL},
    {"{\"type\":\"AUTH\",\"token\":\"x\"}", PROTO_UNKNOWN_TYPE, 0, NULL},
    {"{\"type\":\"auth\"}", PROTO_MISSING_FIELD, 0, "token"},
    {"{\"type\":\"auth\",\"token\":5}", PROTO_BAD_FIELD, 0, "token"},
    {"{\"type\":\"auth\",\"token\":\"\"}", PROTO_BAD_FIELD, 0, "token"},
    /* jansson refuses NUL inside strings (no JSON_ALLOW_NUL). */
    {"{\"type\":\"auth\",\"token\":\"a\\u0000b\"}", PROTO_BAD_JSON, 0, NULL},
    {"{\"type\":\"admit\",\"participant\":\"p123456789012345678\"}", PROTO_BAD_FIELD, 0,
     "participant"},
    {"{\"type\":\"offer\",\"sdp\":\"v=0\"}", PROTO_MISSING_FIELD, 0, "to"},
    {"{\"type\":\"offer\",\"to\":\"p1\"}", PROTO_MISSING_FIELD, 0, "sdp"},
    {"{\"type\":\"answer\",\"to\":\"p1\",\"sdp\":null}", PROTO_BAD_FIELD, 0, "sdp"},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct msg m;
        enum proto_error got = protocol_parse(rows[i].text, strlen(rows[i].text), &m);

        if (got != rows[i].want)
            fail_msg("%s: got %s, want %s", rows[i].text, protocol_error_code(got),
                     protocol_error_code(rows[i].want));
        if (got == PROTO_OK) {
            assert_int_equal(m.type, rows[i].type);
            msg_free(&m);
        } else if (rows[i].field != NULL) {
            assert_non_null(m.field);
            assert_string_equal(m.field, rows[i].field);
        }
    }
}

static void test_sdp_size_limit(void **state)
{
    size_t n = QR_SDP_MAX + 1;
    char *text = malloc(n + 64);
    struct msg m;
    size_t head;

    (void)state;

    strcpy(text, "{\"type\":\"offer\",\"to\":\"p1\",\"sdp\":\"");
    head = strlen(text);
    memset(text + head, 'v', n);
    strcpy(text + head + n, "\"}");
    assert_int_equal(protocol_parse(text, strlen(text), &m), PROTO_BAD_FIELD);
    assert_string_equal(m.field, "sdp");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_sdp_size_limit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
