/* Dropping capabilities with capget/capset and PR_CAPBSET_DROP: three
 * syscalls at start-up, not worth a library (libcap). */
#include "caps.h"

#include <linux/capability.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Loading a program (CAP_BPF, or CAP_SYS_ADMIN before 5.8), TC programs
 * and attaching (CAP_NET_ADMIN), and what would let the process load more
 * (CAP_PERFMON). */
static const int caps_kernel_path[] = {CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN};

/* Effective, permitted and inheritable (the ambient set follows
 * permitted). The bounding set needs CAP_SETPCAP to shrink; without it (a
 * systemd unit that grants only these) it is left as it is, and
 * NoNewPrivileges keeps them from coming back. */
int caps_drop_kernel_path(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

    if (syscall(SYS_capget, &h, d) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(caps_kernel_path) / sizeof(caps_kernel_path[0]); i++) {
        uint32_t bit = 1u << (caps_kernel_path[i] % 32);
        unsigned w = (unsigned)caps_kernel_path[i] / 32;

        d[w].effective &= ~bit;
        d[w].permitted &= ~bit;
        d[w].inheritable &= ~bit;
        (void)prctl(PR_CAPBSET_DROP, caps_kernel_path[i], 0, 0, 0);
    }
    return syscall(SYS_capset, &h, d) == 0 ? 0 : -1;
}
