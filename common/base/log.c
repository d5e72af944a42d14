/* One line per message, written with a single write(2) so that lines from
 * several threads never interleave. */
#include "quietroom/base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOG_LINE_MAX 512

/* The one mutable global outside a signal handler, and why it is one:
 * every thread logs, from code that has no context of ours to pass (the
 * workers' inner loops, library callbacks, the shared modules), and a
 * reload changes the level while they do. Passing a logger through every
 * call would thread it through every signature for one integer. The ident
 * is written once by log_init, before any thread starts; the threshold is
 * atomic, so a reload may change it under running threads. */
static struct {
    const char *ident;
    _Atomic int threshold;
} log_state = {"quietroom", LOG_LEVEL_INFO};

static const char *const log_names[] = {"error", "warn", "info", "debug"};

void log_init(const char *ident, enum log_level level)
{
    log_state.ident = ident;
    atomic_store(&log_state.threshold, (int)level);
}

void log_set_level(enum log_level level)
{
    atomic_store(&log_state.threshold, (int)level);
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

    if ((int)level > atomic_load_explicit(&log_state.threshold, memory_order_relaxed))
        return;
    n = snprintf(line, sizeof(line), "%s: %s: ", log_state.ident, log_names[level]);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return; /* nowhere left to report it */
}
