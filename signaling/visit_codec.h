/* The visit core's state as a record a store keeps: a versioned JSON
 * object. Relay credentials are left out (derived again for each offer);
 * the display names are in it, so the store holds PHI and is protected
 * like the audit log. No I/O. */
#ifndef QUIETROOM_SIGNAL_VISIT_CODEC_H
#define QUIETROOM_SIGNAL_VISIT_CODEC_H

#include <jansson.h>

#include "visit.h"

/* A new JSON object for v (NULL when out of memory). */
json_t *visit_encode(const struct visit *v);
/* Fills v from j; 0, or -1 (v zeroed) when any field is absent, of the
 * wrong type, too long or out of range, or the version is unknown. */
int visit_decode(const json_t *j, struct visit *v);
/* The same from the record's text (len bytes); -1 if it is not JSON. */
int visit_decode_text(const char *rec, size_t len, struct visit *v);

#endif
