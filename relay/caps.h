/* The relay's privileges after start-up. */
#ifndef QUIETROOM_RELAY_CAPS_H
#define QUIETROOM_RELAY_CAPS_H

/* Gives up, for good, what only the kernel path's start needs (CAP_BPF,
 * CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON): called once that step is
 * over, whether the path came up, fell back or is off. Map updates need
 * only the map's descriptor. 0, or -1 with errno. */
int caps_drop_kernel_path(void);

#endif
