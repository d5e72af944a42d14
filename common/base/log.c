/* One line per message, written with a single write(2) so that lines from
 * several threads never interleave. */
#include "quietroom/base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOG_LINE_MAX 512

/* The ident is set once by log_init before any thread starts; the level
 * may change on reload while other threads log. */
static const char *log_ident = "quietroom";
static _Atomic int log_threshold = LOG_LEVEL_INFO;

static const char *const log_names[] = {"error", "warn", "info", "debug"};

void log_init(const char *ident, enum log_level level)
{
    log_ident = ident;
    atomic_store(&log_threshold, (int)level);
}

void log_set_level(enum log_level level)
{
    atomic_store(&log_threshold, (int)level);
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof(log_names) / sizeof(log_names[0])); i++) {
        if (strcmp(name, log_names[i]) == 0)
            return i;
    }
    return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    va_list ap;
    int n;

    if ((int)level > atomic_load_explicit(&log_threshold, memory_order_relaxed))
        return;
    n = snprintf(line, sizeof(line), "%s: %s: ", log_ident, log_names[level]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return; /* nowhere left to report it */
}
