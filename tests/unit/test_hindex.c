/* The hash index against a plain array model, with forced collisions so
 * that backward-shift deletion is exercised across wrapped clusters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "quietroom/base/hindex.h"

#define N 512

static uint64_t keys[N];
static bool present[N];

static bool eq(const void *ctx, uint32_t id)
{
    return keys[id] == *(const uint64_t *)ctx;
}

/* Few distinct hashes, so clusters are long and wrap the table. */
static uint64_t hash_of(uint64_t key)
{
    return (key % 7) * 0x9e3779b97f4a7c15ull + 1023;
}

static void test_against_model(void **state)
{
    struct hindex h;
    uint64_t rnd = 88172645463325252ull;

    (void)state;
    assert_int_equal(hindex_init(&h, N), 0);
    for (uint32_t i = 0; i < N; i++)
        keys[i] = i * 1000003ull;
    for (int step = 0; step < 200000; step++) {
        uint32_t id;

        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        id = (uint32_t)(rnd % N);
        if (present[id]) {
            assert_true(hindex_remove(&h, hash_of(keys[id]), id));
            present[id] = false;
        } else {
            assert_int_equal(hindex_insert(&h, hash_of(keys[id]), id), 0);
            present[id] = true;
        }
        if (step % 997 == 0) {
            for (uint32_t k = 0; k < N; k++) {
                uint32_t got = hindex_find(&h, hash_of(keys[k]), eq, &keys[k]);

                assert_int_equal(got, present[k] ? k : HINDEX_NONE);
            }
        }
    }
    hindex_free(&h);
}

static void test_full(void **state)
{
    struct hindex h;

    (void)state;
    assert_int_equal(hindex_init(&h, 4), 0);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(hindex_insert(&h, i, i), 0);
    assert_int_equal(hindex_insert(&h, 9, 9), -1);
    assert_false(hindex_remove(&h, 9, 9));
    hindex_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_model),
        cmocka_unit_test(test_full),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
