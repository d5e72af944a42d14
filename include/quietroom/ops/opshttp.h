/* Operator endpoints over plain HTTP (metrics, health, dashboards): GET
 * routes whose handlers build the whole response in memory, served by
 * libwebsockets on a thread of its own (the relay) or as one more vhost of
 * the caller's context (signaling). No HTTP parsing of our own. */
#ifndef QUIETROOM_OPSHTTP_H
#define QUIETROOM_OPSHTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "quietroom/base/netaddr.h"

struct lws_context;

struct ops_response {
    int status;                 /* 200 unless the handler sets another */
    const char *content_type;   /* a constant; text/plain if NULL */
    char *body;                 /* malloc'd by the handler, freed by opshttp */
    size_t len;
};

/* Builds the response to a GET of the route's path; query is the part
 * after '?' ("" if none). Called on the serving thread. */
typedef void (*ops_handler_fn)(void *ctx, const char *query, struct ops_response *out);

struct ops_route {
    const char *path;
    ops_handler_fn fn;
    bool open;                  /* served without the bearer token */
};

/* What a listener serves. token, if set, is required as "Authorization:
 * Bearer TOKEN" on every route not marked open; the site must outlive the
 * listener. */
struct ops_site {
    const struct ops_route *routes;
    unsigned n_routes;
    void *ctx;
    const char *token;
};

/* Signaling: adds a listener to an existing context (created with
 * LWS_SERVER_OPTION_EXPLICIT_VHOSTS). Returns the bound port or -1. */
int ops_http_vhost(struct lws_context *lws, const union netaddr *listen,
                   const struct ops_site *site, char *err, size_t errlen);

/* The relay: a context and a thread of its own. Returns NULL on failure
 * (err says why); ops_http_stop stops and frees. */
struct ops_http *ops_http_start(const union netaddr *listen, const struct ops_site *site,
                                char *err, size_t errlen);
int ops_http_port(const struct ops_http *h);
void ops_http_stop(struct ops_http *h);

/* Reads an operator token file (ops-token-file): one line of
 * QR_OPS_TOKEN_MIN..MAX visible ASCII characters, the file not readable by
 * others. Writes it NUL-terminated into out (QR_OPS_TOKEN_MAX + 1 bytes).
 * Returns 0, or -1 with err set (never the token). */
int ops_token_load(const char *path, char *out, char *err, size_t errlen);

/* Helpers for handlers: a copy of text as the body (content type ct). */
void ops_reply(struct ops_response *out, int status, const char *ct, const char *text);

#endif
