/* The workers' inbox: producers on several threads, one consumer; every
 * frame arrives once, whole, in each producer's order; a full inbox refuses
 * instead of waiting or overwriting. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "inbox.h"

#define PRODUCERS 3
#define PER_PRODUCER 50000

struct producer {
    struct inbox *q;
    uint32_t id;
    uint64_t refused;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    uint8_t frame[64];
    struct leg_addr to = {.family = 2};

    to.scope_id = p->id;
    for (uint32_t i = 0; i < PER_PRODUCER; i++) {
        size_t len = 8 + i % 50;

        memset(frame, (int)(i & 0xff), len);
        memcpy(frame, &i, sizeof(i));
        memcpy(frame + 4, &p->id, sizeof(p->id));
        while (!inbox_push(p->q, &to, frame, len, true))
            p->refused++; /* full: the test's producers retry; the relay drops */
    }
    return NULL;
}

static void test_many_producers(void **state)
{
    struct inbox *q = malloc(sizeof(*q));
    struct producer prod[PRODUCERS];
    pthread_t th[PRODUCERS];
    uint32_t next[PRODUCERS] = {0};
    uint64_t got = 0;

    (void)state;
    assert_non_null(q);
    inbox_init(q);
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        prod[i] = (struct producer){q, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, produce, &prod[i]), 0);
    }
    while (got < (uint64_t)PRODUCERS * PER_PRODUCER) {
        const struct inbox_cell *c = inbox_peek(q);
        uint32_t seq, id;

        if (c == NULL)
            continue;
        memcpy(&seq, c->data, sizeof(seq));
        memcpy(&id, c->data + 4, sizeof(id));
        assert_true(id < PRODUCERS);
        assert_int_equal(c->to.scope_id, id);
        assert_int_equal(seq, next[id]);
        assert_int_equal(c->len, 8 + seq % 50);
        for (size_t b = 8; b < c->len; b++)
            assert_int_equal(c->data[b], seq & 0xff);
        next[id]++;
        got++;
        inbox_pop(q);
    }
    for (uint32_t i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    assert_null(inbox_peek(q));
    free(q);
}

static void test_full_refuses(void **state)
{
    struct inbox *q = malloc(sizeof(*q));
    struct leg_addr to = {0};
    uint8_t b[QR_TCP_FRAME_MAX + 1] = {0};

    (void)state;
    inbox_init(q);
    assert_false(inbox_push(q, &to, b, sizeof(b), true)); /* longer than a frame */
    for (uint32_t i = 0; i < QR_TCP_INBOX; i++) {
        b[0] = (uint8_t)i;
        assert_true(inbox_push(q, &to, b, 1, false));
    }
    assert_false(inbox_push(q, &to, b, 1, false));
    assert_int_equal(inbox_peek(q)->data[0], 0);
    inbox_pop(q);
    assert_true(inbox_push(q, &to, b, 1, false));
    for (uint32_t i = 1; i <= QR_TCP_INBOX; i++) {
        assert_non_null(inbox_peek(q));
        inbox_pop(q);
    }
    assert_null(inbox_peek(q));
    free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_producers),
        cmocka_unit_test(test_full_refuses),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
