/* The shared address map under a concurrent writer. The writer moves each
 * "stable" leg back and forth between two addresses and binds and unbinds
 * "churn" legs; readers check, inside one read section, that a stable leg is
 * found at exactly one of its two addresses, and that unused addresses are
 * never found. Without the read section's retry a reader sees a move half
 * done (both addresses, or neither). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "addrmap.h"

#define STABLE 256        /* legs bound for the whole test */
#define CHURN 256         /* legs the writer keeps rebinding */
#define LINKS ((STABLE + CHURN) / 2)
#define READS 1000000      /* lookups per reader */

static struct link links[LINKS];
static struct addrmap map;
static _Atomic int readers_done;

static struct leg_addr address(uint32_t n)
{
    union netaddr a = {.in = {.sin_family = AF_INET}};
    struct leg_addr p;

    a.in.sin_addr.s_addr = htonl(0x0a000000u | n);
    a.in.sin_port = htons((uint16_t)(1000 + n % 7));
    leg_addr_pack(&a, 0, &p);
    return p;
}

static struct leg *leg_of(uint32_t id)
{
    return &links[id >> 1].leg[id & 1];
}

static void bind_leg(uint32_t id, const struct leg_addr *a)
{
    addrmap_write_begin(&map);
    assert_int_equal(addrmap_insert(&map, a, id), 0);
    leg_addr_store(leg_of(id), a);
    addrmap_write_end(&map);
}

static void unbind_leg(uint32_t id)
{
    static const struct leg_addr none;
    struct leg_addr cur;

    leg_addr_load(leg_of(id), &cur);
    addrmap_write_begin(&map);
    addrmap_remove(&map, &cur, id);
    leg_addr_store(leg_of(id), &none);
    addrmap_write_end(&map);
}

static uint32_t lookup(const struct leg_addr *a)
{
    uint32_t id, token;

    do {
        token = addrmap_read_begin(&map);
        id = addrmap_find(&map, a);
    } while (addrmap_read_retry(&map, token));
    return id;
}

/* A stable leg's other address. */
static struct leg_addr moved(uint32_t n)
{
    return address(500000 + n);
}

/* How many of leg n's two addresses name it, in one read section. */
static int found_at(uint32_t n)
{
    struct leg_addr a = address(n), b = moved(n);
    uint32_t token;
    int found;

    do {
        token = addrmap_read_begin(&map);
        found = (addrmap_find(&map, &a) == n) + (addrmap_find(&map, &b) == n);
    } while (addrmap_read_retry(&map, token));
    return found;
}

static void *reader(void *arg)
{
    uint64_t *misses = arg, rnd = (uintptr_t)arg | 1;

    *misses = 0;
    for (int i = 0; i < READS; i++) {
        struct leg_addr never;
        uint32_t n;

        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        n = (uint32_t)(rnd % STABLE);
        if (found_at(n) != 1)
            (*misses)++;
        never = address(1000000 + n);
        if (lookup(&never) != ADDRMAP_NONE)
            (*misses)++;
    }
    atomic_fetch_add(&readers_done, 1);
    return NULL;
}

/* Moves stable leg n to its other address, as table_bind does; only the
 * writer knows where each one is. */
static bool at_moved[STABLE];

static void move_leg(uint32_t n)
{
    struct leg_addr from = at_moved[n] ? moved(n) : address(n);
    struct leg_addr to = at_moved[n] ? address(n) : moved(n);

    addrmap_write_begin(&map);
    addrmap_remove(&map, &from, n);
    leg_addr_store(leg_of(n), &to);
    assert_int_equal(addrmap_insert(&map, &to, n), 0);
    addrmap_write_end(&map);
    at_moved[n] = !at_moved[n];
}

static void test_readers_beside_a_writer(void **state)
{
    pthread_t th[2];
    uint64_t misses[2];
    uint64_t rnd = 12345, rounds = 0;

    (void)state;
    /* Few distinct ports and a small table: long, wrapped clusters. */
    assert_int_equal(addrmap_init(&map, links, STABLE + CHURN, 7), 0);
    for (uint32_t id = 0; id < STABLE; id++) {
        struct leg_addr a = address(id);

        bind_leg(id, &a);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, &misses[i]), 0);
    /* Readers check as long as the writer keeps changing things. */
    while (atomic_load(&readers_done) < 2) {
        uint32_t id;

        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        move_leg((uint32_t)(rnd >> 40) % STABLE);
        id = STABLE + (uint32_t)(rnd % CHURN);
        if (leg_bound(leg_of(id))) {
            unbind_leg(id);
        } else {
            struct leg_addr a = address(5000 + (uint32_t)(rnd >> 32) % 100000);

            if (lookup(&a) == ADDRMAP_NONE)
                bind_leg(id, &a);
        }
        rounds++;
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_true(rounds > 1000);
    assert_int_equal(misses[0], 0);
    assert_int_equal(misses[1], 0);
    addrmap_free(&map);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readers_beside_a_writer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
