/* Replica-to-replica messages over NATS core subjects. The inbox is a
 * bounded ring of parsed JSON guarded by a mutex: libnats' delivery
 * thread fills it, the event loop empties it. */
#include "cluster.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>
#include <openssl/crypto.h>

#include "quietroom/base/limits.h"
#include "quietroom/base/log.h"
#include "store.h"

#define CLUSTER_SUBJECT_PREFIX "qr.signal."

struct cluster {
    natsConnection *nc;                 /* the store's; not ours to close */
    natsSubscription *sub;
    natsSubscription *nr;               /* "no responders" for what we asked */
    char node[CLUSTER_NODE_MAX];
    void (*wake)(void *ctx);
    void *ctx;
    pthread_mutex_t lock;
    json_t *inbox[QR_CLUSTER_INBOX_MAX];
    unsigned head, count;
    unsigned long dropped;
};

bool cluster_node_ok(const char *node)
{
    size_t n = strlen(node);

    return n > 0 && n < CLUSTER_NODE_MAX &&
           strspn(node, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/* A message for us: the JSON object sent, or, for a request nobody
 * listened to, {"k":"noresp","c":ID} with the connection id the reply
 * subject carries ("qr.signal.NODE.nr.ID"), or {"k":"noedge","e":EDGE}
 * for a liveness check of a replica ("qr.signal.NODE.ne.EDGE"). */
static json_t *cluster__parse(natsMsg *m)
{
    const char *subject = natsMsg_GetSubject(m), *tail;
    char *end;
    unsigned long long id;

    if (!natsMsg_IsNoResponders(m)) {
        json_t *j = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m),
                               JSON_REJECT_DUPLICATES, NULL);
        const char *k = json_string_value(json_object_get(j, "k"));

        /* Only NATS itself says nobody listened: a replica cannot. */
        if (k != NULL && (strcmp(k, "noresp") == 0 || strcmp(k, "noedge") == 0)) {
            json_decref(j);
            return NULL;
        }
        return j;
    }
    if (subject != NULL && (tail = strstr(subject, ".ne.")) != NULL && cluster_node_ok(tail + 4))
        return json_pack("{s:s,s:s}", "k", "noedge", "e", tail + 4);
    if (subject == NULL || (tail = strstr(subject, ".nr.")) == NULL)
        return NULL;
    id = strtoull(tail + 4, &end, 10);
    return *end == '\0' ? json_pack("{s:s,s:I}", "k", "noresp", "c", (json_int_t)id) : NULL;
}

/* libnats' thread: parse, queue, wake the loop. */
static void cluster__on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
    struct cluster *cl = arg;
    json_t *j = cluster__parse(m);
    bool queued = false;

    (void)nc, (void)sub;
    natsMsg_Destroy(m);
    pthread_mutex_lock(&cl->lock);
    if (json_is_object(j) && cl->count < QR_CLUSTER_INBOX_MAX) {
        cl->inbox[(cl->head + cl->count) % QR_CLUSTER_INBOX_MAX] = j;
        cl->count++;
        queued = true;
    } else {
        cl->dropped++;
    }
    /* Under the lock: cluster_quiesce waits for a wake in progress. */
    if (queued && cl->wake != NULL)
        cl->wake(cl->ctx);
    pthread_mutex_unlock(&cl->lock);
    if (!queued)
        json_decref(j);
}

void cluster_quiesce(struct cluster *cl)
{
    pthread_mutex_lock(&cl->lock);
    cl->wake = NULL;
    pthread_mutex_unlock(&cl->lock);
}

struct cluster *cluster_start(struct store *st, const char *node, void (*wake)(void *ctx),
                              void *ctx, char *err, size_t errlen)
{
    struct cluster *cl;
    char subject[sizeof(CLUSTER_SUBJECT_PREFIX) + CLUSTER_NODE_MAX + 8];
    natsConnection *nc = store_nats_connection(st);

    if (nc == NULL || !cluster_node_ok(node)) {
        snprintf(err, errlen, nc == NULL ? "the cluster needs a NATS store"
                                         : "node-id must be 1 to 63 of [A-Za-z0-9_-] in a "
                                           "cluster (it names the replica's NATS subject)");
        return NULL;
    }
    if ((cl = calloc(1, sizeof(*cl))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cl->nc = nc;
    cl->wake = wake;
    cl->ctx = ctx;
    pthread_mutex_init(&cl->lock, NULL);
    snprintf(cl->node, sizeof(cl->node), "%s", node);
    snprintf(subject, sizeof(subject), CLUSTER_SUBJECT_PREFIX "%s", node);
    if (natsConnection_Subscribe(&cl->sub, nc, subject, cluster__on_msg, cl) != NATS_OK ||
        natsConnection_Subscribe(&cl->nr, nc, strcat(subject, ".>"), cluster__on_msg, cl) !=
            NATS_OK ||
        natsConnection_FlushTimeout(nc, QR_CLUSTER_OP_MS) != NATS_OK) {
        snprintf(err, errlen, "cannot listen on the cluster: %s",
                 nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "no answer");
        cluster_free(cl);
        return NULL;
    }
    return cl;
}

void cluster_free(struct cluster *cl)
{
    if (cl == NULL)
        return;
    /* Drained: a callback running now finishes before cl goes. */
    for (natsSubscription **s = &cl->sub; s <= &cl->nr; s++) {
        if (*s == NULL)
            continue;
        if (natsSubscription_Drain(*s) == NATS_OK)
            natsSubscription_WaitForDrainCompletion(*s, QR_CLUSTER_OP_MS);
        natsSubscription_Destroy(*s);
    }
    while (cl->count > 0) {
        json_decref(cl->inbox[cl->head]);
        cl->head = (cl->head + 1) % QR_CLUSTER_INBOX_MAX;
        cl->count--;
    }
    pthread_mutex_destroy(&cl->lock);
    free(cl);
}

int cluster_send(struct cluster *cl, const char *node, json_t *msg)
{
    return cluster_ask(cl, node, msg, 0);
}

int cluster_ask(struct cluster *cl, const char *node, json_t *msg, uint64_t conn_id)
{
    char subject[sizeof(CLUSTER_SUBJECT_PREFIX) + CLUSTER_NODE_MAX];
    char reply[sizeof(CLUSTER_SUBJECT_PREFIX) + CLUSTER_NODE_MAX + 32];
    char *text = msg != NULL ? json_dumps(msg, JSON_COMPACT) : NULL;
    int rc = -1;

    json_decref(msg);
    if (text == NULL || !cluster_node_ok(node))
        goto out;
    snprintf(subject, sizeof(subject), CLUSTER_SUBJECT_PREFIX "%s", node);
    snprintf(reply, sizeof(reply), CLUSTER_SUBJECT_PREFIX "%s.nr.%llu", cl->node,
             (unsigned long long)conn_id);
    rc = (conn_id != 0 ? natsConnection_PublishRequest(cl->nc, subject, reply, text,
                                                       (int)strlen(text))
                       : natsConnection_Publish(cl->nc, subject, text, (int)strlen(text))) ==
                 NATS_OK
             ? 0
             : -1;
out:
    if (text != NULL) {
        /* SDP and names: wiped, not just freed. */
        OPENSSL_cleanse(text, strlen(text));
        free(text);
    }
    return rc;
}

int cluster_check(struct cluster *cl, const char *node)
{
    char subject[sizeof(CLUSTER_SUBJECT_PREFIX) + CLUSTER_NODE_MAX];
    char reply[sizeof(CLUSTER_SUBJECT_PREFIX) + 2 * CLUSTER_NODE_MAX + 8];
    static const char hb[] = "{\"k\":\"hb\"}";

    if (!cluster_node_ok(node))
        return -1;
    snprintf(subject, sizeof(subject), CLUSTER_SUBJECT_PREFIX "%s", node);
    snprintf(reply, sizeof(reply), CLUSTER_SUBJECT_PREFIX "%s.ne.%s", cl->node, node);
    return natsConnection_PublishRequest(cl->nc, subject, reply, hb, (int)sizeof(hb) - 1) ==
                   NATS_OK
               ? 0
               : -1;
}

json_t *cluster_next(struct cluster *cl)
{
    json_t *j = NULL;

    pthread_mutex_lock(&cl->lock);
    if (cl->count > 0) {
        j = cl->inbox[cl->head];
        cl->head = (cl->head + 1) % QR_CLUSTER_INBOX_MAX;
        cl->count--;
    }
    pthread_mutex_unlock(&cl->lock);
    return j;
}

unsigned long cluster_dropped(struct cluster *cl)
{
    unsigned long n;

    pthread_mutex_lock(&cl->lock);
    n = cl->dropped;
    pthread_mutex_unlock(&cl->lock);
    return n;
}
