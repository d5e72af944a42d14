/* Messages between signaling replicas, over NATS core subjects (the NATS
 * connection of the cluster store). Each replica listens on
 * "qr.signal.<node-id>"; a message is one JSON object. libnats delivers on
 * its own thread: messages wait in an inbox and the event loop is woken
 * to take them (cluster_next), so everything else stays on the loop
 * thread. Payloads may hold SDP and names: never logged. What the
 * messages mean is session_cluster.c's. */
#ifndef QUIETROOM_SIGNAL_CLUSTER_H
#define QUIETROOM_SIGNAL_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define CLUSTER_NODE_MAX 64

struct cluster;
struct store;

/* Listens for this node's messages on the store's NATS connection; wake
 * is called (from libnats' thread) when a message arrives. NULL with err,
 * including when the store is not a cluster store or the node id is not a
 * NATS subject token ([A-Za-z0-9_-], 1..63). */
struct cluster *cluster_start(struct store *st, const char *node, void (*wake)(void *ctx),
                              void *ctx, char *err, size_t errlen);
void cluster_free(struct cluster *cl);

/* Sends msg (consumed) to node. 0, or -1 if it cannot be queued (NATS
 * down); delivery is not confirmed. */
int cluster_send(struct cluster *cl, const char *node, json_t *msg);

/* The same from an edge's connection conn_id: if nobody listens on node
 * (the replica is gone), a {"k":"noresp","c":conn_id} message comes back at
 * once, so the edge need not wait for a lease to lapse to know. */
int cluster_ask(struct cluster *cl, const char *node, json_t *msg, uint64_t conn_id);

/* Is node still there? A message it ignores; if nobody listens, a
 * {"k":"noedge","e":node} message comes back. */
int cluster_check(struct cluster *cl, const char *node);

/* The next message received (the caller owns it), or NULL. Event-loop
 * thread. Messages that are not JSON objects are dropped and counted. */
json_t *cluster_next(struct cluster *cl);
/* Messages dropped: not JSON, or the inbox was full. */
unsigned long cluster_dropped(struct cluster *cl);
/* No more wakes (before the event loop goes away); messages still queue. */
void cluster_quiesce(struct cluster *cl);

bool cluster_node_ok(const char *node);

#endif
