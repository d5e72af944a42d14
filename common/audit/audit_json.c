/* The shape of a sealed audit line, read without parsing it: a small state
 * machine over the JSON grammar that stops at the first byte a sealed line
 * could not hold there, and a fixed-position check of the line's end. No
 * allocation, no recursion deeper than one step, one pass over the text. */
#include "quietroom/audit/audit_json.h"

#include <string.h>

#define AJ_MAC_MEMBER ",\"mac\":\""

static bool aj__b64char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '+' || ch == '/' || ch == '=';
}

/* A line that is no longer JSON may still end in its original mac member:
 * then the damage is an edit, not a crash (a crash cuts the end off). */
bool audit_json_tail_mac(const char *buf, size_t len, char *mac)
{
    size_t m = strlen(AJ_MAC_MEMBER), need = m + AUDIT_MAC_B64 - 1 + 2;
    const char *tail;

    if (len < need || len > AUDIT_JSON_LINE_MAX || buf[len - 2] != '"' || buf[len - 1] != '}')
        return false;
    tail = buf + len - need;
    if (memcmp(tail, AJ_MAC_MEMBER, m) != 0)
        return false;
    for (size_t i = 0; i < AUDIT_MAC_B64 - 1; i++) {
        if (!aj__b64char(tail[m + i]))
            return false;
    }
    memcpy(mac, tail + m, AUDIT_MAC_B64 - 1);
    mac[AUDIT_MAC_B64 - 1] = '\0';
    return true;
}

/* --- is it the start of a sealed line? ----------------------------------------
 * A crash cuts a line short; damage (or an edit) puts a byte where a line
 * allows none. This reads buf as the beginning of one JSON object whose
 * last member is the seal, "mac":"<44 base64 characters>", and says whether
 * it could go on to become one. */

enum aj_state {
    JS_VALUE,        /* a value is due */
    JS_VALUE_OR_END, /* after '[' */
    JS_KEY_OR_END,   /* after '{' */
    JS_KEY,          /* after ',' in an object */
    JS_COLON,
    JS_NEXT,         /* after a value: ',' or the closing bracket */
    JS_STRING,
    JS_ESCAPE,
    JS_HEX,
    JS_LITERAL,
    JS_NUMBER,
    JS_DONE,
};

struct aj_parser {
    enum aj_state st;
    char stack[AUDIT_JSON_DEPTH_MAX]; /* '{' or '[' */
    int depth;
    bool key;                    /* the string being read is a key */
    char keytext[4];             /* the first bytes of a top-level key */
    int keylen;
    bool mac_key;                /* the top-level key just read is "mac" */
    bool in_mac;                 /* reading the seal's value */
    int mac_len;
    bool sealed;                 /* the seal is complete: only '}' may follow */
    int hex;                     /* \u digits still due */
    const char *lit;             /* the rest of "true", "false" or "null" */
    char num;                    /* the number's state, see aj__num_step */
};

/* Accepts the next character of a number if the grammar allows it: the
 * state is the last class seen ('-', '0' leading zero, '1' digits, '.',
 * 'f' fraction digits, 'e', 's' exponent sign, 'x' exponent digits). */
static bool aj__num_step(char *last, char ch)
{
    bool digit = ch >= '0' && ch <= '9';
    char was = *last, next = 0;

    if (was == '-')
        next = ch == '0' ? '0' : digit ? '1' : 0;
    else if (was == '0')
        next = ch == '.' ? '.' : (ch == 'e' || ch == 'E') ? 'e' : 0;
    else if (was == '1')
        next = digit ? '1' : ch == '.' ? '.' : (ch == 'e' || ch == 'E') ? 'e' : 0;
    else if (was == '.')
        next = digit ? 'f' : 0;
    else if (was == 'f')
        next = digit ? 'f' : (ch == 'e' || ch == 'E') ? 'e' : 0;
    else if (was == 'e')
        next = digit ? 'x' : (ch == '+' || ch == '-') ? 's' : 0;
    else if (was == 's' || was == 'x')
        next = digit ? 'x' : 0;
    *last = next ? next : was;
    return next != 0;
}

static bool aj__num_complete(char last)
{
    return last == '0' || last == '1' || last == 'f' || last == 'x';
}

/* A value ended: what may follow depends on the bracket it is in. */
static void aj__value_done(struct aj_parser *p)
{
    p->st = p->depth == 0 ? JS_DONE : JS_NEXT;
}

static bool aj__value(struct aj_parser *p, char ch)
{
    static const char *const lits[] = {"true", "false", "null"};

    if (p->mac_key && ch != '"')
        return false;
    if (ch == '{' || ch == '[') {
        if (p->depth == AUDIT_JSON_DEPTH_MAX)
            return false;
        p->stack[p->depth++] = ch;
        p->st = ch == '{' ? JS_KEY_OR_END : JS_VALUE_OR_END;
        return true;
    }
    if (ch == '"') {
        p->st = JS_STRING;
        p->key = false;
        p->in_mac = p->mac_key;
        p->mac_len = 0;
        return true;
    }
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        p->num = ch == '-' ? '-' : ch == '0' ? '0' : '1';
        p->st = JS_NUMBER;
        return true;
    }
    for (size_t i = 0; i < 3; i++) {
        if (ch == lits[i][0]) {
            p->lit = lits[i] + 1;
            p->st = JS_LITERAL;
            return true;
        }
    }
    return false;
}

static bool aj__close(struct aj_parser *p, char ch)
{
    char open = ch == '}' ? '{' : '[';

    if (p->depth == 0 || p->stack[p->depth - 1] != open)
        return false;
    p->depth--;
    aj__value_done(p);
    return true;
}

/* The seal's value: base64 only, exactly AUDIT_MAC_B64 - 1 characters. */
static bool aj__in_mac(struct aj_parser *p, char ch)
{
    if (ch != '"')
        return aj__b64char(ch) && ++p->mac_len < AUDIT_MAC_B64;
    if (p->mac_len != AUDIT_MAC_B64 - 1)
        return false;
    p->in_mac = p->mac_key = false;
    p->sealed = true;
    aj__value_done(p);
    return true;
}

static bool aj__in_string(struct aj_parser *p, char ch)
{
    if (p->in_mac)
        return aj__in_mac(p, ch);
    if (p->st == JS_ESCAPE) {
        if (ch == 'u') {
            p->hex = 4;
            p->st = JS_HEX;
            return true;
        }
        p->st = JS_STRING;
        return strchr("\"\\/bfnrt", ch) != NULL && ch != '\0';
    }
    if (p->st == JS_HEX) {
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
            return false;
        if (--p->hex == 0)
            p->st = JS_STRING;
        return true;
    }
    if (ch == '\\') {
        p->st = JS_ESCAPE;
        p->keylen = (int)sizeof(p->keytext); /* an escaped key is never "mac" */
        return true;
    }
    if (ch == '"') {
        if (p->key) {
            p->st = JS_COLON;
            p->mac_key = p->depth == 1 && p->keylen == 3 && memcmp(p->keytext, "mac", 3) == 0;
        } else {
            aj__value_done(p);
        }
        return true;
    }
    if (p->key && p->keylen < (int)sizeof(p->keytext))
        p->keytext[p->keylen++] = ch;
    return (unsigned char)ch >= 0x20;
}

static bool aj__step(struct aj_parser *p, char ch)
{
    bool ws = ch == ' ' || ch == '\t' || ch == '\r';

    switch (p->st) {
    case JS_STRING:
    case JS_ESCAPE:
    case JS_HEX:
        return aj__in_string(p, ch);
    case JS_LITERAL:
        if (*p->lit != ch)
            return false;
        if (*++p->lit == '\0')
            aj__value_done(p);
        return true;
    case JS_NUMBER:
        if (aj__num_step(&p->num, ch))
            return true;
        if (!aj__num_complete(p->num))
            return false;
        aj__value_done(p);
        return aj__step(p, ch);
    case JS_VALUE_OR_END:
        if (ch == ']')
            return aj__close(p, ch);
        /* fall through */
    case JS_VALUE:
        return ws || aj__value(p, ch);
    case JS_KEY_OR_END:
        if (ch == '}')
            return aj__close(p, ch);
        /* fall through */
    case JS_KEY:
        if (ch == '"') {
            p->st = JS_STRING;
            p->key = true;
            p->keylen = 0;
            return true;
        }
        return ws;
    case JS_COLON:
        if (ch == ':')
            p->st = JS_VALUE;
        return ws || ch == ':';
    case JS_NEXT:
        if (p->sealed && ch != '}')
            return false;
        if (ch == ',') {
            p->st = p->stack[p->depth - 1] == '{' ? JS_KEY : JS_VALUE;
            return true;
        }
        if (ch == '}' || ch == ']')
            return aj__close(p, ch);
        return ws;
    case JS_DONE:
        break;
    }
    return false;
}

/* What a crash leaves of a line: see the header. */
bool audit_json_is_fragment(const char *buf, size_t len)
{
    struct aj_parser p = {.st = JS_VALUE};

    if (len == 0 || len > AUDIT_JSON_LINE_MAX || buf[0] != '{')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!aj__step(&p, buf[i]))
            return false;
    }
    return p.st != JS_DONE;
}

