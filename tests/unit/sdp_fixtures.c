/* The fixture of the SDP tests (see sdp_fixtures.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quietroom/wire/sdp.h"

#include "sdp_fixtures.h"

const struct sdp_candidate doc_cands[2] = {{"203.0.113.7", 3478, SDP_TRANSPORT_UDP},
                                           {"2001:db8::7", 3478, SDP_TRANSPORT_UDP}};

const struct sdp_rewrite_params doc_params = {UFRAG, PWD, doc_cands, 2};

/* Large buffers are static: several of them would not fit a test's stack. */
char in_text[TEXT_CAP];
char out_text[TEXT_CAP];

/* --- helpers ----------------------------------------------------------- */

size_t load_fixture(const char *name, char *buf, size_t cap)
{
    char path[1024];
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/tests/fixtures/sdp/%s", QR_SOURCE_DIR, name);
    f = fopen(path, "rb");
    assert_non_null(f);
    n = fread(buf, 1, cap - 1, f);
    assert_int_equal(ferror(f), 0);
    fclose(f);
    assert_true(n > 0 && n < cap - 1);
    buf[n] = '\0';
    return n;
}

/* Copies the next line of a NUL-terminated text (LF or CRLF) into line and
 * returns where the following one starts, or NULL at the end. */
const char *next_line(const char *p, char *line)
{
    const char *nl;
    size_t n;

    if (p == NULL || *p == '\0')
        return NULL;
    nl = strchr(p, '\n');
    n = nl != NULL ? (size_t)(nl - p) : strlen(p);
    assert_true(n < LINE_CAP);
    memcpy(line, p, n);
    line[n] = '\0';
    if (n > 0 && line[n - 1] == '\r')
        line[n - 1] = '\0';
    return nl != NULL ? nl + 1 : p + n;
}

bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}
