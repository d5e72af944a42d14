/* Time sources: monotonic for timeouts and rates, wall clock for expiry and
 * records. */
#ifndef QUIETROOM_CLOCK_H
#define QUIETROOM_CLOCK_H

#include <stdint.h>

uint64_t clock_mono_us(void);
uint64_t clock_mono_ms(void);
/* Unix time. */
uint64_t clock_wall_ms(void);
uint32_t clock_wall_s(void);
/* Formats Unix milliseconds as RFC 3339 UTC ("2026-11-24T07:34:00.123Z"). */
const char *clock_format_utc(uint64_t wall_ms, char *buf, unsigned long len);

#endif
