/* The forwarding path: a DTLS, RTP or RTCP datagram from a bound leg goes to
 * its peer leg's address, untouched. No lock, no allocation, no syscall here:
 * the datagram joins the worker's send batch. */
#ifndef QUIETROOM_RELAY_FORWARD_H
#define QUIETROOM_RELAY_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "quietroom/wire/demux.h"
#include "quietroom/base/netaddr.h"

struct worker;
struct worker_now;

/* Forwards one datagram of class cls received on socket listen from src at
 * time now, or counts why not. */
void forward_packet(struct worker *w, uint32_t listen, const union netaddr *src, uint8_t *buf,
                    size_t len, enum demux_class cls, const struct worker_now *now);

#endif
