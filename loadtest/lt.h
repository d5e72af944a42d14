/* quietroom-loadtest: the structures its files share. One generator thread
 * owns a set of links; each link has two legs (side a, side b) that send
 * SRTP-protected media to each other through the server under test. Every
 * leg of a thread shares one UDP socket: a leg is a loopback source address
 * (127.T.x.y, same port), chosen per datagram with IP_PKTINFO, so sending
 * and receiving are batched across legs with sendmmsg/recvmmsg. With
 * --transport tcp each leg is a connection of its own instead (tcp.c). */
#ifndef QUIETROOM_LOADTEST_LT_H
#define QUIETROOM_LOADTEST_LT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <srtp2/srtp.h>

#include "quietroom/base/keyring.h"
#include "quietroom/base/netaddr.h"
#include "quietroom/wire/creds.h"

#define LT_THREADS_MAX 16
#define LT_BATCH 64
#define LT_PACKET_MAX 1500
/* One-microsecond latency buckets up to 100 ms; beyond counts as overflow. */
#define LT_LAT_BUCKETS 100000
/* Second octet of leg addresses: 127.(LT_NET_BASE + thread).x.y. */
#define LT_NET_BASE 20
#define LT_LEGS_PER_THREAD 65536
/* Debian's libsrtp2 runs on NSS, whose key bookkeeping makes creating
 * sessions slower the more exist; a run that would spend longer than this
 * making them stops with an error instead. */
#define LT_SRTP_BUDGET_NS (30 * 1000000000ull)
/* Generator CPU (share of its threads' cores) above which a ramp step
 * measures the generator rather than the server. */
#define LT_GENERATOR_SATURATED 0.9

/* What the legs carry packets over (relay mode). */
enum lt_transport {
    LT_TRANSPORT_UDP,  /* one datagram per packet, every leg on the thread's socket */
    LT_TRANSPORT_TCP,  /* ICE-TCP: a connection per leg, RFC 4571 frames (tcp.c) */
};

/* A leg's receive buffer on TCP: several frames per read. */
#define LT_TCP_RX 8192

/* What the legs talk through. */
enum lt_mode {
    LT_MODE_RELAY,    /* quietroom-relay: STUN binding with stateless credentials */
    LT_MODE_MINFWD,   /* quietroom-minfwd: learns legs from their first packet */
    LT_MODE_TURN,     /* coturn: Allocate, CreatePermission, ChannelBind, ChannelData */
    LT_MODE_DIRECT,   /* leg to leg, no server: the latency floor */
};

/* Media shape, open loop: packets_per_frame packets every frame_ns, and
 * optionally an audio packet every audio_ns as well (one RTP stream). */
struct lt_profile {
    const char *name;
    uint64_t frame_ns;
    unsigned packets_per_frame;
    unsigned size_min, size_max;   /* bytes on the wire, SRTP included */
    uint8_t payload_type;
    uint64_t audio_ns;             /* 0: no audio */
    unsigned audio_min, audio_max;
};

/* Consent freshness (RFC 7675): a browser sends a check every 5 s on
 * average (4-6 s, randomised); the relay closes a leg after its
 * consent-timeout (30 s) without one. */
#define LT_CONSENT_MS 5000

struct lt_options {
    enum lt_mode mode;
    enum lt_transport transport;   /* UDP unless --transport tcp (relay mode only) */
    union netaddr server;          /* relay, minfwd or TURN server (TCP: the relay's TCP address) */
    struct keyring keys;           /* relay mode: the relay's secret */
    const char *turn_user, *turn_pass;
    unsigned links;
    unsigned threads;
    unsigned seconds;
    struct lt_profile profile;
    int server_pid;                /* for CPU/RSS/fd readings; 0 if unknown */
    const char *json_path;
    bool ramp;
    double ramp_loss;              /* loss ratio that ends a ramp */
    unsigned consent_ms;           /* relay: mean interval of consent checks per leg */
};

struct lt_leg {
    struct in_addr ip;             /* 127.T.x.y */
    union netaddr to;              /* where its packets go */
    struct lt_leg *peer;
    uint32_t ssrc;
    uint16_t seq;
    uint32_t sent, received, reordered, corrupt, dup;
    uint32_t max_seq32;            /* highest sequence received (32-bit, ours) */
    uint64_t next_ns;              /* next frame due */
    uint64_t next_audio_ns;
    uint64_t next_consent_ns;      /* relay mode: the next consent check (RFC 7675) */
    srtp_t tx, rx;
    uint16_t channel;              /* TURN channel towards the peer, 0 if none */
    union netaddr relayed;         /* TURN: this leg's relayed address */
    bool ready;
    int tcp_fd;                    /* TCP: this leg's connection, -1 if none */
    struct lt_tcp *tcp;            /* TCP: its buffers (owned), NULL on UDP */
    /* Setup only. */
    char ufrag[CREDS_UFRAG_LEN + 1], pwd[CREDS_PWD_LEN + 1];
    uint8_t txid[12];
    uint8_t turn_state;
    char nonce[128], realm[128];
};

struct lt_thread {
    unsigned id;
    unsigned first_link;
    int fd;
    uint16_t port;                 /* the port every leg of this thread uses */
    struct lt_leg *legs;           /* 2 per link: a at 2i, b at 2i+1 */
    unsigned n_legs;
    const struct lt_options *opt;
    uint32_t lat[LT_LAT_BUCKETS];
    uint64_t lat_overflow, lat_count;
    uint64_t sent, received, bytes_sent, corrupt, late_frames, send_errors;
    uint64_t consent_sent, consent_answered;
    uint64_t tcp_closed;           /* TCP: connections the relay closed or broke */
    uint64_t setup_ns;             /* time to bring every leg up */
    unsigned setup_failed;
    bool srtp_failed;              /* no SRTP sessions: no media from this thread */
};

/* legs.c: addresses, SRTP contexts, and bringing legs up per mode. */
int lt_legs_init(struct lt_thread *t, unsigned first_link, unsigned links);
/* Creates the legs' SRTP sessions (before media); -1 on failure or when
 * it takes longer than LT_SRTP_BUDGET_NS. */
int lt_legs_srtp(struct lt_thread *t, unsigned first_link);
void lt_legs_free(struct lt_thread *t);
/* Brings every leg up (STUN binding, TURN allocation, ...). Returns 0 if
 * all legs are ready. */
int lt_legs_setup(struct lt_thread *t);

/* Sends leg l's ICE connectivity check to the relay (setup, and consent
 * refreshes during media); sha1 is an HMAC_SHA1 context. */
void lt_legs_check(struct lt_thread *t, struct lt_leg *l, struct hmac *sha1);

/* traffic.c: media until deadline_ns, then a drain. */
void lt_traffic_run(struct lt_thread *t, uint64_t start_ns, uint64_t deadline_ns);

/* turn.c: one TURN allocation per leg, then permissions and channels. */
int lt_turn_setup(struct lt_thread *t);

/* Shared socket helpers (legs.c). */
int lt_socket(struct lt_thread *t);
/* Sends one datagram from leg's address; returns 0 or -1. */
int lt_send_from(struct lt_thread *t, const struct lt_leg *leg, const union netaddr *to,
                 const void *buf, size_t len);
/* Receives one datagram (timeout_ms), telling which leg it was for. */
int lt_recv_one(struct lt_thread *t, void *buf, size_t cap, int timeout_ms, struct lt_leg **leg,
                union netaddr *from);
/* The leg a datagram addressed to ip belongs to, or NULL. */
struct lt_leg *lt_leg_by_ip(struct lt_thread *t, struct in_addr ip);

uint64_t lt_now_ns(void);

/* tcp.c: ICE-TCP legs. The thread's fd becomes an epoll set of its legs'
 * connections (poll it as the UDP socket is polled). */
int lt_tcp_init(struct lt_thread *t);
/* Connects leg l from its address, without waiting; 0 or -1. */
int lt_tcp_open(struct lt_thread *t, struct lt_leg *l);
/* Makes fd (non-blocking, connected or connecting) leg l's connection: the
 * second half of lt_tcp_open, which a test gives one end of a socketpair.
 * 0, or -1 (fd is the caller's still). */
int lt_tcp_adopt(struct lt_thread *t, struct lt_leg *l, int fd);
/* Sends one packet framed (RFC 4571) without blocking; 0 if it is sent or
 * will be, -1 if it is dropped (not connected yet, socket full, closed). */
int lt_tcp_send(struct lt_thread *t, struct lt_leg *l, const void *buf, size_t len);
/* Called for each whole packet received (payload only; fn may change it). */
typedef void (*lt_frame_fn)(struct lt_thread *t, struct lt_leg *l, uint8_t *pkt, size_t len,
                            void *ctx);
/* Waits up to timeout_ms for any leg to be readable, then reads what every
 * ready leg has; returns the packets handed to fn. */
unsigned lt_tcp_receive(struct lt_thread *t, int timeout_ms, lt_frame_fn fn, void *ctx);
/* Closes every leg's connection and frees its buffers (not t->fd). */
void lt_tcp_free(struct lt_thread *t);

#endif
