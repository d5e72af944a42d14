/* Audit writer: metadata events as JSON Lines, appended by a writer thread so
 * that callers (relay workers among them) never wait on the disk. */
#ifndef QUIETROOM_AUDIT_H
#define QUIETROOM_AUDIT_H

#include <stdint.h>

#include <jansson.h>

struct audit_log;

/* Opens (creates, mode 0600) path for appending and starts the writer
 * thread; node names this process in every record. Returns NULL with a reason
 * in err. Close with audit_close. */
struct audit_log *audit_open(const char *path, const char *node, char *err, size_t errlen);

/* Queues one event object (it must carry "type"); takes ownership of it. The
 * writer adds "seq", "time" and "node". Returns 0, or -1 if the queue is full:
 * the loss is counted and reported by a record of its own once space frees. */
int audit_emit(struct audit_log *log, json_t *event);

/* Blocks until everything queued so far is on disk (fdatasync). */
void audit_flush(struct audit_log *log);

struct audit_counters {
    uint64_t written;
    uint64_t dropped;
    uint64_t write_errors;
};
void audit_get_counters(struct audit_log *log, struct audit_counters *out);

/* Writes what is queued, stops the thread and frees everything. NULL-safe. */
void audit_close(struct audit_log *log);

#endif
