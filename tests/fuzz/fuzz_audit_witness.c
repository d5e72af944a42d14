/* The witness line parser (audit_witness_parse_line) on arbitrary bytes: a
 * witness file is what a syslog peer sent. Beyond not crashing or reading
 * past the end: every span lies inside the line, in header order, MSG runs
 * to the end (but for a CR), the PRI is in range, the SD has its shape,
 * and the MSG goes through the seal check as the verifier hands it on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quietroom/audit/audit_record.h"
#include "quietroom/audit/audit_witness.h"
#include "quietroom/base/hmac.h"
#include "quietroom/base/keyring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz__inside(const char *buf, size_t len, const char **at,
                         struct audit_witness_span s)
{
    if (s.p == NULL || s.p < *at || s.len > len || s.p + s.len > buf + len)
        abort();
    *at = s.p + s.len;
}

static void fuzz__shape(const char *buf, size_t len, const struct audit_witness_line *l)
{
    const struct audit_witness_span order[] = {l->time, l->host, l->app, l->procid,
                                               l->msgid, l->sd, l->msg};
    const char *at = buf;
    size_t end = len > 0 && buf[len - 1] == '\r' ? len - 1 : len;

    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        fuzz__inside(buf, len, &at, order[i]);
    if (l->pri > 191 || l->version == 0 || l->time.len == 0 || l->sd.len == 0 ||
        (l->sd.p[0] != '-' && l->sd.p[0] != '[') ||
        (l->sd.p[0] == '[' && l->sd.p[l->sd.len - 1] != ']') ||
        l->msg.p + l->msg.len != buf + end)
        abort();
}

static void fuzz__open(const struct audit_witness_line *l)
{
    static struct keyring kr;
    static struct hmac *h;
    struct audit_line al;
    char err[64];

    if (h == NULL) {
        if (keyring_parse("1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
                          &kr, err, sizeof(err)) != 0 ||
            (h = hmac_new(HMAC_SHA256)) == NULL)
            abort();
    }
    audit_record_open(l->msg.p, l->msg.len, &kr, h, &al);
    audit_line_free(&al);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so that ASan sees any read past the line. */
    char *buf = malloc(size ? size : 1);
    struct audit_witness_line l;

    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    if (audit_witness_parse_line(buf, size, &l) == 0) {
        fuzz__shape(buf, size, &l);
        fuzz__open(&l);
    }
    free(buf);
    return 0;
}
