/* Program options from the command line and, with the same keys, from an
 * INI file (--config FILE). A program lists its options as rows of setters;
 * this module parses, reports mistakes and prints --help. */
#ifndef QUIETROOM_CONFIG_H
#define QUIETROOM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Applies value to the program's configuration; returns 0 or -1 with err. */
typedef int (*config_setter)(void *cfg, const char *value, char *err, size_t errlen);

struct config_option {
    const char *name;      /* long option and file key */
    const char *arg;       /* placeholder shown in --help */
    config_setter set;
    const char *help;
};

/* A table of options whose setters work on one part of the configuration
 * (select returns it), so that several programs can share the table. */
struct config_group {
    const struct config_option *options;
    size_t n_options;
    void *(*select)(void *cfg);     /* NULL: the whole configuration */
};

#define CONFIG_GROUPS_MAX 4

struct config_spec {
    const char *program;   /* "quietroom-relay" */
    const char *version;
    const char *usage;     /* first lines of --help */
    const char *section;   /* INI section read; keys outside any section are read too */
    struct config_group groups[CONFIG_GROUPS_MAX];
};

enum config_result { CONFIG_OK, CONFIG_EXIT, CONFIG_ERROR };

/* Walks argv in order ("--config FILE" reads the file at that point, so
 * later options override it). CONFIG_EXIT: --help or --version answered. */
enum config_result config_load(const struct config_spec *spec, void *cfg, int argc, char **argv,
                               char *err, size_t errlen);
void config_usage(const struct config_spec *spec, FILE *out);

/* Setter helpers: parse, range-check and report with the option's name. */
int config_bool(const char *value, const char *name, bool *out, char *err, size_t errlen);
int config_u32(const char *value, uint32_t min, uint32_t max, const char *name, uint32_t *out,
               char *err, size_t errlen);
int config_string(char *out, size_t cap, const char *value, const char *name, char *err,
                  size_t errlen);

#endif
