/* The kernel path in a relay built without clang or libbpf: never on. */
#include <stdio.h>
#include <string.h>

#include "kfwd.h"

struct kfwd *kfwd_start(enum kfwd_mode mode, const union netaddr *listen, unsigned n,
                        uint32_t max_links, enum kfwd_reason *reason, char *err, size_t errlen)
{
    (void)listen;
    (void)n;
    (void)max_links;
    *reason = mode == KFWD_OFF ? KFWD_REASON_OFF : KFWD_REASON_NOT_BUILT;
    snprintf(err, errlen, "%s",
             mode == KFWD_OFF ? "" : "this relay was built without clang or libbpf");
    return NULL;
}

void kfwd_bound(struct kfwd *kf, const union netaddr *listen, unsigned n)
{
    (void)kf;
    (void)listen;
    (void)n;
}

/* With no kfwd, nothing below is ever called with one (table.c checks). */
void kfwd_free(struct kfwd *kf)
{
    (void)kf;
}

void kfwd_update(struct kfwd *kf, struct link *k, uint32_t idx)
{
    (void)kf;
    (void)k;
    (void)idx;
}

void kfwd_withdraw(struct kfwd *kf, struct link *k, uint32_t idx)
{
    (void)kf;
    (void)k;
    (void)idx;
}

void kfwd_check(struct kfwd *kf, struct link *k, uint32_t idx)
{
    (void)kf;
    (void)k;
    (void)idx;
}

void kfwd_follow_routes(struct kfwd *kf, struct link *links, const uint32_t *active,
                        uint32_t n_active)
{
    (void)kf;
    (void)links;
    (void)active;
    (void)n_active;
}

void kfwd_pull(struct kfwd *kf, struct link *k, uint32_t idx)
{
    (void)kf;
    (void)k;
    (void)idx;
}

void kfwd_pull_all(struct kfwd *kf, struct link *links, pthread_mutex_t *table_lock)
{
    (void)kf;
    (void)links;
    (void)table_lock;
}

void kfwd_totals(const struct kfwd *kf, struct kfwd_totals *out)
{
    (void)kf;
    memset(out, 0, sizeof(*out));
}

const char *kfwd_interfaces(const struct kfwd *kf, unsigned *n)
{
    (void)kf;
    *n = 0;
    return "";
}
