/* Loading signaling's keys, all or nothing. */
#include "keys.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "quietroom/ops/opshttp.h"
#include "tls.h"

/* Hashes what the EHR key options name and what the files hold, so that a
 * reload can say whether the keys changed without comparing key objects. */
static int keys__ehr_digest(const struct signal_config *cfg, uint8_t out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char buf[4096];
    int rc = -1;

    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        goto out;
    for (unsigned i = 0; i < cfg->n_ehr_keys; i++) {
        const struct signal_ehr_key *k = &cfg->ehr_keys[i];
        FILE *f = fopen(k->path, "rb");
        size_t n;

        if (f == NULL)
            goto out;
        EVP_DigestUpdate(md, k->kid, strlen(k->kid) + 1);
        EVP_DigestUpdate(md, k->jwks ? "J" : "P", 1);
        EVP_DigestUpdate(md, k->path, strlen(k->path) + 1);
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
            EVP_DigestUpdate(md, buf, n);
        fclose(f);
    }
    rc = EVP_DigestFinal_ex(md, out, NULL) == 1 ? 0 : -1;
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    EVP_MD_CTX_free(md);
    return rc;
}

static int keys__ehr(const struct signal_config *cfg, struct signal_keys *out, char *err,
                     size_t errlen)
{
    char why[256];

    if ((out->ehr = jwt_keyset_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (unsigned i = 0; i < cfg->n_ehr_keys; i++) {
        const struct signal_ehr_key *k = &cfg->ehr_keys[i];
        int rc = k->jwks ? jwt_keyset_add_jwks(out->ehr, k->path, why, sizeof(why))
                         : jwt_keyset_add_pem(out->ehr, k->kid, k->path, why, sizeof(why));

        if (rc != 0) {
            snprintf(err, errlen, "EHR key %s: %s", k->path, why);
            return -1;
        }
    }
    if (keys__ehr_digest(cfg, out->ehr_digest) != 0) {
        snprintf(err, errlen, "EHR keys: cannot read them again");
        return -1;
    }
    return 0;
}

int signal_keys_load(const struct signal_config *cfg, struct signal_keys *out, char *err,
                     size_t errlen)
{
    char why[256];

    memset(out, 0, sizeof(*out));
    if (keys__ehr(cfg, out, err, errlen) != 0)
        goto fail;
    if (keyring_load(cfg->relay_secret_file, &out->relay, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "relay secret: %s", why);
        goto fail;
    }
    if (cfg->tls_cert[0] != '\0' &&
        (out->cert = tls_cert_load(cfg->tls_cert, cfg->tls_key, why, sizeof(why))) == NULL) {
        snprintf(err, errlen, "TLS: %s", why);
        goto fail;
    }
    if (cfg->daemon.ops_token_file[0] != '\0') {
        if (ops_token_load(cfg->daemon.ops_token_file, out->ops_token, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "operator token: %s", why);
            goto fail;
        }
        out->has_token = true;
    }
    return 0;
fail:
    signal_keys_free(out);
    return -1;
}

void signal_keys_free(struct signal_keys *k)
{
    jwt_keyset_free(k->ehr);
    k->ehr = NULL;
    keyring_wipe(&k->relay);
    tls_cert_free(k->cert);
    k->cert = NULL;
    OPENSSL_cleanse(k->ops_token, sizeof(k->ops_token));
    k->has_token = false;
}
