/* The relay credential secrets shared by signaling and every relay: loaded
 * from a file, looked up by key id. The first key signs, all keys verify. */
#ifndef QUIETROOM_KEYRING_H
#define QUIETROOM_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include "quietroom/base/limits.h"

struct keyring_key {
    uint8_t id;
    size_t len;
    uint8_t secret[QR_SECRET_MAX];
};

/* A value type: copy it, then keyring_wipe the copy you no longer need. */
struct keyring {
    unsigned n;
    struct keyring_key keys[QR_KEYS_MAX];
};

/* Parses "ID HEX" lines ('#' comments, blank lines allowed). Returns 0, or -1
 * with a reason in err that never contains secret material. */
int keyring_parse(const char *text, struct keyring *kr, char *err, size_t errlen);

/* Reads and parses path; refuses a file that others may read or write. */
int keyring_load(const char *path, struct keyring *kr, char *err, size_t errlen);

/* Creates path (mode 0600, must not exist) holding one fresh random key. */
int keyring_generate(const char *path, uint8_t id, char *err, size_t errlen);

/* The key that signs new credentials (the first in the file). */
const struct keyring_key *keyring_active(const struct keyring *kr);
/* The key with this id, or NULL. */
const struct keyring_key *keyring_find(const struct keyring *kr, uint8_t id);

/* Overwrites every secret byte. */
void keyring_wipe(struct keyring *kr);

#endif
