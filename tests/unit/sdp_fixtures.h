/* Shared by test_sdp.c and test_sdp_parse.c: the relay's credentials and
 * candidates, the large text buffers, and reading the browsers' SDP
 * fixtures line by line. */
#ifndef QR_TEST_SDP_FIXTURES_H
#define QR_TEST_SDP_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>

#include "quietroom/wire/sdp.h"

#define UFRAG "AQFrBXvjdtUpymHCiyoAAABlX6iR"
#define PWD "JBpYAkO6ZAxG14tMPB0iF6qMdFFO/JFf"
#define TEXT_CAP (QR_SDP_MAX + 1)
#define LINE_CAP 8192

/* Builds a line of hand-made SDP. */
#define L(s) s "\r\n"

extern const struct sdp_candidate doc_cands[2];
extern const struct sdp_rewrite_params doc_params;

extern char in_text[TEXT_CAP];
extern char out_text[TEXT_CAP];

/* The fixture file name (tests/fixtures/sdp/) read into buf; returns its length. */
size_t load_fixture(const char *name, char *buf, size_t cap);
/* Copies the next line of a NUL-terminated text (LF or CRLF) into line and
 * returns where the following one starts, or NULL at the end. */
const char *next_line(const char *p, char *line);
bool starts(const char *s, const char *prefix);

#endif
