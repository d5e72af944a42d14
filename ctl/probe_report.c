/* What a probe found, for a person (text), a script (JSON) and Prometheus
 * (node_exporter textfile collector). Only figures, the stage and the relay
 * address: no visit id, participant id, token or SDP. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "probe.h"
#include "quietroom/ops/metrics.h"

void probe_report_text(const struct probe_result *r, uint32_t seconds)
{
    /* A failure is the one line cmd_probe writes to stderr; figures, if any, here. */
    if (r->failed == PROBE_OK)
        printf("probe ok: %u s call through relay %s over %s (%s)\n", (unsigned)seconds,
               r->relay[0] ? r->relay : "?", r->transport ? r->transport : "udp",
               r->srtp_profile);
    if (!r->media_ran)
        return;
    printf("  setup %.3f s, rtt %.1f ms, loss %.2f %%, tone %s\n", r->setup_s, r->rtt_s * 1e3,
           r->loss * 100.0, r->tone ? "detected both ways" : "NOT detected");
    for (int i = 0; i < 2; i++)
        printf("  %-9s sent %llu, received %llu, lost %llu, heard %.0f Hz\n",
               i == 0 ? "clinician" : "patient", (unsigned long long)r->side[i].rtp_sent,
               (unsigned long long)r->side[i].rtp_received,
               (unsigned long long)r->side[i].rtp_lost, r->side[i].tone_hz);
}

static json_t *probe__side_json(const struct probe_side *s)
{
    return json_pack("{s:I,s:I,s:I,s:f,s:f}", "rtp_sent", (json_int_t)s->rtp_sent,
                     "rtp_received", (json_int_t)s->rtp_received, "rtp_lost",
                     (json_int_t)s->rtp_lost, "tone_hz", s->tone_hz, "rtt_seconds", s->rtt_s);
}

int probe_report_json(const struct probe_result *r, uint32_t seconds)
{
    json_t *j = json_pack("{s:b,s:s,s:s,s:i,s:I}", "success", r->failed == PROBE_OK, "stage",
                          probe_stage_name(r->failed), "reason", r->reason, "seconds",
                          (int)seconds, "finished", (json_int_t)r->finished_unix);
    char *text;

    if (j == NULL)
        return -1;
    if (r->relay[0] != '\0')
        json_object_set_new(j, "relay", json_string(r->relay));
    if (r->transport != NULL)
        json_object_set_new(j, "transport", json_string(r->transport));
    if (r->srtp_profile[0] != '\0')
        json_object_set_new(j, "srtp_profile", json_string(r->srtp_profile));
    if (r->media_ran) {
        json_object_set_new(j, "setup_seconds", json_real(r->setup_s));
        json_object_set_new(j, "rtt_seconds", json_real(r->rtt_s));
        json_object_set_new(j, "loss_ratio", json_real(r->loss));
        json_object_set_new(j, "clinician", probe__side_json(&r->side[0]));
        json_object_set_new(j, "patient", probe__side_json(&r->side[1]));
    }
    json_object_set_new(j, "tone_detected", json_boolean(r->tone));
    text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (text == NULL)
        return -1;
    puts(text);
    free(text);
    return 0;
}

/* The exposition: NaN where the probe did not get far enough to measure. */
static void probe__metrics(const struct probe_result *r, struct metrics *m)
{
    bool ran = r->media_ran;

    metrics_gauge(m, "quietroom_probe_success", "1 if the last synthetic call succeeded.",
                  r->failed == PROBE_OK);
    metrics_family(m, "quietroom_probe_failed_stage", "gauge",
                   "1 for the stage at which the last synthetic call failed.");
    for (int s = PROBE_LOCAL; s <= PROBE_TIMEOUT; s++)
        metrics_u64(m, "quietroom_probe_failed_stage", "stage",
                    probe_stage_name((enum probe_stage)s), r->failed == (enum probe_stage)s);
    metrics_gauge(m, "quietroom_probe_setup_seconds",
                  "Joining signaling to audio arriving at both ends.", ran ? r->setup_s : NAN);
    metrics_gauge(m, "quietroom_probe_rtt_seconds",
                  "Round trip through the relay as RTCP measured it.",
                  ran && r->rtt_s > 0 ? r->rtt_s : NAN);
    metrics_gauge(m, "quietroom_probe_loss_ratio", "RTP packets lost, both directions.",
                  ran ? r->loss : NAN);
    metrics_gauge(m, "quietroom_probe_tone_detected", "1 if each end decoded the other's tone.",
                  r->tone);
    metrics_gauge(m, "quietroom_probe_last_run_timestamp_seconds",
                  "When the last synthetic call finished.", (double)r->finished_unix);
}

static int probe__write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int probe_report_prometheus(const struct probe_result *r, const char *path, char *err,
                            size_t errlen)
{
    struct metrics m;
    char tmp[4096], *text = NULL;
    size_t len = 0;
    int fd = -1, ret = -1;

    metrics_init(&m);
    probe__metrics(r, &m);
    if ((text = metrics_take(&m, &len)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        snprintf(err, errlen, "--prometheus path too long");
        goto out;
    }
    /* The collector reads *.prom only: the .tmp name is never half-read. */
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0 ||
        probe__write_all(fd, text, len) != 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    ret = close(fd);
    fd = -1;
    if (ret != 0 || rename(tmp, path) != 0) {
        ret = -1;
        snprintf(err, errlen, "cannot replace %s: %s", path, strerror(errno));
        goto out;
    }
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    if (ret != 0)
        unlink(tmp);
    metrics_free(&m);
    free(text);
    return ret;
}
