/* Names of the kernel path's modes and reasons: built with or without the
 * kernel path (kfwd_none.c). */
#include <string.h>

#include "kfwd.h"

static const char *const kfwd_modes[] = {
    [KFWD_AUTO] = "auto",
    [KFWD_ON] = "on",
    [KFWD_OFF] = "off",
};

static const char *const kfwd_reasons[KFWD_REASON_COUNT] = {
    [KFWD_REASON_NONE] = "none",
    [KFWD_REASON_OFF] = "off",
    [KFWD_REASON_NOT_BUILT] = "not_built",
    [KFWD_REASON_NO_PRIVILEGES] = "no_privileges",
    [KFWD_REASON_UNSUPPORTED] = "unsupported",
    [KFWD_REASON_LOAD_FAILED] = "load_failed",
    [KFWD_REASON_ATTACH_FAILED] = "attach_failed",
    [KFWD_REASON_NO_INTERFACE] = "no_interface",
};

const char *kfwd_mode_name(enum kfwd_mode m)
{
    return (unsigned)m <= KFWD_OFF ? kfwd_modes[m] : "invalid";
}

int kfwd_mode_parse(const char *s, enum kfwd_mode *out)
{
    for (unsigned m = 0; m <= KFWD_OFF; m++) {
        if (strcmp(s, kfwd_modes[m]) == 0) {
            *out = (enum kfwd_mode)m;
            return 0;
        }
    }
    return -1;
}

const char *kfwd_reason_name(enum kfwd_reason r)
{
    return (unsigned)r < KFWD_REASON_COUNT ? kfwd_reasons[r] : "invalid";
}
