/* Time sources: monotonic for timeouts and rates, wall clock for expiry and
 * records. */
#ifndef QUIETROOM_CLOCK_H
#define QUIETROOM_CLOCK_H

#include <stdint.h>
#include <time.h>

uint64_t clock_mono_us(void);
uint64_t clock_mono_ms(void);
/* Unix time. */
uint64_t clock_wall_ms(void);
uint32_t clock_wall_s(void);
/* The absolute time after_ms from now on clock id (CLOCK_MONOTONIC or
 * CLOCK_REALTIME), for pthread_cond_timedwait and friends. */
void clock_deadline(clockid_t id, uint64_t after_ms, struct timespec *out);
/* Formats Unix milliseconds as RFC 3339 UTC ("2026-11-24T07:34:00.123Z"). */
const char *clock_format_utc(uint64_t wall_ms, char *buf, unsigned long len);

#endif
