/* Recognising what is left of a sealed audit line that no longer parses as
 * JSON, from its text alone: the start of one (a crash cut it short) or the
 * end of one (its mac member survived an edit). The verifier uses the
 * answer to tell a crash from tampering. Pure functions of (buf, len). */
#ifndef QUIETROOM_AUDIT_JSON_H
#define QUIETROOM_AUDIT_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "quietroom/audit/audit_record.h"

/* Longer lines are never records; neither recogniser accepts one. */
#define AUDIT_JSON_LINE_MAX (1024 * 1024)
/* Brackets open at once; the writer nests far less, and deeper text is
 * taken for damage rather than tracked without bound. */
#define AUDIT_JSON_DEPTH_MAX 32

/* True if buf could be the first len bytes of a sealed line, short of the
 * whole: one JSON object whose last top-level member is the seal,
 * "mac":"<AUDIT_MAC_B64 - 1 base64 characters>", cut anywhere before its
 * closing '}'. False for a complete object and for any byte the grammar
 * forbids where it stands. */
bool audit_json_is_fragment(const char *buf, size_t len);

/* True if buf ends in ,"mac":"<AUDIT_MAC_B64 - 1 base64 characters>"}:
 * then the seal survived and mac (AUDIT_MAC_B64 bytes) gets it, NUL
 * included. Untouched when false. */
bool audit_json_tail_mac(const char *buf, size_t len, char *mac);

#endif
