/* The relay's control endpoint (protocol in docs/relay.md): authenticated
 * with the shared secret; revoke a session, read stats. Runs in the main
 * thread's event loop. */
#ifndef QUIETROOM_RELAY_CONTROL_H
#define QUIETROOM_RELAY_CONTROL_H

#include <stdint.h>

#include "quietroom/base/netaddr.h"
#include "relay.h"

/* epoll tags the control endpoint owns in the main loop. */
#define CONTROL_TAG_LISTEN 100
#define CONTROL_TAG_CLIENT 101

struct control;

/* Binds the configured address and registers it with epfd. Returns NULL with
 * a reason in err. Free with control_free. */
struct control *control_new(struct relay *r, int epfd, char *err, size_t errlen);
void control_free(struct control *c);

/* Handles an epoll event whose tag is CONTROL_TAG_LISTEN or above. */
void control_event(struct control *c, uint64_t tag, uint32_t events);
/* Drops connections that did not authenticate in time. */
void control_tick(struct control *c, uint64_t now_ms);
/* The bound address (the port is resolved when 0 was asked for). */
const union netaddr *control_address(const struct control *c);

#endif
