/* quietroomctl token / keygen: EHR-style session tokens for development and
 * tests. A real EHR signs its own tokens; these use the same format. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ctl.h"
#include "quietroom/clock.h"
#include "quietroom/jwt.h"
#include "quietroom/limits.h"

#define TOKEN_TTL_DEFAULT 3600
/* Longer than any policy accepts, so that tests can mint refused tokens. */
#define TOKEN_TTL_MAX (30 * 86400)
#define TOKEN_JTI_BYTES 16

static const char token_usage[] =
    "usage: quietroomctl token --key PRIVATE.pem --sid S --role R --sub U [--ttl SECONDS]\n"
    "                          [--iss I] [--aud A] [--kid K] [--name N] [--jti J]\n"
    "                          [--nbf-in SECONDS] [--part2]\n"
    "Prints a signed JWT (ES256, EdDSA or RS256 after the key type). Defaults: ttl 3600,\n"
    "iss quietroom-dev, aud quietroom, kid dev, jti random.\n";

static const char keygen_usage[] =
    "usage: quietroomctl keygen --out PREFIX [--type ec|ed25519|rsa] [--kid K]\n"
    "Creates PREFIX.key (private, mode 0600), PREFIX.pub.pem and PREFIX.jwks.json.\n"
    "Defaults: type ec (P-256, ES256), kid dev. Never overwrites a file.\n";

struct token_opts {
    const char *key, *iss, *aud, *kid, *sid, *role, *sub, *name, *jti;
    uint32_t ttl, nbf_in;
    bool nbf, part2;
};

/* A fresh 128-bit jti in base64url. */
static int token__random_jti(char *out)
{
    unsigned char raw[TOKEN_JTI_BYTES], text[(TOKEN_JTI_BYTES + 2) / 3 * 4 + 1];
    int n;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    n = EVP_EncodeBlock(text, raw, sizeof(raw));
    while (n > 0 && text[n - 1] == '=')
        n--;
    for (int i = 0; i < n; i++)
        out[i] = text[i] == '+' ? '-' : text[i] == '/' ? '_' : (char)text[i];
    out[n] = '\0';
    return 0;
}

static json_t *token__claims(const struct token_opts *o, const char *jti, int64_t now)
{
    json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "iss", o->iss, "aud", o->aud, "sub",
                          o->sub, "role", o->role, "sid", o->sid, "jti", jti, "iat",
                          (json_int_t)now, "exp", (json_int_t)(now + o->ttl));

    if (c == NULL)
        return NULL;
    if ((o->nbf && json_object_set_new(c, "nbf", json_integer(now + o->nbf_in)) != 0) ||
        (o->name && json_object_set_new(c, "name", json_string(o->name)) != 0) ||
        (o->part2 && json_object_set_new(c, "42cfr_part2", json_true()) != 0)) {
        json_decref(c);
        return NULL;
    }
    return c;
}

/* Every string claim must fit what the verifier copies out. */
static const char *token__bad_string(const struct token_opts *o)
{
    const struct {
        const char *name, *value;
        bool required;
    } s[] = {
        {"--sid", o->sid, true},    {"--role", o->role, true}, {"--sub", o->sub, true},
        {"--iss", o->iss, true},    {"--aud", o->aud, true},   {"--jti", o->jti, false},
        {"--name", o->name, false},
    };

    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        if (s[i].value == NULL ? s[i].required
                               : s[i].value[0] == '\0' || strlen(s[i].value) >= JWT_CLAIM_MAX)
            return s[i].name;
    }
    return NULL;
}

static int token__mint(const struct token_opts *o)
{
    char jti[JWT_CLAIM_MAX], err[256], *tok = NULL;
    json_t *claims;

    if (o->jti != NULL)
        snprintf(jti, sizeof(jti), "%s", o->jti);
    else if (token__random_jti(jti) != 0)
        return ctl_fail("token", "no randomness available");
    if ((claims = token__claims(o, jti, (int64_t)clock_wall_s())) == NULL)
        return ctl_fail("token", "cannot build the claims (is every value UTF-8?)");
    if (jwt_sign_pem(o->key, o->kid, claims, &tok, err, sizeof(err)) != 0) {
        json_decref(claims);
        return ctl_fail("token", "%s", err);
    }
    json_decref(claims);
    puts(tok);
    OPENSSL_cleanse(tok, strlen(tok));
    free(tok);
    return CTL_OK;
}

/* Sets one option in o. Returns -1 to go on, or the exit code. */
static int token__option(struct token_opts *o, int c, const char *arg)
{
    switch (c) {
    case 'k':
        o->key = arg;
        break;
    case 's':
        o->sid = arg;
        break;
    case 'r':
        o->role = arg;
        break;
    case 'u':
        o->sub = arg;
        break;
    case 'i':
        o->iss = arg;
        break;
    case 'a':
        o->aud = arg;
        break;
    case 'K':
        o->kid = arg;
        break;
    case 'n':
        o->name = arg;
        break;
    case 'j':
        o->jti = arg;
        break;
    case '2':
        o->part2 = true;
        break;
    case 't':
        if (!ctl_parse_u32(arg, 1, TOKEN_TTL_MAX, &o->ttl))
            return ctl_usage_error("token", "--ttl: 1 to %d seconds", TOKEN_TTL_MAX);
        break;
    case 'b':
        if (!ctl_parse_u32(arg, 0, TOKEN_TTL_MAX, &o->nbf_in))
            return ctl_usage_error("token", "--nbf-in: 0 to %d seconds", TOKEN_TTL_MAX);
        o->nbf = true;
        break;
    case 'h':
        fputs(token_usage, stdout);
        return CTL_OK;
    default:
        fputs(token_usage, stderr);
        return CTL_USAGE;
    }
    return -1;
}

int cmd_token(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},    {"sid", required_argument, NULL, 's'},
        {"role", required_argument, NULL, 'r'},   {"sub", required_argument, NULL, 'u'},
        {"ttl", required_argument, NULL, 't'},    {"iss", required_argument, NULL, 'i'},
        {"aud", required_argument, NULL, 'a'},    {"kid", required_argument, NULL, 'K'},
        {"name", required_argument, NULL, 'n'},   {"jti", required_argument, NULL, 'j'},
        {"nbf-in", required_argument, NULL, 'b'}, {"part2", no_argument, NULL, '2'},
        {"help", no_argument, NULL, 'h'},         {0, 0, 0, 0},
    };
    struct token_opts o = {
        .iss = "quietroom-dev", .aud = "quietroom", .kid = "dev", .ttl = TOKEN_TTL_DEFAULT};
    const char *bad;
    int c, rc;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if ((rc = token__option(&o, c, optarg)) >= 0)
            return rc;
    }
    if (optind != argc || o.key == NULL) {
        fputs(token_usage, stderr);
        return CTL_USAGE;
    }
    if ((bad = token__bad_string(&o)) != NULL)
        return ctl_usage_error("token", "%s is required: 1 to %d bytes", bad, JWT_CLAIM_MAX - 1);
    return token__mint(&o);
}

int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"type", required_argument, NULL, 't'},
        {"out", required_argument, NULL, 'o'},
        {"kid", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    const char *type = "ec", *out = NULL, *kid = "dev";
    char err[512];
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 't')
            type = optarg;
        else if (c == 'o')
            out = optarg;
        else if (c == 'k')
            kid = optarg;
        else if (c == 'h') {
            fputs(keygen_usage, stdout);
            return CTL_OK;
        } else {
            fputs(keygen_usage, stderr);
            return CTL_USAGE;
        }
    }
    if (optind != argc || out == NULL) {
        fputs(keygen_usage, stderr);
        return CTL_USAGE;
    }
    if (strcmp(type, "ec") != 0 && strcmp(type, "ed25519") != 0 && strcmp(type, "rsa") != 0)
        return ctl_usage_error("keygen", "--type: ec, ed25519 or rsa");
    if (jwt_keygen(type, out, kid, err, sizeof(err)) != 0)
        return ctl_fail("keygen", "%s", err);
    return CTL_OK;
}
