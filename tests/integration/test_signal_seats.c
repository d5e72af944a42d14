/* quietroom-signal's seats, driven over WebSockets as browsers would: a
 * link checked before the camera is asked for (nothing spent), the same
 * link taking its seat back (the older tab told it was replaced), back
 * into the call within the resume grace and to the waiting room after it,
 * removed, declined and ended seats refused, another person's token never
 * taking a seat, seats kept across a kill -9, and the waiting room's
 * messages (passed on, never recorded). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "world.h"
#include "quietroom/base/clock.h"

#define WAIT_MS 3000
#define NOTICE "running 5 minutes late (notice-7c1e)"

static int setup(void **state)
{
    static const char *const extra[] = {"resume-grace = 2", NULL};
    struct world_opts o = {.signal_extra = extra, .wait_ms = WAIT_MS};

    return world_setup(state, &o);
}

static json_t *expect(struct wsconn *c, const char *type)
{
    return world_expect(c, type, WAIT_MS);
}

static char *token(struct world *w, const char *sid, const char *role, const char *sub,
                   const char *const *more)
{
    char *t = mint_token(&w->sig, sid, role, sub, more);

    assert_non_null(t);
    return t;
}

/* Joins with token; the first reply must be of type want (its message
 * goes to *reply if asked for). */
static struct wsconn *join_expect(struct world *w, const char *tok, const char *want,
                                  json_t **reply)
{
    json_t *m;
    struct wsconn *c = world_join_token(w, tok, &m);

    if (strcmp(world_str(m, "type"), want) != 0)
        fail_msg("want %s, got %s %s", want, world_str(m, "type"), world_str(m, "code"));
    if (reply != NULL)
        *reply = m;
    else
        json_decref(m);
    return c;
}

static void expect_refused(struct world *w, const char *tok, const char *code, int close_code)
{
    json_t *m;
    struct wsconn *c = join_expect(w, tok, "error", &m);

    assert_string_equal(world_str(m, "code"), code);
    assert_int_equal(wsconn_wait_closed(c, WAIT_MS), close_code);
    json_decref(m);
    wsconn_free(c);
}

static void admit(struct wsconn *doc, struct wsconn *pat, const char *id)
{
    wsconn_send_json(doc, json_pack("{s:s,s:s}", "type", "admit", "participant", id));
    json_decref(expect(pat, "admitted"));
}

static json_t *check_link(struct world *w, const char *tok, int *close_code)
{
    struct wsconn *c = world_connect(w);
    json_t *m;

    wsconn_send_json(c, json_pack("{s:s,s:s}", "type", "check_link", "token", tok));
    m = wsconn_recv(c, WAIT_MS);
    assert_non_null(m);
    *close_code = wsconn_wait_closed(c, WAIT_MS);
    wsconn_free(c);
    return m;
}

/* check_link refuses tok with code, closing with close_code. */
static void expect_checked(struct world *w, const char *tok, const char *code, int close_code)
{
    int got;
    json_t *m = check_link(w, tok, &got);

    assert_string_equal(world_str(m, "type"), "error");
    assert_string_equal(world_str(m, "code"), code);
    assert_int_equal(got, close_code);
    json_decref(m);
}

/* --- tests ------------------------------------------------------------------------ */

static void test_link_checked_before_anything_is_spent(void **state)
{
    static const char *const es[] = {"--locale", "es", NULL};
    static const char *const later_on[] = {"--nbf-in", "600", NULL};
    struct world *w = *state;
    char *tok = token(w, "s-check", "patient", "pt-c", es), *early;
    int64_t now = (int64_t)clock_wall_s();
    struct wsconn *c;
    json_t *m;
    int code;

    m = check_link(w, tok, &code);
    assert_string_equal(world_str(m, "type"), "link_ok");
    assert_string_equal(world_str(m, "role"), "patient");
    assert_string_equal(world_str(m, "locale"), "es");
    assert_int_equal(code, 1000);
    json_decref(m);
    /* Nothing was spent: the token opens a new seat. */
    c = join_expect(w, tok, "welcome", &m);
    assert_null(json_object_get(m, "rejoined"));
    assert_string_equal(world_str(m, "locale"), "es");
    json_decref(m);
    wsconn_free(c);
    /* A link not active yet says from when, checked or used. */
    early = token(w, "s-check", "patient", "pt-e", later_on);
    m = check_link(w, early, &code);
    assert_string_equal(world_str(m, "code"), "token_not_yet_valid");
    assert_true(json_integer_value(json_object_get(m, "not_before")) >= now + 590);
    assert_true(json_integer_value(json_object_get(m, "not_before")) <= now + 610);
    assert_int_equal(code, 4401);
    json_decref(m);
    c = join_expect(w, early, "error", &m);
    assert_true(json_integer_value(json_object_get(m, "not_before")) >= now + 590);
    json_decref(m);
    wsconn_free(c);
    expect_refused(w, "not.a.token", "token_malformed", 4401);
    free(tok);
    free(early);
}

static void test_same_link_takes_its_seat_back(void **state)
{
    struct world *w = *state;
    char *tok = token(w, "s-seat", "patient", "pt-s", NULL), id[8];
    struct wsconn *doc = world_join(w, "s-seat", "clinician", "dr-s", NULL, NULL);
    struct wsconn *tab1, *tab2, *tab3;
    json_t *m;

    tab1 = join_expect(w, tok, "welcome", &m);
    snprintf(id, sizeof(id), "%s", world_str(m, "participant"));
    json_decref(m);
    admit(doc, tab1, id);
    /* The same link in a second tab: the same seat, still admitted. */
    tab2 = join_expect(w, tok, "welcome", &m);
    assert_string_equal(world_str(m, "participant"), id);
    assert_string_equal(world_str(m, "state"), "admitted");
    assert_true(json_is_true(json_object_get(m, "rejoined")));
    json_decref(m);
    json_decref(expect(tab1, "replaced"));
    assert_int_equal(wsconn_wait_closed(tab1, WAIT_MS), 1000);
    m = expect(doc, "peer_status");
    assert_true(json_is_true(json_object_get(m, "rejoined")));
    json_decref(m);
    /* Left by mistake and back at once: straight into the call. */
    wsconn_send_json(tab2, json_pack("{s:s}", "type", "leave"));
    assert_int_equal(wsconn_wait_closed(tab2, WAIT_MS), 1000);
    tab3 = join_expect(w, tok, "welcome", &m);
    assert_string_equal(world_str(m, "state"), "admitted");
    json_decref(m);
    json_decref(expect(doc, "peer"));
    /* Left longer than the grace (2 s here): back to the waiting room. */
    wsconn_send_json(tab3, json_pack("{s:s}", "type", "leave"));
    assert_int_equal(wsconn_wait_closed(tab3, WAIT_MS), 1000);
    sleep(3);
    wsconn_free(tab3);
    tab3 = join_expect(w, tok, "welcome", &m);
    assert_string_equal(world_str(m, "participant"), id);
    assert_string_equal(world_str(m, "state"), "waiting");
    json_decref(m);
    wsconn_free(tab1);
    wsconn_free(tab2);
    wsconn_free(tab3);
    wsconn_free(doc);
    free(tok);
}

static void test_removed_declined_and_ended_seats_refused(void **state)
{
    struct world *w = *state;
    char *removed = token(w, "s-refuse", "patient", "pt-r", NULL);
    char *declined = token(w, "s-refuse", "patient", "pt-d", NULL);
    struct wsconn *doc = world_join(w, "s-refuse", "clinician", "dr-r", NULL, NULL);
    struct wsconn *a, *b;
    char ida[8], idb[8];
    json_t *m;

    a = join_expect(w, removed, "welcome", &m);
    snprintf(ida, sizeof(ida), "%s", world_str(m, "participant"));
    json_decref(m);
    b = join_expect(w, declined, "welcome", &m);
    snprintf(idb, sizeof(idb), "%s", world_str(m, "participant"));
    json_decref(m);
    admit(doc, a, ida);
    wsconn_send_json(doc, json_pack("{s:s,s:s}", "type", "remove", "participant", ida));
    wsconn_send_json(doc, json_pack("{s:s,s:s}", "type", "decline", "participant", idb));
    assert_int_equal(wsconn_wait_closed(a, WAIT_MS), 4403);
    assert_int_equal(wsconn_wait_closed(b, WAIT_MS), 4403);
    expect_refused(w, removed, "removed_by_clinician", 4403);
    expect_refused(w, declined, "declined_by_clinician", 4403);
    /* The page's check before the camera says so too. */
    expect_checked(w, removed, "removed_by_clinician", 4403);
    expect_checked(w, declined, "declined_by_clinician", 4403);
    wsconn_free(a);
    wsconn_free(b);
    /* An ended visit opens nothing again. */
    {
        char *pat = token(w, "s-ended", "patient", "pt-x", NULL);
        struct wsconn *doc2 = world_join(w, "s-ended", "clinician", "dr-x", NULL, NULL);
        struct wsconn *p = join_expect(w, pat, "welcome", NULL);

        wsconn_send_json(doc2, json_pack("{s:s}", "type", "end"));
        assert_int_equal(wsconn_wait_closed(p, WAIT_MS), 4410);
        assert_int_equal(wsconn_wait_closed(doc2, WAIT_MS), 4410);
        expect_refused(w, pat, "token_replayed", 4401);
        expect_checked(w, pat, "token_replayed", 4401);
        wsconn_free(p);
        wsconn_free(doc2);
        free(pat);
    }
    wsconn_free(doc);
    free(removed);
    free(declined);
}

/* A jti the EHR (wrongly) reused for someone else never seats them in
 * the first person's place; the first person is left as they were. */
static void test_other_person_never_takes_a_seat(void **state)
{
    static const char *const jti[] = {"--jti", "shared-jti-1", NULL};
    struct world *w = *state;
    char *mine = token(w, "s-other", "patient", "pt-a", jti);
    char *theirs = token(w, "s-other", "patient", "pt-b", jti);
    char *own = token(w, "s-other", "patient", "pt-b", NULL);
    struct wsconn *a, *b;
    char ida[8];
    json_t *m;

    a = join_expect(w, mine, "welcome", &m);
    snprintf(ida, sizeof(ida), "%s", world_str(m, "participant"));
    json_decref(m);
    expect_refused(w, theirs, "token_replayed", 4401);
    wsconn_send_json(a, json_pack("{s:s}", "type", "ping"));
    json_decref(expect(a, "pong"));
    b = join_expect(w, own, "welcome", &m);
    assert_string_not_equal(world_str(m, "participant"), ida);
    assert_null(json_object_get(m, "rejoined"));
    json_decref(m);
    wsconn_free(a);
    wsconn_free(b);
    free(mine);
    free(theirs);
    free(own);
}

/* Seats are in the visit record: after kill -9 and a restart, the link
 * still takes its seat back, and a removed one is still refused. */
static void test_seats_survive_kill(void **state)
{
    struct world *w = *state;
    char *tok = token(w, "s-kill", "patient", "pt-k", NULL);
    char *gone = token(w, "s-kill", "patient", "pt-g", NULL);
    struct wsconn *doc = world_join(w, "s-kill", "clinician", "dr-k", NULL, NULL);
    struct wsconn *p, *g;
    char id[8], idg[8];
    int status;
    json_t *m;

    p = join_expect(w, tok, "welcome", &m);
    snprintf(id, sizeof(id), "%s", world_str(m, "participant"));
    json_decref(m);
    g = join_expect(w, gone, "welcome", &m);
    snprintf(idg, sizeof(idg), "%s", world_str(m, "participant"));
    json_decref(m);
    wsconn_send_json(doc, json_pack("{s:s,s:s}", "type", "remove", "participant", idg));
    assert_int_equal(wsconn_wait_closed(g, WAIT_MS), 4403);
    assert_int_equal(kill(w->sig.pid, SIGKILL), 0);
    assert_int_equal(waitpid(w->sig.pid, &status, 0), w->sig.pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    w->sig.pid = 0;
    wsconn_free(p);
    wsconn_free(g);
    wsconn_free(doc);
    assert_int_equal(signal_restart(&w->sig), 0);
    p = join_expect(w, tok, "welcome", &m);
    assert_string_equal(world_str(m, "participant"), id);
    assert_true(json_is_true(json_object_get(m, "rejoined")));
    json_decref(m);
    expect_refused(w, gone, "removed_by_clinician", 4403);
    wsconn_free(p);
    free(tok);
    free(gone);
}

static void test_waiting_room_messages(void **state)
{
    struct world *w = *state;
    static const char *const named[] = {"--name", "Dr. Rivera", NULL};
    struct wsconn *doc = world_join(w, "s-notice", "clinician", "dr-n", named, NULL);
    struct wsconn *p1, *p2;
    char id1[8], *audit, *log;
    json_t *m;

    p1 = world_join(w, "s-notice", "patient", "pt-n1", NULL, &m);
    snprintf(id1, sizeof(id1), "%s", world_str(m, "participant"));
    json_decref(m);
    m = expect(p1, "room");
    assert_string_equal(world_str(json_array_get(json_object_get(m, "clinicians"), 0), "name"),
                        "Dr. Rivera");
    json_decref(m);
    p2 = world_join(w, "s-notice", "patient", "pt-n2", NULL, NULL);
    /* To one person, then to all. */
    wsconn_send_json(doc, json_pack("{s:s,s:s,s:s}", "type", "notify", "participant", id1, "text",
                                    NOTICE));
    m = expect(doc, "notified");
    assert_int_equal(json_integer_value(json_object_get(m, "count")), 1);
    json_decref(m);
    m = expect(p1, "notice");
    assert_string_equal(world_str(m, "text"), NOTICE);
    assert_string_equal(world_str(m, "from"), "Dr. Rivera");
    json_decref(m);
    wsconn_send_json(doc, json_pack("{s:s,s:s}", "type", "notify", "text", NOTICE));
    m = expect(doc, "notified");
    assert_int_equal(json_integer_value(json_object_get(m, "count")), 2);
    json_decref(m);
    /* p2's first notice is the one to all: the one to p1 never reached it. */
    m = expect(p2, "notice");
    json_decref(m);
    assert_null(wsconn_recv_type(p2, "notice", 300));
    json_decref(expect(p1, "notice"));
    /* Admit all. */
    wsconn_send_json(doc, json_pack("{s:s}", "type", "admit_all"));
    json_decref(expect(p1, "admitted"));
    json_decref(expect(p2, "admitted"));
    wsconn_free(p1);
    wsconn_free(p2);
    wsconn_free(doc);
    /* Recorded that it was sent; the text is nowhere. */
    assert_int_equal(signal_stop(&w->sig), 0);
    audit = read_text(w->sig.audit);
    log = read_text(w->sig.log);
    assert_non_null(audit);
    assert_non_null(log);
    assert_non_null(strstr(audit, "\"type\":\"session.notice\""));
    assert_null(strstr(audit, "notice-7c1e"));
    assert_null(strstr(log, "notice-7c1e"));
    free(audit);
    free(log);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_checked_before_anything_is_spent),
        cmocka_unit_test(test_same_link_takes_its_seat_back),
        cmocka_unit_test(test_removed_declined_and_ended_seats_refused),
        cmocka_unit_test(test_other_person_never_takes_a_seat),
        cmocka_unit_test(test_seats_survive_kill),
        cmocka_unit_test(test_waiting_room_messages),
    };

    return world_run_tests("signal_seats", tests, sizeof(tests) / sizeof(tests[0]), setup,
                           world_teardown);
}
