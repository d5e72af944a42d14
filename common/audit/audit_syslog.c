/* Audit records as RFC 5424 messages in RFC 5425 octet-counted frames. */
#include "quietroom/audit/audit_syslog.h"

#include <stdio.h>
#include <string.h>

int audit_syslog_severity(int outcome)
{
    if (outcome == 0)
        return 5;
    return outcome == 4 ? 4 : 3;
}

int audit_syslog_field_ok(const char *s, size_t max)
{
    size_t n = 0;

    if (s == NULL)
        return 0;
    for (; s[n] != '\0'; n++) {
        if (n == max || s[n] < 33 || s[n] > 126)
            return 0;
    }
    return n > 0;
}

static const char *audit_syslog__field(const char *s, size_t max)
{
    return audit_syslog_field_ok(s, max) ? s : "-";
}

size_t audit_syslog_frame(char *out, size_t cap, const struct audit_syslog_head *h, const char *msg,
                          size_t len)
{
    char head[AUDIT_SYSLOG_FRAME_MAX(0)], pid[24] = "-", count[24];
    int hn, cn;

    if (h->procid > 0)
        snprintf(pid, sizeof(pid), "%ld", h->procid);
    hn = snprintf(head, sizeof(head), "<%d>1 %s %s %s %s %s - ",
                  AUDIT_SYSLOG_FACILITY * 8 + (h->severity & 7),
                  audit_syslog__field(h->timestamp, AUDIT_SYSLOG_TIMESTAMP_MAX),
                  audit_syslog__field(h->hostname, AUDIT_SYSLOG_HOSTNAME_MAX),
                  audit_syslog__field(h->app, AUDIT_SYSLOG_APPNAME_MAX), pid,
                  audit_syslog__field(h->msgid, AUDIT_SYSLOG_MSGID_MAX));
    if (hn < 0 || (size_t)hn >= sizeof(head))
        return 0;
    cn = snprintf(count, sizeof(count), "%zu ", (size_t)hn + len);
    if (cn < 0 || (size_t)cn + (size_t)hn + len > cap)
        return 0;
    memcpy(out, count, (size_t)cn);
    memcpy(out + cn, head, (size_t)hn);
    memcpy(out + cn + hn, msg, len);
    return (size_t)cn + (size_t)hn + len;
}
