/* Options and INI files. The file parser is inih (Debian libinih): comments,
 * sections and continuation lines are its job, not ours. */
#include "quietroom/base/config.h"

#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>

int config_u32(const char *value, uint32_t min, uint32_t max, const char *name, uint32_t *out,
               char *err, size_t errlen)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(value, &end, 10);
    if (errno != 0 || value[0] < '0' || value[0] > '9' || *end != '\0' || v < min || v > max) {
        snprintf(err, errlen, "%s: expected a number from %u to %u", name, min, max);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int config_string(char *out, size_t cap, const char *value, const char *name, char *err,
                  size_t errlen)
{
    size_t n = strlen(value);

    if (n == 0 || n >= cap) {
        snprintf(err, errlen, "%s: 1 to %zu characters", name, cap - 1);
        return -1;
    }
    memcpy(out, value, n + 1);
    return 0;
}

int config_bool(const char *value, const char *name, bool *out, char *err, size_t errlen)
{
    if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 || strcmp(value, "1") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 || strcmp(value, "0") == 0) {
        *out = false;
        return 0;
    }
    snprintf(err, errlen, "%s: yes or no", name);
    return -1;
}

/* The option called name, and the part of cfg its setter works on. */
static const struct config_option *config__find(const struct config_spec *spec, void *cfg,
                                                const char *name, void **target)
{
    for (int g = 0; g < CONFIG_GROUPS_MAX; g++) {
        const struct config_group *grp = &spec->groups[g];

        for (size_t i = 0; i < grp->n_options; i++) {
            if (strcmp(grp->options[i].name, name) == 0) {
                *target = grp->select ? grp->select(cfg) : cfg;
                return &grp->options[i];
            }
        }
    }
    return NULL;
}

void config_usage(const struct config_spec *spec, FILE *out)
{
    fprintf(out, "%s\n", spec->usage);
    fprintf(out, "  --%-20s %-10s %s\n", "config", "FILE", "read options from an INI file");
    for (int g = 0; g < CONFIG_GROUPS_MAX; g++) {
        const struct config_group *grp = &spec->groups[g];

        for (size_t i = 0; i < grp->n_options; i++)
            fprintf(out, "  --%-20s %-10s %s\n", grp->options[i].name, grp->options[i].arg,
                    grp->options[i].help);
    }
    fprintf(out, "  --%-20s %-10s %s\n", "help", "", "this text");
    fprintf(out, "  --%-20s %-10s %s\n", "version", "", "print the version");
}

struct config__file {
    const struct config_spec *spec;
    void *cfg;
    char why[256];
};

static int config__file_key(void *user, const char *section, const char *name, const char *value)
{
    struct config__file *f = user;
    const struct config_option *opt;
    void *target;

    if (f->why[0] != '\0')
        return 0;
    if (section[0] != '\0' && strcmp(section, f->spec->section) != 0)
        return 1; /* other programs' sections may share the file */
    if ((opt = config__find(f->spec, f->cfg, name, &target)) == NULL) {
        snprintf(f->why, sizeof(f->why), "unknown key \"%s\"", name);
        return 0;
    }
    if (opt->set(target, value, f->why, sizeof(f->why)) != 0)
        return 0;
    return 1;
}

static int config__load_file(const struct config_spec *spec, void *cfg, const char *path,
                             char *err, size_t errlen)
{
    struct config__file f = {.spec = spec, .cfg = cfg};
    int rc = ini_parse(path, config__file_key, &f);

    if (rc == -1) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s:%d: %s", path, rc, f.why[0] ? f.why : "syntax error");
        return -1;
    }
    return 0;
}

/* Applies argv[*i] (and its value, advancing *i). */
static enum config_result config__arg(const struct config_spec *spec, void *cfg, int argc,
                                      char **argv, int *i, char *err, size_t errlen)
{
    const char *arg = argv[*i], *name = arg + 2;
    const struct config_option *opt = NULL;
    void *target = cfg;

    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
        config_usage(spec, stdout);
        return CONFIG_EXIT;
    }
    if (strcmp(arg, "--version") == 0) {
        printf("%s %s\n", spec->program, spec->version);
        return CONFIG_EXIT;
    }
    if (strncmp(arg, "--", 2) != 0) {
        snprintf(err, errlen, "unexpected argument \"%s\"", arg);
        return CONFIG_ERROR;
    }
    if (strcmp(name, "config") != 0 && (opt = config__find(spec, cfg, name, &target)) == NULL) {
        snprintf(err, errlen, "unknown option %s (see --help)", arg);
        return CONFIG_ERROR;
    }
    if (*i + 1 >= argc) {
        snprintf(err, errlen, "%s needs a value", arg);
        return CONFIG_ERROR;
    }
    (*i)++;
    if (strcmp(name, "config") == 0)
        return config__load_file(spec, cfg, argv[*i], err, errlen) == 0 ? CONFIG_OK
                                                                       : CONFIG_ERROR;
    return opt->set(target, argv[*i], err, errlen) == 0 ? CONFIG_OK : CONFIG_ERROR;
}

enum config_result config_load(const struct config_spec *spec, void *cfg, int argc, char **argv,
                               char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        enum config_result r = config__arg(spec, cfg, argc, argv, &i, err, errlen);

        if (r != CONFIG_OK)
            return r;
    }
    return CONFIG_OK;
}
