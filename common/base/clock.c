/* clock_gettime goes through the vDSO: no syscall, cheap enough per batch. */
#include "quietroom/base/clock.h"

#include <stdio.h>
#include <time.h>

static uint64_t clock__us(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void clock_deadline(clockid_t id, uint64_t after_ms, struct timespec *out)
{
    clock_gettime(id, out);
    out->tv_sec += (time_t)(after_ms / 1000u);
    out->tv_nsec += (long)(after_ms % 1000u) * 1000000L;
    if (out->tv_nsec >= 1000000000L) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000L;
    }
}

uint64_t clock_mono_us(void)
{
    return clock__us(CLOCK_MONOTONIC);
}

uint64_t clock_mono_ms(void)
{
    return clock__us(CLOCK_MONOTONIC) / 1000u;
}

uint64_t clock_wall_ms(void)
{
    return clock__us(CLOCK_REALTIME) / 1000u;
}

uint32_t clock_wall_s(void)
{
    return (uint32_t)(clock__us(CLOCK_REALTIME) / 1000000u);
}

const char *clock_format_utc(uint64_t wall_ms, char *buf, unsigned long len)
{
    time_t secs = (time_t)(wall_ms / 1000u);
    struct tm tm;

    gmtime_r(&secs, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(wall_ms % 1000u));
    return buf;
}
