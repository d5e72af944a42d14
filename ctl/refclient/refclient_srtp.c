/* DTLS-SRTP keying (RFC 5764 §4.2): the exporter output is
 * client key | server key | client salt | server salt, with lengths set by
 * the negotiated profile. The DTLS client protects with the client half. */
#include "refclient_internal.h"

#include <openssl/crypto.h>
#include <openssl/srtp.h>
#include <stdio.h>
#include <string.h>

#define SRTP_EXPORTER_LABEL "EXTRACTOR-dtls_srtp"
#define SRTP_KEY_MAX 16
#define SRTP_SALT_MAX 14

struct srtp__profile {
    unsigned long id; /* OpenSSL's SRTP_* protection profile id */
    size_t key_len, salt_len;
    void (*set_rtp)(srtp_crypto_policy_t *p);
    void (*set_rtcp)(srtp_crypto_policy_t *p);
};

static const struct srtp__profile srtp__profiles[] = {
    {SRTP_AEAD_AES_128_GCM, 16, 12, srtp_crypto_policy_set_aes_gcm_128_16_auth,
     srtp_crypto_policy_set_aes_gcm_128_16_auth},
    {SRTP_AES128_CM_SHA1_80, 16, 14, srtp_crypto_policy_set_rtp_default,
     srtp_crypto_policy_set_rtcp_default},
};

/* Mutable globals, and why they must be: libsrtp2's crypto kernel is
 * process-wide and srtp_init() is not thread-safe, so it runs once per
 * process (pthread_once) for every client, and its outcome is kept for the
 * clients that come after. Written only inside srtp__init. */
static pthread_once_t srtp__once = PTHREAD_ONCE_INIT;
static srtp_err_status_t srtp__init_status = srtp_err_status_fail;

static void srtp__init(void)
{
    srtp__init_status = srtp_init();
}

/* libsrtp2 keeps one process-wide crypto kernel; it is never shut down
 * because other clients in the process may still use it. */
void refclient__srtp_global_init(void)
{
    pthread_once(&srtp__once, srtp__init);
}

static const struct srtp__profile *srtp__find(unsigned long id)
{
    for (size_t i = 0; i < sizeof(srtp__profiles) / sizeof(srtp__profiles[0]); i++) {
        if (srtp__profiles[i].id == id)
            return &srtp__profiles[i];
    }
    return NULL;
}

static int srtp__create(srtp_t *session, const struct srtp__profile *p, srtp_ssrc_type_t dir,
                        unsigned char *key)
{
    srtp_policy_t policy;

    memset(&policy, 0, sizeof(policy));
    p->set_rtp(&policy.rtp);
    p->set_rtcp(&policy.rtcp);
    policy.ssrc.type = dir;
    policy.key = key;
    policy.window_size = 0; /* libsrtp2's default replay window (128) */
    policy.next = NULL;
    return srtp_create(session, &policy) == srtp_err_status_ok ? 0 : -1;
}

/* Builds key||salt for both directions from the exporter output. */
static void srtp__split(const unsigned char *m, const struct srtp__profile *p, bool is_client,
                        unsigned char *local, unsigned char *remote)
{
    const unsigned char *client_key = m, *server_key = m + p->key_len;
    const unsigned char *client_salt = m + 2 * p->key_len;
    const unsigned char *server_salt = client_salt + p->salt_len;

    memcpy(local, is_client ? client_key : server_key, p->key_len);
    memcpy(local + p->key_len, is_client ? client_salt : server_salt, p->salt_len);
    memcpy(remote, is_client ? server_key : client_key, p->key_len);
    memcpy(remote + p->key_len, is_client ? server_salt : client_salt, p->salt_len);
}

int refclient__srtp_start(struct refclient__srtp *s, SSL *ssl, bool is_client, char *profile,
                          size_t profile_len, char *err, size_t errlen)
{
    unsigned char material[2 * (SRTP_KEY_MAX + SRTP_SALT_MAX)];
    unsigned char local[SRTP_KEY_MAX + SRTP_SALT_MAX], remote[SRTP_KEY_MAX + SRTP_SALT_MAX];
    const SRTP_PROTECTION_PROFILE *negotiated = SSL_get_selected_srtp_profile(ssl);
    const struct srtp__profile *p;
    int ret = -1;

    if (srtp__init_status != srtp_err_status_ok) {
        refclient__errf(err, errlen, "srtp_init failed");
        return -1;
    }
    p = negotiated ? srtp__find(negotiated->id) : NULL;
    if (p == NULL) {
        refclient__errf(err, errlen, "no usable SRTP profile negotiated");
        return -1;
    }
    if (SSL_export_keying_material(ssl, material, 2 * (p->key_len + p->salt_len), SRTP_EXPORTER_LABEL,
                                   strlen(SRTP_EXPORTER_LABEL), NULL, 0, 0) != 1) {
        refclient__errf(err, errlen, "SRTP key export failed");
        goto out;
    }
    srtp__split(material, p, is_client, local, remote);
    if (srtp__create(&s->out, p, ssrc_any_outbound, local) != 0 ||
        srtp__create(&s->in, p, ssrc_any_inbound, remote) != 0) {
        refclient__errf(err, errlen, "srtp_create failed for %s", negotiated->name);
        refclient__srtp_free(s);
        goto out;
    }
    snprintf(profile, profile_len, "%s", negotiated->name);
    ret = 0;

out:
    OPENSSL_cleanse(material, sizeof(material));
    OPENSSL_cleanse(local, sizeof(local));
    OPENSSL_cleanse(remote, sizeof(remote));
    return ret;
}

void refclient__srtp_free(struct refclient__srtp *s)
{
    if (s->out != NULL)
        srtp_dealloc(s->out);
    if (s->in != NULL)
        srtp_dealloc(s->in);
    s->out = NULL;
    s->in = NULL;
}
