# Audit log verification and FHIR export. Included from tests/unit/CMakeLists.txt.
qr_test(test_audit_verify test_audit_verify.c audit_verify_fixtures.c LIBS qr_audit_tools
        LABELS unit)
qr_test(test_audit_verify_files test_audit_verify_files.c audit_verify_fixtures.c
        LIBS qr_audit_tools LABELS unit)
qr_test(test_audit_fhir test_audit_fhir.c LIBS qr_audit_tools LABELS unit)

# The export as an EHR would receive it: quietroomctl exports a log the test
# builds, and tests/fhir_validate.py checks the Bundle against the FHIR R5
# AuditEvent schema fixture (needs python3-jsonschema: deploy/deps.sh --test).
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME test_audit_fhir_schema COMMAND test_audit_fhir --schema
         ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/fhir_validate.py
         ${PROJECT_SOURCE_DIR}/tests/fixtures/fhir/auditevent-r5.schema.json)
set_tests_properties(test_audit_fhir_schema PROPERTIES TIMEOUT 60 LABELS unit)
add_dependencies(test_audit_fhir quietroomctl)

# The shape of a damaged sealed line (audit_json), on its own.
qr_test(test_audit_json test_audit_json.c LIBS qr_audit_tools LABELS unit)

# Shipping to a syslog collector over TLS: a real OpenSSL collector in the
# test process, certificates from the openssl command.
qr_test(test_audit_ship test_audit_ship.c LIBS qr_audit LABELS unit)

# Checking a chain against a syslog collector's copy (quietroomctl audit
# verify --witness), the CLI included.
qr_test(test_audit_witness test_audit_witness.c LIBS qr_audit_tools LABELS unit)
add_dependencies(test_audit_witness quietroomctl)
