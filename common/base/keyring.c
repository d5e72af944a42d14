/* Secret file parsing. Error messages name lines, never their content. */
#include "quietroom/base/keyring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define KEYRING_FILE_MAX 4096

static int keyring__hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parses one "ID HEX" line of length len into key. */
static int keyring__parse_line(const char *line, size_t len, struct keyring_key *key)
{
    size_t i = 0, hex_start, hex_len;
    unsigned id = 0;

    while (i < len && line[i] >= '0' && line[i] <= '9' && id <= 255)
        id = id * 10 + (unsigned)(line[i++] - '0');
    if (i == 0 || id > 255 || i == len || (line[i] != ' ' && line[i] != '\t'))
        return -1;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    hex_start = i;
    while (i < len && keyring__hexval(line[i]) >= 0)
        i++;
    hex_len = i - hex_start;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
        i++;
    if (i != len || hex_len % 2 != 0 || hex_len / 2 < QR_SECRET_MIN || hex_len / 2 > QR_SECRET_MAX)
        return -1;
    key->id = (uint8_t)id;
    key->len = hex_len / 2;
    for (size_t b = 0; b < key->len; b++)
        key->secret[b] = (uint8_t)(keyring__hexval(line[hex_start + 2 * b]) << 4 |
                                   keyring__hexval(line[hex_start + 2 * b + 1]));
    return 0;
}

int keyring_parse(const char *text, struct keyring *kr, char *err, size_t errlen)
{
    unsigned lineno = 0;

    memset(kr, 0, sizeof(*kr));
    while (*text != '\0') {
        const char *end = strchr(text, '\n');
        size_t len = end ? (size_t)(end - text) : strlen(text);
        const char *p = text;

        lineno++;
        text += len + (end ? 1 : 0);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        if (len == 0 || *p == '#' || (len == 1 && *p == '\r'))
            continue;
        if (kr->n == QR_KEYS_MAX) {
            snprintf(err, errlen, "line %u: more than %d keys", lineno, QR_KEYS_MAX);
            goto fail;
        }
        if (keyring__parse_line(p, len, &kr->keys[kr->n]) != 0) {
            snprintf(err, errlen,
                     "line %u: expected \"ID HEX\" with ID 0-255 and %d to %d secret bytes in hex",
                     lineno, QR_SECRET_MIN, QR_SECRET_MAX);
            goto fail;
        }
        if (keyring_find(kr, kr->keys[kr->n].id) != NULL) {
            snprintf(err, errlen, "line %u: key id %u appears twice", lineno, kr->keys[kr->n].id);
            goto fail;
        }
        kr->n++;
    }
    if (kr->n == 0) {
        snprintf(err, errlen, "no key found");
        goto fail;
    }
    return 0;
fail:
    keyring_wipe(kr);
    return -1;
}

int keyring_load(const char *path, struct keyring *kr, char *err, size_t errlen)
{
    char text[KEYRING_FILE_MAX + 1];
    struct stat st;
    ssize_t n;
    int fd, rc = -1;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        goto out;
    }
    if ((st.st_mode & (S_IRWXO | S_IWGRP)) != 0) {
        snprintf(err, errlen, "%s: readable or writable by others; chmod 600 (or 640) it", path);
        goto out;
    }
    if ((n = read(fd, text, KEYRING_FILE_MAX + 1)) < 0 || n > KEYRING_FILE_MAX) {
        snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "file too large");
        goto out;
    }
    text[n] = '\0';
    if (keyring_parse(text, kr, err, errlen) == 0)
        rc = 0;
out:
    OPENSSL_cleanse(text, sizeof(text));
    close(fd);
    return rc;
}

int keyring_generate(const char *path, uint8_t id, char *err, size_t errlen)
{
    uint8_t secret[QR_SECRET_MIN];
    char line[16 + 2 * QR_SECRET_MIN + 2];
    int fd, n, rc = -1;

    if (RAND_bytes(secret, sizeof(secret)) != 1) {
        snprintf(err, errlen, "no randomness available");
        return -1;
    }
    n = snprintf(line, sizeof(line), "%u ", id);
    for (size_t i = 0; i < sizeof(secret); i++)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "%02x", secret[i]);
    line[n++] = '\n';
    if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (write(fd, line, (size_t)n) != n || fsync(fd) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        goto out;
    }
    close(fd);
    rc = 0;
out:
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(line, sizeof(line));
    return rc;
}

const struct keyring_key *keyring_active(const struct keyring *kr)
{
    return kr->n > 0 ? &kr->keys[0] : NULL;
}

const struct keyring_key *keyring_find(const struct keyring *kr, uint8_t id)
{
    for (unsigned i = 0; i < kr->n; i++) {
        if (kr->keys[i].id == id)
            return &kr->keys[i];
    }
    return NULL;
}

void keyring_wipe(struct keyring *kr)
{
    OPENSSL_cleanse(kr, sizeof(*kr));
}
