/* Exact binding of listeners, and its check through the kernel's eyes:
 * getsockname() of every listening socket the process holds, found through
 * /proc/self/fd, so that a library binding somewhere else cannot go
 * unnoticed whatever path it took. */
#include "quietroom/ops/listener.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libwebsockets.h>

#include "quietroom/base/limits.h"

uint64_t listener_lws_options(const union netaddr *a)
{
    if (a->sa.sa_family == AF_INET6)
        return LWS_SERVER_OPTION_IPV6_V6ONLY_MODIFY | LWS_SERVER_OPTION_IPV6_V6ONLY_VALUE;
    return LWS_SERVER_OPTION_DISABLE_IPV6;
}

/* The address a listening TCP socket is bound to; -1 for anything else. */
static int listener__bound(int fd, union netaddr *out)
{
    int type = 0, accepting = 0;
    socklen_t len = sizeof(type);
    struct sockaddr_storage ss;

    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
        return -1;
    len = sizeof(accepting);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting)
        return -1;
    len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    return netaddr_from_sockaddr((struct sockaddr *)&ss, len, out);
}

int listener_verify(const union netaddr *want, unsigned n, char *err, size_t errlen)
{
    bool found[QR_LOCKS_MAX] = {false};
    char a[NETADDR_STRLEN], b[NETADDR_STRLEN];
    struct dirent *e;
    DIR *d;
    int rc = 0;

    if (n > QR_LOCKS_MAX || (d = opendir("/proc/self/fd")) == NULL) {
        snprintf(err, errlen, "cannot list this process's sockets (/proc/self/fd)");
        return -1;
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        union netaddr got;
        unsigned i = 0;
        int fd = atoi(e->d_name);

        if (e->d_name[0] == '.' || fd == dirfd(d) || listener__bound(fd, &got) != 0)
            continue;
        while (i < n && !netaddr_equal(&want[i], &got))
            i++;
        if (i < n) {
            found[i] = true;
            continue;
        }
        snprintf(err, errlen, "a socket listens on tcp %s, which is not a configured address",
                 netaddr_format(&got, a, sizeof(a)));
        rc = -1;
    }
    closedir(d);
    for (unsigned i = 0; rc == 0 && i < n; i++) {
        if (!found[i]) {
            snprintf(err, errlen, "nothing listens on tcp %s as configured",
                     netaddr_format(&want[i], b, sizeof(b)));
            rc = -1;
        }
    }
    return rc;
}
