/* quietroomctl token / keygen: EHR-style session tokens for development and
 * tests. A real EHR signs its own tokens; these use the same format. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "quietroom/auth/jwt.h"
#include "token_mint.h"

#define TOKEN_TTL_DEFAULT 3600
/* Longer than any policy accepts, so that tests can mint refused tokens. */
#define TOKEN_TTL_MAX (30 * 86400)

static const char token_usage[] =
    "usage: quietroomctl token --key PRIVATE.pem --sid S --role R --sub U [--ttl SECONDS]\n"
    "                          [--iss I] [--aud A] [--kid K] [--name N] [--jti J]\n"
    "                          [--nbf-in SECONDS] [--part2] [--locale L]\n"
    "Prints a signed JWT (ES256, EdDSA or RS256 after the key type). Defaults: ttl 3600,\n"
    "iss quietroom-dev, aud quietroom, kid dev, jti random.\n";

static const char keygen_usage[] =
    "usage: quietroomctl keygen --out PREFIX [--type ec|ed25519|rsa] [--kid K]\n"
    "Creates PREFIX.key (private, mode 0600), PREFIX.pub.pem and PREFIX.jwks.json.\n"
    "Defaults: type ec (P-256, ES256), kid dev. Never overwrites a file.\n";

static int token__mint(const struct token_mint_claims *o)
{
    char err[256], *tok = NULL;

    if (token_mint(o, &tok, err, sizeof(err)) != 0)
        return ctl_fail("token", "%s", err);
    puts(tok);
    token_mint_free(tok);
    return CTL_OK;
}

/* Sets one option in o. Returns -1 to go on, or the exit code. */
static int token__option(struct token_mint_claims *o, int c, const char *arg)
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
    case 'l':
        o->locale = arg;
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
        {"locale", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    struct token_mint_claims o = {
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
    if ((bad = token_mint_bad_claim(&o)) != NULL)
        return ctl_usage_error("token", "--%s is required: 1 to %d bytes", bad, JWT_CLAIM_MAX - 1);
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
