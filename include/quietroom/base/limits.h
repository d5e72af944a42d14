/* Every size, count and timeout Quietroom depends on, named once.
 * Change a limit here, not at the place that uses it. */
#ifndef QUIETROOM_LIMITS_H
#define QUIETROOM_LIMITS_H

/* --- UDP packet path --------------------------------------------------- */

/* Receive buffer per datagram. WebRTC keeps packets under ~1,300 bytes; a
 * datagram that does not fit is truncated by the kernel and dropped. */
#define QR_PACKET_MAX 2048
/* Datagrams per recvmmsg/sendmmsg call. */
#define QR_BATCH 32
/* Receive batches a worker drains per wake-up before it checks timers. */
#define QR_BATCHES_PER_WAKE 16
/* Socket buffers asked of the kernel (capped by net.core.[rw]mem_max). */
#define QR_SOCKET_BUFFER (4 * 1024 * 1024)
/* A worker wakes at least this often so that reclamation never waits long. */
#define QR_WORKER_TICK_MS 100

#define QR_WORKERS_MAX 64
#define QR_LISTEN_MAX 8
/* Events one epoll_wait returns to a worker with several sockets. */
#define QR_EPOLL_EVENTS 64
/* Address locks one daemon holds (lockfile.c): every media address, the
 * control and operator ports, signaling's listener. */
#define QR_LOCKS_MAX (QR_LISTEN_MAX + QR_TCP_LISTEN_MAX + 8)

/* --- ICE-TCP (RFC 6544, framing RFC 4571) ------------------------------ */

#define QR_TCP_LISTEN_MAX 4
/* Connections open at once over all workers (max-tcp-connections), and the
 * most that option may ask for: a connection's index fits 20 bits. */
#define QR_TCP_CONNS_DEFAULT 2048
#define QR_TCP_CONNS_LIMIT (1 << 20)
/* Connections whose leg is not bound to them (yet): no valid check, or
 * checks but no nomination. This is what strangers, or one visitor's
 * credentials, can hold; each is closed QR_TCP_CHECK_TIMEOUT_MS after it
 * connected without a valid check, QR_TCP_BIND_TIMEOUT_MS without its leg
 * bound to it. */
#define QR_TCP_WAITING_MAX 256
#define QR_TCP_CHECK_TIMEOUT_MS 5000
#define QR_TCP_BIND_TIMEOUT_MS 15000
/* The largest frame taken: one packet, as on UDP. A larger length closes
 * the connection (no packet of ours is that large). */
#define QR_TCP_FRAME_MAX QR_PACKET_MAX
/* Bytes read per connection before frames are cut from them. */
#define QR_TCP_READ_BUFFER (4 * (QR_TCP_FRAME_MAX + 2))
/* Frames waiting for a slow reader, per connection (from its first valid
 * check): ~250 ms of 2 Mbit/s video on top of the kernel's send buffer. A
 * frame that does not fit is dropped whole (counted): the stream stays
 * framed. */
#define QR_TCP_WRITE_BUFFER (64 * 1024)
/* The kernel's send buffer asked for per connection (the kernel doubles
 * it): small, so that a stalled reader shows up in our counters instead of
 * a second of stale media queued in the kernel. */
#define QR_TCP_SOCKET_BUFFER (32 * 1024)
/* Frames one worker hands another for a TCP leg it owns (the receiving
 * worker's inbox); the owner is woken every QR_TCP_WAKE_EVERY frames handed
 * to it, and at the end of the round for the rest. */
#define QR_TCP_INBOX 1024
#define QR_TCP_WAKE_EVERY 64
#define QR_TCP_BACKLOG 512
/* Bytes a worker reads from one connection per wake-up before others get
 * their turn. */
#define QR_TCP_READ_PER_WAKE (64 * 1024)
/* How often a worker looks for connections past their deadline, and
 * listens again after running out of file descriptors. */
#define QR_TCP_SWEEP_MS 250
/* File descriptors a relay keeps beside its TCP connections: sockets of
 * every worker, the audit log, control and operator connections. */
#define QR_TCP_FD_RESERVE 256

/* --- links and legs ---------------------------------------------------- */

#define QR_MAX_LINKS_DEFAULT 16384
#define QR_MAX_LINKS_LIMIT (1 << 22)
/* A bound leg moves to a less preferred path (ICE-TCP after UDP, a lower
 * PRIORITY) only once its own path carried nothing for this long. */
#define QR_LEG_MOVE_QUIET_MS 1000
/* RFC 7675: consent is lost after 30 s without a valid check. */
#define QR_CONSENT_TIMEOUT_S 30
/* Housekeeping period: consent, expiry, reclamation. */
#define QR_HOUSEKEEP_MS 250
/* RTP streams (SSRCs) tracked per leg: audio and video. More (RTX) are
 * counted but not analysed; each slot costs 32 bytes per leg. */
#define QR_SSRC_SLOTS 2
/* The kernel path: flows read per syscall when every flow's counters are
 * pulled (`stats`, /metrics). */
#define QR_KFWD_BATCH 256
/* A route lookup (RTM_GETROUTE) at flow install: the kernel answers at
 * once; one that does not must not hold the table lock for long. Late
 * answers to earlier requests skipped at most. */
#define QR_KFWD_ROUTE_WAIT_MS 100
/* Packets of a kernel-path leg the sockets may forward, beyond those the
 * program left to them, before its link goes back to the sockets: those in
 * a socket buffer when the flow was installed are a handful. */
#define QR_KFWD_BYPASS_MAX 16
#define QR_KFWD_ROUTE_SKIP 4
/* After a route or interface change every active link's routes are asked
 * again, spread over housekeeping rounds: at most this many links per round
 * (two RTM_GETROUTE each, under the table lock), and this many notices
 * read per round. */
#define QR_KFWD_SWEEP_LINKS 128
#define QR_KFWD_WATCH_READS 64

/* Early DTLS: packets held per link until the peer leg binds, pool size
 * shared by all links, and how long a held packet stays useful. */
#define QR_EARLY_PER_LINK 8
#define QR_EARLY_POOL 1024
#define QR_EARLY_MAX_AGE_MS 5000

/* --- credentials ------------------------------------------------------- */

#define QR_SECRET_MIN 32
#define QR_SECRET_MAX 64
#define QR_KEYS_MAX 4
/* Credentials may not live longer than this (and revocations are kept this
 * long, so a revoked session can never come back). */
#define QR_CREDS_MAX_TTL_S (24 * 3600)
#define QR_CREDS_DEFAULT_TTL_S (4 * 3600)
#define QR_LINKS_PER_SESSION_MAX 64
#define QR_SESSION_ID_MAX 128
#define QR_REVOKE_MAX 65536

/* --- STUN -------------------------------------------------------------- */

/* RFC 8489 §14.3: USERNAME is less than 513 bytes. */
#define QR_STUN_USERNAME_MAX 512
#define QR_STUN_UNKNOWN_MAX 8
/* Error responses to checks that MESSAGE-INTEGRITY did not authenticate (a
 * 401 to a real ufrag with a wrong password, a 400 to a check without
 * credentials) go to any source address a spoofer names: at most this many
 * a second per source address, then silence. */
#define QR_STUN_ERRORS_PER_S 5
/* Per-worker slots counting them, indexed by a keyed hash of the address;
 * addresses that share a slot share one budget (fewer errors, never more). */
#define QR_STUN_ERROR_SLOTS 256

/* --- signaling ---------------------------------------------------------- */

/* Largest SDP accepted from a browser (Chrome's offers are ~10 KB). */
#define QR_SDP_MAX (64 * 1024)
/* Largest EHR token accepted. */
#define QR_TOKEN_MAX 8192
/* Clock skew tolerated on token times (the issue caps it at 60 s). */
#define QR_TOKEN_SKEW_MAX_S 60
#define QR_TOKEN_LIFETIME_DEFAULT_S (12 * 3600)
/* How often spent token claims past their token's life are deleted. */
#define QR_STORE_PURGE_S 60
/* People in one session: a clinician, a patient, interpreters, observers. */
#define QR_SESSION_PEOPLE_MAX 16
/* A connection must authenticate this soon after the WebSocket opens. */
#define QR_SIGNAL_AUTH_TIMEOUT_MS 10000
/* Session timers (waiting, idle, grace, token expiry) are checked this often. */
#define QR_SIGNAL_TICK_MS 250
/* Signaling cluster: a replica owns a visit for a lease it renews every
 * third of it; a lapsed lease lets another take the visit over. */
#define QR_CLUSTER_LEASE_MS 5000
#define QR_CLUSTER_RENEW_MS (QR_CLUSTER_LEASE_MS / 3)
/* An edge checks the owner of each visit it forwards for this often. */
#define QR_CLUSTER_WATCH_MS 1000
/* A join or resume forwarded to an owner is refused as transient
 * (state_unavailable, the browser tries again) as soon as the owner's lease
 * is seen gone, or if the owner, alive, does not answer within this: longer
 * than its own store calls may take (claim, save: 2 s each), so that a slow
 * owner's seat is not refused at the edge after it was granted. */
#define QR_CLUSTER_ANSWER_MS 8000
/* Other replicas an owner checks on, each watch period, for being alive
 * (the edges its visits' participants are on); a cluster of more replicas
 * than this has the rest unchecked (their participants time out only when
 * they come back elsewhere). */
#define QR_CLUSTER_EDGES_MAX 64
/* How often a replica looks for visits nobody owns (their owner died and
 * nobody came back): it takes them over, and their timers end them. */
#define QR_CLUSTER_SWEEP_MS 10000
/* Messages from other replicas waiting for the event loop. */
#define QR_CLUSTER_INBOX_MAX 4096
/* One NATS round trip of the cluster's own (subscribe, flush). */
#define QR_CLUSTER_OP_MS 2000
/* Bytes queued towards one browser before it counts as not reading. */
#define QR_SIGNAL_OUTQ_MAX (1024 * 1024)
/* Rate-limit violations after which a connection is closed. */
#define QR_SIGNAL_RATE_STRIKES 5
#define QR_RESUME_SECRET_BYTES 32
/* Connection checks through the relay a seat may run in one visit, and how
 * long a check's relay session lives at most. */
#define QR_CHECKS_PER_SEAT 5
/* Seats (tokens seen) a visit remembers; a clinician's waiting-room
 * message, in bytes. */
#define QR_SESSION_SEATS_MAX (2 * QR_SESSION_PEOPLE_MAX)
#define QR_NOTICE_TEXT_MAX 280
#define QR_CHECK_MAX_MS 60000
/* Relay load is read this often (the dashboard's rates are per poll); a
 * relay silent for 3 polls is unhealthy. */
#define QR_RELAY_POLL_MS 1000
#define QR_RELAY_CALL_TIMEOUT_MS 2000
/* A relay that has not answered its control connection for this long has
 * lost its calls: they move to another relay. Longer than a quick restart
 * (a relay back within it keeps its calls: credentials are stateless). */
#define QR_RELAY_LOST_MS 3000
/* A draining relay's calls move this long before its drain-timeout would
 * cut them. */
#define QR_RELAY_MOVE_LEAD_S 30
/* A relay that came back takes new pairs only once it has answered for this
 * long, unless no other relay is ready (damps a flapping relay). */
#define QR_RELAY_HOLD_MS 10000
/* What signaling keeps of one relay's stats reply: drop reasons and RTP
 * loss bounds beyond these are ignored (the relay has 10 and 7). */
#define QR_SIGNAL_RELAY_DROP_REASONS_MAX 16
#define QR_SIGNAL_RELAY_LOSS_BOUNDS_MAX 15
/* Distinct label values of one labelled signaling counter (auth results,
 * rejection reasons, end reasons): all are the server's own constants. */
#define QR_SIGNAL_LABELS_MAX 48
/* Largest operator dashboard file (HTML, script, style) served. */
#define QR_SIGNAL_OPS_FILE_MAX (256 * 1024)

/* --- operations (both daemons) ----------------------------------------- */

/* A drain ends by itself this long after SIGTERM (drain-timeout). */
#define QR_DRAIN_TIMEOUT_DEFAULT_S 3600
#define QR_DRAIN_TIMEOUT_MAX_S (24 * 3600)
/* A worker that has not passed a quiescent point for this long makes the
 * relay unhealthy (/healthz 503). */
#define QR_WORKER_STALL_MS 2000
/* Busy ratios and rates are computed over this window. */
#define QR_OPS_WINDOW_MS 1000
/* RTP streams count in loss statistics once this many packets were expected. */
#define QR_LOSS_MIN_EXPECTED 50
/* Bytes of an operator bearer token (ops-token-file). */
#define QR_OPS_TOKEN_MIN 16
#define QR_OPS_TOKEN_MAX 256

/* --- control endpoint -------------------------------------------------- */

#define QR_CONTROL_CLIENTS_MAX 16
#define QR_CONTROL_LINE_MAX 4096
#define QR_CONTROL_AUTH_TIMEOUT_MS 5000
#define QR_CONTROL_OUT_MAX (1024 * 1024)

/* --- audit ------------------------------------------------------------- */

#define QR_AUDIT_QUEUE 4096
/* The writer looks back this far for the last sealed record on start-up. */
#define QR_AUDIT_TAIL_SCAN (256 * 1024)
#define QR_AUDIT_ROTATE_BYTES (100ull * 1024 * 1024)
/* HIPAA asks to keep documentation six years (45 CFR 164.316(b)(2)). */
#define QR_AUDIT_RETENTION_DAYS (6 * 365)
#define QR_AUDIT_CHECKPOINT_EVERY 1000
#define QR_AUDIT_CHECKPOINT_MS (60 * 1000)
/* The writer wakes this often to rotate at midnight UTC and checkpoint. */
#define QR_AUDIT_TICK_MS 1000

/* Shipping to a syslog collector (audit_ship.c). Records are held after
 * the collector's TCP acknowledged them for HOLD_MS more: a collector that
 * stops may still lose what its socket had received, so they are sent again
 * if the connection breaks within that time. */
#define QR_AUDIT_SHIP_HOLD_MS 2000
/* Records read and not yet released; the shipper stops reading when it is
 * full, so with HOLD_MS it ships at most WINDOW / HOLD_MS records a second
 * (8,192 here). */
#define QR_AUDIT_SHIP_WINDOW 16384
/* Connecting, the handshake, and then each blocked send (a collector that
 * stopped reading) time out after this long; then it counts as a failure. */
#define QR_AUDIT_SHIP_CONNECT_MS 5000
/* TCP gives up on a collector that acknowledges nothing for this long
 * (TCP_USER_TIMEOUT, also over a zero window); keepalive probes start
 * after this many idle seconds, so a silent collector is noticed. */
#define QR_AUDIT_SHIP_USER_TIMEOUT_MS 30000
#define QR_AUDIT_SHIP_KEEPALIVE_S 30
/* Records released in the last TAIL_MS (at most TAIL of them, TAIL_BYTES
 * of frames) are sent again after a reconnect: a collector restarted after
 * it stopped reading loses what it had acknowledged. */
#define QR_AUDIT_SHIP_TAIL 4096
#define QR_AUDIT_SHIP_TAIL_BYTES (2 * 1024 * 1024)
#define QR_AUDIT_SHIP_TAIL_MS 60000
#define QR_AUDIT_SHIP_BACKOFF_MIN_MS 100
#define QR_AUDIT_SHIP_BACKOFF_MAX_MS 5000
/* At a daemon's stop, what is queued is sent for at most this long. */
#define QR_AUDIT_SHIP_DRAIN_MS 3000
/* The shipper looks at its connection (closed by the collector?) this often. */
#define QR_AUDIT_SHIP_TICK_MS 100
/* Reading back the file: first chunk, and the longest line it will take. */
#define QR_AUDIT_SHIP_READ 65536
#define QR_AUDIT_SHIP_LINE_MAX (1024 * 1024)

/* quietroomctl probe: its WebSocket client holds this many messages each way
 * (a probe exchanges about a dozen) of at most the server's default
 * max-message; tokens it mints live this long beyond the probe's own span. */
#define QR_PROBE_WS_QUEUE 64
#define QR_PROBE_WS_MESSAGE_MAX (128 * 1024)
#define QR_PROBE_TOKEN_SLACK_S 120
/* Tone each side of a probe sends, and how far off a detection may be. */
#define QR_PROBE_TONE_CLINICIAN_HZ 440.0
#define QR_PROBE_TONE_PATIENT_HZ 660.0
#define QR_PROBE_TONE_TOLERANCE_HZ 15.0
/* quietroomctl status: relays per invocation, and the window its packet
 * rates are measured over by default. */
#define QR_STATUS_RELAYS_MAX 64
#define QR_STATUS_INTERVAL_MS_DEFAULT 1000

#endif
