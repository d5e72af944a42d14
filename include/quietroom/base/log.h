/* Operational logging to stderr (the journal under systemd). Messages name
 * events and reasons; never payload, SDP, tokens, keys or passwords. The
 * ident and level are process-wide (log.c says why); nothing else is. */
#ifndef QUIETROOM_LOG_H
#define QUIETROOM_LOG_H

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Called once at start-up, before threads exist. */
void log_init(const char *ident, enum log_level level);
/* Changes the level at any time (configuration reload). */
void log_set_level(enum log_level level);
/* Parses "error", "warn", "info" or "debug"; -1 otherwise. */
int log_level_parse(const char *name);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
