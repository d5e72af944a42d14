/* Packets for the kernel path's program, run with BPF_PROG_TEST_RUN: built
 * here byte by byte, with the checksums a receiver checks. Shared by
 * test_kfwd and fuzz_kfwd; no cmocka. */
#ifndef QUIETROOM_TEST_KFWD_FIXTURES_H
#define QUIETROOM_TEST_KFWD_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kfwd_int.h"

#define KFX_NEXT (-1)       /* TCX: on to the stack */
#define KFX_SHOT 2          /* TC_ACT_SHOT */
#define KFX_REDIRECT 7      /* TC_ACT_REDIRECT */
#define KFX_REFUSED 1000    /* the kernel would not make a packet of it */
#define KFX_ETH_LEN 14
#define KFX_PKT_MAX 512

struct kfx_pkt {
    uint8_t b[KFX_PKT_MAX];
    size_t len;
};

/* The internet checksum of n bytes added to s, and folded. */
uint32_t kfx_sum16(const uint8_t *p, size_t n, uint32_t s);
uint16_t kfx_fold(uint32_t s);

bool kfx_is_v6(const struct kfx_pkt *p);
/* Offset of the UDP header. */
size_t kfx_l4_off(const struct kfx_pkt *p);
/* The UDP checksum over the pseudo-header, as a receiver checks it: 0 when
 * right. */
uint16_t kfx_udp_check(const struct kfx_pkt *p);

/* An Ethernet frame of UDP from src to dst ("ADDR:PORT", one family) with
 * payload; -1 if an address does not parse or it does not fit. */
int kfx_udp_pkt(struct kfx_pkt *p, const char *src, const char *dst, const uint8_t *payload,
                size_t n);
/* An RTP packet of n bytes (n >= 12) into b. */
size_t kfx_rtp(uint8_t *b, uint32_t ssrc, uint16_t seq, uint32_t ts, size_t n);

/* The flow key for packets from remote to local. -1 if they do not parse. */
int kfx_key(const char *local, const char *remote, struct kfwd_key *k);
/* Installs a flow by hand: from remote to local, leaving from src to dst
 * on interface 1. */
int kfx_add_flow(int map_fd, const char *local, const char *remote, const char *src,
                 const char *dst);

/* Runs the program once on p, the packet as it left in *out: its verdict,
 * or KFX_REFUSED. */
int kfx_run(int prog_fd, const struct kfx_pkt *p, struct kfx_pkt *out);

#endif
