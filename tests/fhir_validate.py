#!/usr/bin/env python3
"""Checks a FHIR JSON document against a JSON Schema (draft 2020-12) fixture.

usage: fhir_validate.py SCHEMA DOCUMENT
Exit 0 valid, 1 invalid (each error on stderr with its JSON path), 2 usage or
jsonschema missing (Debian: python3-jsonschema, installed by deploy/deps.sh --test).
"""
import json
import os
import sys

try:
    import jsonschema
except ImportError:
    # The first python3 on PATH may be another installation than Debian's,
    # which deploy/deps.sh gives the module to.
    debian = "/usr/bin/python3"
    if os.path.exists(debian) and os.path.realpath(sys.executable) != os.path.realpath(debian) \
            and not os.environ.get("QR_FHIR_VALIDATE_REEXEC"):
        os.environ["QR_FHIR_VALIDATE_REEXEC"] = "1"
        os.execv(debian, [debian] + sys.argv)
    print("fhir_validate.py: the jsonschema module is missing "
          "(apt-get install python3-jsonschema, or deploy/deps.sh --test)", file=sys.stderr)
    sys.exit(2)

MAX_REPORTED = 25


def path_of(error):
    return "/".join(str(p) for p in error.absolute_path) or "(document)"


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    with open(argv[2], encoding="utf-8") as f:
        document = json.load(f)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(document),
                    key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors[:MAX_REPORTED]:
        print(f"{path_of(error)}: {error.message}", file=sys.stderr)
    if len(errors) > MAX_REPORTED:
        print(f"... and {len(errors) - MAX_REPORTED} more", file=sys.stderr)
    if not errors:
        entries = document.get("entry", []) if isinstance(document, dict) else []
        print(f"valid: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
