/* quietroomctl audit: verify an audit log's chain (against the copy a syslog
 * collector keeps, with --witness), export it as FHIR R4 (or R5)
 * AuditEvents for an EHR, or show one session's timeline to a person. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "quietroom/audit/audit_fhir.h"
#include "quietroom/audit/audit_verify.h"
#include "quietroom/audit/audit_witness.h"
#include "quietroom/base/clock.h"

/* Exit code of verify (and show) when the chain is intact but for torn
 * lines a crash left: reported, not tampering. */
#define CTL_AUDIT_TORN 3
/* Lines longer than this are not records (show without a key). */
#define AUDIT_SHOW_LINE_MAX (1024 * 1024)
/* Columns of the timeline are cut to this many bytes. */
#define AUDIT_SHOW_FIELD 48

static const char audit_usage[] =
    "usage: quietroomctl audit verify --key-file KEYS [--witness WITNESS] FILE...\n"
    "       quietroomctl audit export --key-file KEYS [--format fhir-r4|fhir-r5]\n"
    "                                 [--session ID] [--since TIME] [--force] FILE...\n"
    "       quietroomctl audit show [--session ID] [--key-file KEYS] FILE...\n"
    "FILE... is the active file and its rotated files (FILE.YYYYMMDDTHHMMSSZ), in any\n"
    "order. KEYS is the audit key file (\"ID HEX\" lines; every key verifies).\n"
    "verify  checks every seal and link; names the first bad line and why. Exit 0\n"
    "        intact, 1 broken (edited, deleted, reordered, inserted, truncated, gap,\n"
    "        wrong or unknown key, unreadable), 3 intact apart from torn lines a\n"
    "        crash left (each reported), 2 usage.\n"
    "        --witness: WITNESS is the collector's copy (rsyslog's RFC 5424 file\n"
    "        template, both daemons mixed): each of its records of this chain's\n"
    "        node must be present and identical here; records after the local\n"
    "        end are reported as truncated with their seq range (exit 1).\n"
    "export  verifies, then prints a FHIR Bundle (type collection) of AuditEvents:\n"
    "        --format fhir-r4 (the default; \"fhir\" is the same), or fhir-r5;\n"
    "        --session keeps one session (exact match), --since keeps records at or\n"
    "        after an RFC 3339 time. Refuses a broken chain unless --force (which\n"
    "        exports only records whose seals verify).\n"
    "show    prints a timeline, one record a line: time, type, who, address,\n"
    "        outcome. With --key-file only verified records are shown.\n";

enum audit_opt_bit {
    OPT_KEY = 1 << 0,
    OPT_FORMAT = 1 << 1,
    OPT_SESSION = 1 << 2,
    OPT_SINCE = 1 << 3,
    OPT_FORCE = 1 << 4,
    OPT_WITNESS = 1 << 5,
};

struct audit_opts {
    const char *cmd;             /* "audit verify" ... */
    const char *key_file, *format, *session, *since, *witness;
    bool force;
    const char *const *files;    /* into argv */
    size_t nfiles;
};

/* Parses the options; allowed says which the subcommand takes. Returns -1
 * to go on, or an exit code. */
static int audit__options(int argc, char **argv, unsigned allowed, struct audit_opts *o)
{
    static const struct option opts[] = {
        {"key-file", required_argument, NULL, 'k'}, {"format", required_argument, NULL, 'f'},
        {"session", required_argument, NULL, 's'},  {"since", required_argument, NULL, 't'},
        {"force", no_argument, NULL, 'F'},          {"help", no_argument, NULL, 'h'},
        {"witness", required_argument, NULL, 'w'},  {0, 0, 0, 0},
    };
    static const struct {
        int c;
        unsigned bit;
        const char *name;
    } bits[] = {
        {'k', OPT_KEY, "--key-file"}, {'f', OPT_FORMAT, "--format"},
        {'s', OPT_SESSION, "--session"}, {'t', OPT_SINCE, "--since"},
        {'F', OPT_FORCE, "--force"},    {'w', OPT_WITNESS, "--witness"},
    };
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(audit_usage, stdout);
            return CTL_OK;
        }
        if (c == '?')
            return CTL_USAGE;
        for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
            if (bits[i].c == c && !(allowed & bits[i].bit))
                return ctl_usage_error(o->cmd, "%s is not an option of this command",
                                       bits[i].name);
        }
        if (c == 'k')
            o->key_file = optarg;
        else if (c == 'f')
            o->format = optarg;
        else if (c == 's')
            o->session = optarg;
        else if (c == 't')
            o->since = optarg;
        else if (c == 'F')
            o->force = true;
        else if (c == 'w')
            o->witness = optarg;
    }
    o->files = (const char *const *)argv + optind;
    o->nfiles = optind < argc ? (size_t)(argc - optind) : 0;
    if (o->nfiles == 0)
        return ctl_usage_error(o->cmd, "no audit file given");
    if (o->session != NULL && o->session[0] == '\0')
        return ctl_usage_error(o->cmd, "--session: empty");
    return -1;
}

static int audit__keys(const struct audit_opts *o, struct keyring *kr)
{
    char err[256];

    if (o->key_file == NULL)
        return ctl_usage_error(o->cmd, "--key-file is required");
    if (keyring_load(o->key_file, kr, err, sizeof(err)) != 0)
        return ctl_fail(o->cmd, "%s", err);
    return CTL_OK;
}

/* Copies s for a terminal: control bytes (escape sequences) become '?'. */
static const char *audit__clean(const char *s, char *out, size_t len)
{
    size_t n = 0;

    for (; s != NULL && *s && n + 1 < len; s++)
        out[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    out[n] = '\0';
    return n > 0 ? out : "-";
}

/* Reports a problem where it is; returns the exit code for it. */
static int audit__problem(const char *cmd, const struct audit_report *r)
{
    const char *code = audit_problem_code(r->problem);

    if (r->problem == AUDIT_OK)
        return CTL_OK;
    if (r->line > 0)
        ctl_fail(cmd, "line %llu of %s: %s: %s", (unsigned long long)r->line, r->file, code,
                 r->why);
    else
        ctl_fail(cmd, "%s: %s: %s", r->file, code, r->why);
    if (r->problem == AUDIT_TORN && r->torn > 1)
        fprintf(stderr, "quietroomctl %s: %u torn lines in all, each recovered or at the end\n",
                cmd, r->torn);
    return audit_problem_is_failure(r->problem) ? CTL_FAILED : CTL_AUDIT_TORN;
}

/* verdict: the local chain's, or the witness's when it found tampering. */
static void audit__summary(const struct audit_report *r, enum audit_problem verdict_of)
{
    const char *verdict = verdict_of == AUDIT_OK     ? "intact"
                          : verdict_of == AUDIT_TORN ? "intact apart from torn lines"
                                                     : "broken";

    printf("%s: %zu file(s), %llu record(s), seq %llu-%llu; %s\n", verdict, r->files,
           (unsigned long long)r->records, (unsigned long long)r->first_seq,
           (unsigned long long)r->last_seq,
           r->clean ? "ends with audit.close (stopped cleanly)"
                    : "no audit.close at the end (still being written, or stopped without "
                      "closing)");
}

/* --- verify ---------------------------------------------------------------------------- */

/* Local files and witness together: tampering either finds beats torn
 * lines (a cut end is a torn line to the chain alone). */
static enum audit_problem audit__overall(const struct audit_report *r,
                                         const struct audit_witness_report *w)
{
    if (audit_problem_is_failure(r->problem) || w == NULL ||
        !audit_problem_is_failure(w->problem))
        return r->problem;
    return w->problem;
}

static int audit__exit(enum audit_problem p)
{
    if (p == AUDIT_OK)
        return CTL_OK;
    return audit_problem_is_failure(p) ? CTL_FAILED : CTL_AUDIT_TORN;
}

/* What the witness held, failures or not. */
static void audit__witness_summary(const struct audit_witness_report *w)
{
    unsigned long long checked = w->matched + w->older + w->purged + w->truncated.count +
                                 w->edited.count + w->deleted.count;
    char node[AUDIT_WITNESS_NODE_LEN];

    if (!w->compared)
        return;
    printf("witness %s: %llu line(s): %llu record(s) of node %s (and %llu duplicate(s)), "
           "%llu of other nodes, %llu foreign line(s), %llu not verifying under the key file "
           "(not trusted)\n",
           w->file, (unsigned long long)w->lines, checked,
           audit__clean(w->node, node, sizeof(node)), (unsigned long long)w->duplicates,
           (unsigned long long)w->other_nodes, (unsigned long long)w->foreign,
           (unsigned long long)w->unverified);
    printf("witness %s: %llu present and identical here", w->file,
           (unsigned long long)w->matched);
    if (w->matched > 0)
        printf(" (seq %llu-%llu)", (unsigned long long)w->matched_lo,
               (unsigned long long)w->matched_hi);
    printf(", %llu older than the files given (not checked), %llu in stretches audit.purge "
           "vouches for\n",
           (unsigned long long)w->older, (unsigned long long)w->purged);
}

/* Reports each kind of disagreement: records changed or deleted inside the
 * local range, then those after its end. */
static void audit__witness_problems(const char *cmd, const struct audit_witness_report *w)
{
    const struct {
        const struct audit_witness_finding *f;
        enum audit_problem p;
    } kinds[] = {
        {&w->edited, AUDIT_EDITED},
        {&w->deleted, AUDIT_DELETED},
        {&w->truncated, AUDIT_TRUNCATED},
    };

    if (w->problem == AUDIT_UNREADABLE)
        ctl_fail(cmd, "witness %s: %s: %s", w->file, audit_problem_code(w->problem), w->why);
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        if (kinds[k].f->count > 0)
            ctl_fail(cmd, "line %llu of witness %s: %s: %s",
                     (unsigned long long)kinds[k].f->line, w->file,
                     audit_problem_code(kinds[k].p), kinds[k].f->why);
    }
}

static int audit__verify_witness(const struct audit_opts *o, const struct keyring *kr)
{
    struct audit_witness_report w;
    struct audit_report r;

    if (audit_witness_verify(o->witness, o->files, o->nfiles, kr, &r, &w) != 0)
        return ctl_fail(o->cmd, "%s", w.why);
    audit__summary(&r, audit__overall(&r, &w));
    audit__witness_summary(&w);
    audit__problem(o->cmd, &r);
    audit__witness_problems(o->cmd, &w);
    return audit__exit(audit__overall(&r, &w));
}

static int audit__verify(int argc, char **argv)
{
    struct audit_opts o = {.cmd = "audit verify"};
    struct audit_report r;
    struct keyring kr;
    int rc;

    if ((rc = audit__options(argc, argv, OPT_KEY | OPT_WITNESS, &o)) >= 0 ||
        (rc = audit__keys(&o, &kr)) != 0)
        return rc;
    if (o.witness != NULL) {
        rc = audit__verify_witness(&o, &kr);
        keyring_wipe(&kr);
        return rc;
    }
    rc = audit_verify_files(o.files, o.nfiles, &kr, &r);
    keyring_wipe(&kr);
    if (rc != 0)
        return ctl_fail(o.cmd, "%s", r.why);
    audit__summary(&r, r.problem);
    return audit__problem(o.cmd, &r);
}

/* --- export ------------------------------------------------------------------------------ */

struct audit_export {
    json_t *bundle;
    struct audit_fhir_filter filter;
    enum audit_fhir_release release;
    uint64_t exported;
};

/* --format names; "fhir" is the default's, R4 (what EHRs serve today). */
static const struct {
    const char *name;
    enum audit_fhir_release release;
} audit_formats[] = {
    {"fhir-r4", AUDIT_FHIR_R4},
    {"fhir", AUDIT_FHIR_R4},
    {"fhir-r5", AUDIT_FHIR_R5},
};

/* Returns 0 with *rel set, or -1 if name is no format. */
static int audit__format(const char *name, enum audit_fhir_release *rel)
{
    for (size_t i = 0; i < sizeof(audit_formats) / sizeof(audit_formats[0]); i++) {
        if (strcmp(name, audit_formats[i].name) == 0) {
            *rel = audit_formats[i].release;
            return 0;
        }
    }
    return -1;
}

static int audit__export_one(json_t *rec, const char *file, uint64_t line, void *arg)
{
    struct audit_export *x = arg;
    int rc = audit_fhir_add(x->bundle, rec, &x->filter, x->release);

    (void)file;
    (void)line;
    if (rc > 0)
        x->exported++;
    return rc < 0 ? -1 : 0;
}

static int audit__export_options(struct audit_opts *o, struct audit_export *x)
{
    x->release = AUDIT_FHIR_R4;
    if (o->format != NULL && audit__format(o->format, &x->release) != 0)
        return ctl_usage_error(o->cmd, "--format: \"fhir-r4\" (the default, also \"fhir\") or "
                                       "\"fhir-r5\" (FHIR AuditEvent)");
    x->filter.session = o->session;
    if (o->since != NULL) {
        if (audit_fhir_parse_time(o->since, &x->filter.since_ms) != 0)
            return ctl_usage_error(o->cmd,
                                   "--since: an RFC 3339 time (2026-11-24T07:00:00Z) or date");
        x->filter.has_since = true;
    }
    return -1;
}

static int audit__export(int argc, char **argv)
{
    struct audit_opts o = {.cmd = "audit export"};
    struct audit_export x = {0};
    struct audit_report r;
    struct keyring kr;
    int rc;

    if ((rc = audit__options(argc, argv, OPT_KEY | OPT_FORMAT | OPT_SESSION | OPT_SINCE | OPT_FORCE,
                             &o)) >= 0 ||
        (rc = audit__export_options(&o, &x)) >= 0 || (rc = audit__keys(&o, &kr)) != 0)
        return rc;
    if ((x.bundle = audit_fhir_bundle(clock_wall_ms())) == NULL) {
        keyring_wipe(&kr);
        return ctl_fail(o.cmd, "out of memory");
    }
    rc = audit_verify_walk(o.files, o.nfiles, &kr, audit__export_one, &x, &r);
    keyring_wipe(&kr);
    if (rc != 0) {
        json_decref(x.bundle);
        return ctl_fail(o.cmd, "%s", r.why);
    }
    rc = audit__problem(o.cmd, &r);
    if (rc == CTL_FAILED && !o.force) {
        json_decref(x.bundle);
        return ctl_fail(o.cmd, "refusing to export a broken chain (--force exports the records "
                               "whose seals verify)");
    }
    if (rc == CTL_FAILED)
        fprintf(stderr, "quietroomctl %s: exported anyway (--force): %llu record(s)\n", o.cmd,
                (unsigned long long)x.exported);
    ctl_print_json(x.bundle);
    return CTL_OK;
}

/* --- show ------------------------------------------------------------------------------- */

static const char *audit__str(const json_t *obj, const char *name)
{
    return json_string_value(json_object_get(obj, name));
}

/* "sub (role)", "relay leg a", "role" or the address's owner unknown. */
static void audit__who_one(const json_t *a, char *out, size_t len)
{
    const char *sub = audit__str(a, "sub"), *role = audit__str(a, "role");
    char s[AUDIT_SHOW_FIELD], r[AUDIT_SHOW_FIELD];

    if (sub != NULL && role != NULL)
        snprintf(out, len, "%s (%s)", audit__clean(sub, s, sizeof(s)),
                 audit__clean(role, r, sizeof(r)));
    else if (sub != NULL)
        snprintf(out, len, "%s", audit__clean(sub, s, sizeof(s)));
    else if (role != NULL && strncmp(role, "leg-", 4) == 0)
        snprintf(out, len, "relay leg %s", audit__clean(role + 4, r, sizeof(r)));
    else
        snprintf(out, len, "%s", role ? audit__clean(role, r, sizeof(r)) : "unidentified");
}

static void audit__who(const json_t *rec, char *out, size_t len)
{
    const json_t *agents = json_object_get(rec, "agents"), *a, *by = json_object_get(rec, "by");
    size_t i, n = 0;
    char one[2 * AUDIT_SHOW_FIELD + 8];

    out[0] = '\0';
    json_array_foreach(agents, i, a)
    {
        audit__who_one(a, one, sizeof(one));
        n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%s%s", n ? ", " : "", one);
    }
    if (json_is_object(by)) {
        audit__who_one(by, one, sizeof(one));
        n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%sby %s", n ? " " : "", one);
    }
    if (n == 0)
        snprintf(out, len, "-");
}

static const char *audit__address(const json_t *rec)
{
    const json_t *agents = json_object_get(rec, "agents"), *a;
    size_t i;

    json_array_foreach(agents, i, a)
    {
        if (audit__str(a, "address") != NULL)
            return audit__str(a, "address");
    }
    return NULL;
}

static const char *audit__outcome(const json_t *rec)
{
    switch (json_integer_value(json_object_get(rec, "outcome"))) {
    case 0:
        return json_is_integer(json_object_get(rec, "outcome")) ? "ok" : "?";
    case 4:
        return "minor failure";
    case 8:
        return "serious failure";
    case 12:
        return "major failure";
    default:
        return "?";
    }
}

static void audit__show_line(const json_t *rec)
{
    char t[AUDIT_SHOW_FIELD], ty[AUDIT_SHOW_FIELD], who[4 * AUDIT_SHOW_FIELD],
        addr[AUDIT_SHOW_FIELD], why[AUDIT_SHOW_FIELD];
    const char *reason = audit__str(rec, "reason");

    audit__who(rec, who, sizeof(who));
    printf("%-24s  %-24s  %-36s  %-21s  %s%s%s\n",
           audit__clean(audit__str(rec, "time"), t, sizeof(t)),
           audit__clean(audit__str(rec, "type"), ty, sizeof(ty)), who,
           audit__clean(audit__address(rec), addr, sizeof(addr)), audit__outcome(rec),
           reason ? ": " : "", reason ? audit__clean(reason, why, sizeof(why)) : "");
}

static bool audit__in_session(const json_t *rec, const char *session)
{
    const char *s = audit__str(rec, "session");

    return session == NULL || (s != NULL && strcmp(s, session) == 0);
}

static int audit__show_one(json_t *rec, const char *file, uint64_t line, void *arg)
{
    (void)file;
    (void)line;
    if (audit__in_session(rec, arg))
        audit__show_line(rec);
    return 0;
}

static int audit__by_seq(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "seq"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "seq"));

    return (x > y) - (x < y);
}

/* Reads every line that is a JSON object with a seq, seals unchecked. */
static int audit__read_unverified(const struct audit_opts *o, json_t *records)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;

    for (size_t i = 0; i < o->nfiles; i++) {
        FILE *fp = fopen(o->files[i], "r");

        if (fp == NULL) {
            free(line);
            return ctl_fail(o->cmd, "%s: cannot open", o->files[i]);
        }
        while ((len = getline(&line, &cap, fp)) > 0) {
            json_t *rec = len <= AUDIT_SHOW_LINE_MAX
                              ? json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, NULL)
                              : NULL;

            if (json_is_object(rec) && json_is_integer(json_object_get(rec, "seq")))
                json_array_append(records, rec);
            json_decref(rec);
        }
        fclose(fp);
    }
    free(line);
    return CTL_OK;
}

static int audit__show_unverified(const struct audit_opts *o)
{
    json_t *records = json_array(), *rec;
    size_t n, i;
    json_t **sorted;
    int rc;

    if ((rc = audit__read_unverified(o, records)) != CTL_OK) {
        json_decref(records);
        return rc;
    }
    n = json_array_size(records);
    if ((sorted = calloc(n ? n : 1, sizeof(*sorted))) == NULL) {
        json_decref(records);
        return ctl_fail(o->cmd, "out of memory");
    }
    json_array_foreach(records, i, rec) sorted[i] = rec;
    qsort(sorted, n, sizeof(*sorted), audit__by_seq);
    fprintf(stderr, "quietroomctl %s: seals not checked; give --key-file to show only records "
                    "that verify\n",
            o->cmd);
    for (i = 0; i < n; i++)
        audit__show_one(sorted[i], NULL, 0, (void *)o->session);
    free(sorted);
    json_decref(records);
    return CTL_OK;
}

static int audit__show(int argc, char **argv)
{
    struct audit_opts o = {.cmd = "audit show"};
    struct audit_report r;
    struct keyring kr;
    int rc;

    if ((rc = audit__options(argc, argv, OPT_KEY | OPT_SESSION, &o)) >= 0)
        return rc;
    if (o.key_file == NULL)
        return audit__show_unverified(&o);
    if ((rc = audit__keys(&o, &kr)) != 0)
        return rc;
    rc = audit_verify_walk(o.files, o.nfiles, &kr, audit__show_one, (void *)o.session, &r);
    keyring_wipe(&kr);
    if (rc != 0)
        return ctl_fail(o.cmd, "%s", r.why);
    return audit__problem(o.cmd, &r);
}

/* --- dispatch ---------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} audit_commands[] = {
    {"verify", audit__verify},
    {"export", audit__export},
    {"show", audit__show},
};

int cmd_audit(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(audit_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    for (size_t i = 0; i < sizeof(audit_commands) / sizeof(audit_commands[0]); i++) {
        if (strcmp(argv[1], audit_commands[i].name) == 0)
            return audit_commands[i].fn(argc - 1, argv + 1);
    }
    fputs(audit_usage, stderr);
    return ctl_usage_error("audit", "unknown command \"%s\"", argv[1]);
}
