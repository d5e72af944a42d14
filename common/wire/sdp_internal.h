/* What sdp.c (rewriting), sdp_parse.c (reading and checking) and
 * sdp_summary.c (what a native client needs) share: spans over the
 * caller's text, the attributes the relay acts on, and sections. Not part
 * of the public interface. */
#ifndef QUIETROOM_SDP_INTERNAL_H
#define QUIETROOM_SDP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "quietroom/wire/sdp.h"

/* Longest line accepted, read or written; browsers' longest are ~200 bytes. */
#define SDP_LINE_MAX 4096

/* A window on the caller's text; pos advances a line at a time. */
struct sdp__reader {
    const char *p;
    size_t len;
    size_t pos;
};

/* A run of the caller's text: a line without its terminator, or a field. */
struct sdp__span {
    const char *p;
    size_t len;
};

/* Attributes the relay acts on; the rest pass through untouched. */
enum sdp__attr {
    SDP__A_OTHER,
    SDP__A_CANDIDATE,
    SDP__A_END_OF_CANDIDATES,
    SDP__A_REMOTE_CANDIDATES,
    SDP__A_RTCP,
    SDP__A_ICE_LITE,
    SDP__A_ICE_UFRAG,
    SDP__A_ICE_PWD,
    SDP__A_EXTMAP,
    SDP__A_RTCP_MUX,
    SDP__A_FINGERPRINT,
    SDP__A_SETUP,
    SDP__A_BUNDLE_ONLY,
    SDP__A_GROUP,
};

#define SDP__BIT(a) (1u << (a))

/* m=<media> <port> <proto> <fmt>... (RFC 8866 §5.14). */
struct sdp__mline {
    struct sdp__span media, port, proto, fmts;
    unsigned portnum;
};

/* The session part or one media section, and what it says. */
struct sdp__section {
    struct sdp__reader lines;
    bool media;
    bool dtls;
    bool rtp;
    bool bad;            /* an o= or m= line that cannot be rewritten */
    unsigned port;
    unsigned attrs;      /* SDP__BIT per attribute present */
};


/* --- sdp_parse.c --------------------------------------------------------- */

/* Next line, LF or CRLF stripped; false at the end of the text. */
bool sdp__next_line(struct sdp__reader *r, struct sdp__span *line);

/* s is exactly lit (sdp__eq_nocase: but for case). */
bool sdp__eq(const struct sdp__span *s, const char *lit);
bool sdp__eq_nocase(const struct sdp__span *s, const char *lit);

/* Size, v=0 first, and every line well-formed <type>=<value>. */
enum sdp_error sdp__check_lines(const char *in, size_t len);

/* Splits s at single spaces into at most max fields, the last taking the
 * rest. Returns the number of fields, or 0 if one is empty. */
size_t sdp__fields(const struct sdp__span *s, struct sdp__span *f, size_t max);

/* 1-5 digits, at most 65535. */
bool sdp__port(const struct sdp__span *s, unsigned *port);

/* The value of a line, after "x=". */
struct sdp__span sdp__value(const struct sdp__span *l);

/* Which attribute line l is (SDP__A_OTHER for any other line), with its
 * value in *value. */
enum sdp__attr sdp__attr_of(const struct sdp__span *l, struct sdp__span *value);

/* An attribute the rewrite never passes on. */
bool sdp__attr_drops(enum sdp__attr id);

/* An a=extmap value naming a voice-activity extension sent in the clear. */
bool sdp__extmap_is_voice_level(const struct sdp__span *v);

/* m= and o= lines split into their fields (f: room for 7). */
bool sdp__parse_mline(const struct sdp__span *l, struct sdp__mline *m);
bool sdp__parse_origin(const struct sdp__span *l, struct sdp__span *f);

/* The next section of checked text (the session part first). */
bool sdp__next_section(struct sdp__reader *all, struct sdp__section *s);

/* A media section the answer turned down (port 0, not bundle-only). */
bool sdp__rejected(const struct sdp__section *s);

/* Transport, BUNDLE, rtcp-mux and fingerprints, after sdp__check_lines. */
enum sdp_error sdp__check_structure(const char *in, size_t len);

/* AF_INET, AF_INET6, or 0 if addr (SDP_ADDR_MAX bytes at most) is not a
 * numeric address. */
int sdp__family(const char *addr);

#endif
