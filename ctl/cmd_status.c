/* quietroomctl status: the cluster as signaling sees it when it picks a
 * relay — each relay's control endpoint asked for its stats twice, an
 * interval apart, so that packet rates are rates and not totals since
 * start. A relay that does not answer is down; draining is not down (it
 * still carries its calls), but it takes no new ones. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "quietroom/base/clock.h"
#include "quietroom/wire/ctlproto.h"
#include "quietroom/base/limits.h"

#define STATUS_CALL_TIMEOUT_MS 3000
#define STATUS_NAME_MAX 64
#define STATUS_ADDR_MAX 128
#define STATUS_INTERVAL_MS_MAX 60000

static const char status_usage[] =
    "usage: quietroomctl status --relay NAME=ADDR:PORT [--relay ...] --secret-file FILE\n"
    "         [--interval-ms N] [--json]\n"
    "Asks each relay's control endpoint (ADDR:PORT, as in signaling's relay lines)\n"
    "for its state and load and prints one row per relay: up, ready or draining,\n"
    "sessions, bound legs, packets per second in and out over --interval-ms\n"
    "(default 1000; 0 skips the rates) and the busiest worker. Exit 1 if any relay\n"
    "is down.\n";

struct status_relay {
    char name[STATUS_NAME_MAX];
    char addr[STATUS_ADDR_MAX];
    struct ctlclient *c;        /* owned; NULL once down */
    json_t *first, *last;       /* owned stats snapshots */
    uint64_t first_ms, last_ms;
    char error[160];
};

struct status_cli {
    struct status_relay relays[QR_STATUS_RELAYS_MAX];
    unsigned n;
    const char *secret_file;
    uint32_t interval_ms;
    bool json;
};

static int status__add(struct status_cli *s, const char *spec)
{
    struct status_relay *r = &s->relays[s->n];
    const char *eq = strchr(spec, '='), *addr = eq ? eq + 1 : spec;
    size_t nlen = eq ? (size_t)(eq - spec) : strlen(spec);

    if (s->n == QR_STATUS_RELAYS_MAX)
        return ctl_usage_error("status", "at most %d relays", QR_STATUS_RELAYS_MAX);
    if (nlen == 0 || nlen >= sizeof(r->name) || addr[0] == '\0' || strlen(addr) >= sizeof(r->addr))
        return ctl_usage_error("status", "--relay wants NAME=ADDR:PORT");
    memcpy(r->name, spec, nlen);
    r->name[nlen] = '\0';
    memcpy(r->addr, addr, strlen(addr) + 1);
    s->n++;
    return -1;
}

static int status__args(int argc, char **argv, struct status_cli *s)
{
    static const struct option opts[] = {
        {"relay", required_argument, NULL, 'r'},       {"secret-file", required_argument, NULL, 'f'},
        {"interval-ms", required_argument, NULL, 'i'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},              {0, 0, 0, 0},
    };
    int c, rc;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if ((rc = status__add(s, optarg)) >= 0)
                return rc;
            break;
        case 'f': s->secret_file = optarg; break;
        case 'j': s->json = true; break;
        case 'i':
            if (!ctl_parse_u32(optarg, 0, STATUS_INTERVAL_MS_MAX, &s->interval_ms))
                return ctl_usage_error("status", "--interval-ms: 0 to %d", STATUS_INTERVAL_MS_MAX);
            break;
        case 'h':
            fputs(status_usage, stdout);
            return CTL_OK;
        default:
            fputs(status_usage, stderr);
            return CTL_USAGE;
        }
    }
    if (optind < argc || s->n == 0)
        return ctl_usage_error("status", "at least one --relay NAME=ADDR:PORT is required");
    return -1;
}

/* One stats call; on failure the relay is marked down. */
static json_t *status__stats(struct status_relay *r, uint64_t *at_ms)
{
    json_t *req = json_pack("{s:s}", "op", "stats"), *resp, *stats = NULL;

    resp = ctlclient_call(r->c, req, STATUS_CALL_TIMEOUT_MS, r->error, sizeof(r->error));
    json_decref(req);
    if (resp != NULL && json_is_true(json_object_get(resp, "ok")))
        stats = json_incref(json_object_get(resp, "stats"));
    else if (resp != NULL)
        snprintf(r->error, sizeof(r->error), "the relay refused the stats call");
    json_decref(resp);
    *at_ms = clock_mono_ms();
    if (stats == NULL) {
        ctlclient_close(r->c);
        r->c = NULL;
    }
    return stats;
}

/* Connects to every relay and takes the first snapshot, then the second. */
static void status__collect(struct status_cli *s, const struct keyring *kr)
{
    struct timespec ts = {.tv_sec = s->interval_ms / 1000,
                          .tv_nsec = (long)(s->interval_ms % 1000) * 1000000L};

    for (unsigned i = 0; i < s->n; i++) {
        struct status_relay *r = &s->relays[i];

        r->c = ctlclient_connect(r->addr, kr, STATUS_CALL_TIMEOUT_MS, r->error, sizeof(r->error));
        if (r->c != NULL)
            r->first = status__stats(r, &r->first_ms);
    }
    if (s->interval_ms > 0)
        nanosleep(&ts, NULL);
    for (unsigned i = 0; i < s->n; i++) {
        struct status_relay *r = &s->relays[i];

        if (r->c != NULL && s->interval_ms > 0)
            r->last = status__stats(r, &r->last_ms);
        else if (r->c != NULL) {
            r->last = json_incref(r->first);
            r->last_ms = r->first_ms;
        }
    }
}

static json_int_t status__int(json_t *stats, const char *group, const char *name)
{
    return json_integer_value(json_object_get(json_object_get(stats, group), name));
}

/* Packets per second of a counter between the two snapshots; -1 unknown. */
static double status__rate(const struct status_relay *r, const char *name)
{
    double dt = (double)(r->last_ms - r->first_ms) / 1000.0;
    json_int_t d = status__int(r->last, "packets", name) - status__int(r->first, "packets", name);

    return dt > 0 && d >= 0 ? (double)d / dt : -1;
}

static double status__busiest(json_t *stats)
{
    json_t *v;
    size_t i;
    double max = 0;

    json_array_foreach(json_object_get(stats, "worker_busy"), i, v) {
        if (json_number_value(v) > max)
            max = json_number_value(v);
    }
    return max;
}

static const char *status__state(json_t *stats)
{
    if (stats == NULL)
        return "down";
    if (json_is_true(json_object_get(stats, "draining")))
        return "draining";
    return json_is_true(json_object_get(stats, "ready")) ? "ready" : "unhealthy";
}

static json_t *status__row(const struct status_relay *r)
{
    json_t *row = json_pack("{s:s,s:s,s:b,s:s}", "relay", r->name, "control", r->addr, "up",
                            r->last != NULL, "state", status__state(r->last));

    if (r->last == NULL) {
        json_object_set_new(row, "error", json_string(r->error));
        return row;
    }
    json_object_set_new(row, "sessions", json_integer(status__int(r->last, "sessions", "active")));
    json_object_set_new(row, "links", json_integer(status__int(r->last, "links", "active")));
    json_object_set_new(row, "legs", json_integer(status__int(r->last, "legs", "active")));
    if (r->last_ms > r->first_ms) {
        json_object_set_new(row, "pps_in", json_real(status__rate(r, "received")));
        json_object_set_new(row, "pps_out", json_real(status__rate(r, "forwarded")));
    }
    json_object_set_new(row, "worker_busy_max", json_real(status__busiest(r->last)));
    return row;
}

static void status__print_table(json_t *rows)
{
    json_t *row;
    size_t i;

    printf("%-16s %-4s %-9s %8s %8s %10s %10s %6s\n", "RELAY", "UP", "STATE", "SESSIONS",
           "LEGS", "PPS-IN", "PPS-OUT", "BUSY");
    json_array_foreach(rows, i, row) {
        const char *name = json_string_value(json_object_get(row, "relay"));

        if (!json_is_true(json_object_get(row, "up"))) {
            printf("%-16s %-4s %-9s %s\n", name, "no", "down",
                   json_string_value(json_object_get(row, "error")));
            continue;
        }
        printf("%-16s %-4s %-9s %8lld %8lld ", name, "yes",
               json_string_value(json_object_get(row, "state")),
               (long long)json_integer_value(json_object_get(row, "sessions")),
               (long long)json_integer_value(json_object_get(row, "legs")));
        if (json_object_get(row, "pps_in") != NULL)
            printf("%10.1f %10.1f ", json_real_value(json_object_get(row, "pps_in")),
                   json_real_value(json_object_get(row, "pps_out")));
        else
            printf("%10s %10s ", "-", "-");
        printf("%5.1f%%\n", 100.0 * json_real_value(json_object_get(row, "worker_busy_max")));
    }
}

/* Queries the relays and prints them; s is the parsed command line. */
static int status__run(struct status_cli *s)
{
    struct keyring kr;
    json_t *rows;
    int rc, down = 0;

    if ((rc = ctl_load_keys("status", s->secret_file, &kr)) != CTL_OK)
        return rc;
    status__collect(s, &kr);
    keyring_wipe(&kr);
    rows = json_array();
    for (unsigned i = 0; i < s->n; i++) {
        struct status_relay *r = &s->relays[i];

        down += r->last == NULL;
        json_array_append_new(rows, status__row(r));
        ctlclient_close(r->c);
        json_decref(r->first);
        json_decref(r->last);
    }
    if (s->json)
        ctl_print_json(rows);
    else {
        status__print_table(rows);
        json_decref(rows);
    }
    if (down > 0)
        return ctl_fail("status", "%d of %u relay(s) down", down, s->n);
    return CTL_OK;
}

int cmd_status(int argc, char **argv)
{
    struct status_cli *s = calloc(1, sizeof(*s)); /* 64 relays of buffers: not on the stack */
    int rc;

    if (s == NULL)
        return ctl_fail("status", "out of memory");
    s->interval_ms = QR_STATUS_INTERVAL_MS_DEFAULT;
    if ((rc = status__args(argc, argv, s)) == -1)
        rc = status__run(s);
    free(s);
    return rc;
}
