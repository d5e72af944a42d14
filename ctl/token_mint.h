/* EHR-style session tokens, signed the way an EHR signs them: `quietroomctl
 * token` prints one for development and tests, `quietroomctl probe` mints a
 * clinician's and a patient's for each synthetic call. */
#ifndef QUIETROOM_CTL_TOKEN_MINT_H
#define QUIETROOM_CTL_TOKEN_MINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct token_mint_claims {
    const char *key;            /* private key (PEM) path; the algorithm follows its type */
    const char *kid;            /* header kid */
    const char *iss, *aud, *sub, *role, *sid;
    const char *name;           /* optional display name */
    const char *locale;         /* optional BCP 47 language of the page ("es") */
    const char *jti;            /* NULL: 128 random bits */
    uint32_t ttl;               /* exp = iat + ttl */
    bool nbf;                   /* add nbf = iat + nbf_in */
    uint32_t nbf_in;
    bool part2;                 /* "42cfr_part2": true */
};

/* The name of the first string claim that is required and absent, empty, or
 * longer than signaling accepts (JWT_CLAIM_MAX - 1 bytes); NULL if all fit. */
const char *token_mint_bad_claim(const struct token_mint_claims *c);

/* Signs a token issued now. *out is a new string; the caller releases it
 * with token_mint_free. Returns 0, or -1 with a reason in err. */
int token_mint(const struct token_mint_claims *c, char **out, char *err, size_t errlen);

/* Wipes and frees a token (NULL-safe): it is a credential until it expires. */
void token_mint_free(char *token);

#endif
