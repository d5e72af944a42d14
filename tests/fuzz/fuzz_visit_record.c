/* A visit record read back from a store (SQLite, or a JetStream bucket any
 * replica writes) on arbitrary bytes: visit_decode must refuse what is not
 * a whole, consistent record without crashing, and what it accepts must
 * encode to a record that decodes to the same visit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "visit_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct visit v, back;
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    json_t *again;

    if (j == NULL)
        return 0;
    if (visit_decode(j, &v) == 0) {
        /* Accepted: counts in range, strings terminated, pairs of its people. */
        if (v.n_people > QR_SESSION_PEOPLE_MAX || v.n_pairs > VISIT_PAIRS_MAX ||
            strlen(v.key) != VISIT_KEY_LEN - 1)
            abort();
        again = visit_encode(&v);
        if (again == NULL || visit_decode(again, &back) != 0 ||
            memcmp(&v, &back, sizeof(v)) != 0)
            abort();
        json_decref(again);
    }
    json_decref(j);
    return 0;
}
