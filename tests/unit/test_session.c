/* Unit tests for common/session: numbering, acks, resend queue bounds, timers. Time is passed
 * in, so the timers are tested without sleeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "session.h"

static void cancel(Tuap__Envelope *env, Tuap__Cancel *c)
{
	wire_init(env);
	tuap__cancel__init(c);
	c->reason = "r";
	env->body_case = TUAP__ENVELOPE__BODY_CANCEL;
	env->cancel = c;
}

static uint64_t seq_of(const struct session_msg *m)
{
	Tuap__Envelope *env = NULL;

	assert_int_equal(wire_decode(m->data, m->len, WIRE_TO_AGENT, &env, NULL), WIRE_OK);
	uint64_t seq = env->seq;
	assert_int_equal(seq, m->seq);
	wire_free(env);
	return seq;
}

static void test_numbering_and_acks(void **state)
{
	struct session s;
	Tuap__Envelope env;
	Tuap__Cancel c;
	int64_t t = 1000;

	session_init(&s, 4, 0);
	session_reset(&s, (const uint8_t *)"0123456789", 10, 0, 0);
	assert_true(session_is(&s, (const uint8_t *)"0123456789", 10));
	assert_false(session_is(&s, (const uint8_t *)"0123456780", 10));
	cancel(&env, &c);
	for (int i = 0; i < 4; i++)
		assert_int_equal(session_push(&s, &env, NULL), 0);
	/* Full: back-pressure, and no seq is consumed. */
	assert_int_equal(session_push(&s, &env, NULL), -1);
	assert_int_equal(s.tx_seq, 4);
	assert_int_equal(session_next_seq(&s), 1);

	for (uint64_t i = 1; i <= 4; i++) {
		assert_int_equal(seq_of(session_next(&s)), i);
		session_sent(&s, t);
	}
	assert_null(session_next(&s));
	/* Acks release in order; an ack beyond what was sent is refused. */
	assert_int_equal(session_ack(&s, 9, t), -1);
	assert_int_equal(session_ack(&s, 2, t), 2);
	assert_int_equal(session_ack(&s, 2, t), 0);
	assert_int_equal(session_unacked(&s), 2);
	assert_int_equal(session_next_seq(&s), 3);
	/* Rewind: 3 and 4 go again. */
	session_rewind(&s, t);
	assert_int_equal(seq_of(session_next(&s)), 3);
	session_free(&s);
}

static void test_rx(void **state)
{
	struct session s;
	struct buf b = BUF_INIT;
	Tuap__Envelope *env;
	int64_t t = 5000;

	session_init(&s, 0, 0);
	session_reset(&s, (const uint8_t *)"abcdefgh", 8, 0, 10);
	assert_int_equal(session_rx(&s, 12, t), SESSION_GAP);
	assert_int_equal(s.rx_seq, 10);
	assert_int_equal(session_rx(&s, 11, t), SESSION_NEW);
	assert_false(session_ack_due(&s, t));
	assert_true(session_ack_due(&s, t + SESSION_ACK_DELAY_MS));
	assert_int_equal(session_timeout(&s, t), SESSION_ACK_DELAY_MS);
	assert_int_equal(session_rx(&s, 11, t), SESSION_DUP);
	assert_true(session_ack_due(&s, t)); /* a resending peer is answered at once */
	session_encode_ack(&s, &b);
	assert_false(session_ack_due(&s, t + 100000));
	assert_int_equal(wire_decode(b.s, b.len, WIRE_FROM_AGENT, &env, NULL), WIRE_OK);
	assert_int_equal(env->body_case, TUAP__ENVELOPE__BODY__NOT_SET);
	assert_int_equal(env->seq, 0);
	assert_int_equal(env->ack, 11);
	wire_free(env);
	/* Many unacknowledged: ack at once. */
	for (uint64_t q = 12; q < 12 + SESSION_ACK_EVERY; q++)
		assert_int_equal(session_rx(&s, q, t), SESSION_NEW);
	assert_true(session_ack_due(&s, t));
	buf_free(&b);
	session_free(&s);
}

static void test_rto(void **state)
{
	struct session s;
	Tuap__Envelope env;
	Tuap__Cancel c;
	int64_t t = 100;

	session_init(&s, 0, 1); /* one byte: a single message fills it */
	session_reset(&s, (const uint8_t *)"abcdefgh", 8, 0, 0);
	cancel(&env, &c);
	assert_int_equal(session_push(&s, &env, NULL), 0);
	assert_int_equal(session_push(&s, &env, NULL), -1);
	assert_int_equal(session_timeout(&s, t), -1);
	session_sent(&s, t);
	assert_int_equal(session_timeout(&s, t), SESSION_RTO_MS);
	assert_int_equal(session_tick(&s, t + SESSION_RTO_MS - 1), 0);
	assert_null(session_next(&s));
	assert_int_equal(session_tick(&s, t + SESSION_RTO_MS), 1);
	assert_non_null(session_next(&s)); /* due again */
	/* Ack progress restarts the clock. */
	session_sent(&s, t + SESSION_RTO_MS);
	assert_int_equal(session_ack(&s, 1, t + SESSION_RTO_MS + 10), 1);
	assert_int_equal(session_tick(&s, t + 10 * SESSION_RTO_MS), 0);
	/* A reset drops what was queued. */
	assert_int_equal(session_push(&s, &env, NULL), 0);
	session_reset(&s, (const uint8_t *)"ijklmnop", 8, 7, 3);
	assert_int_equal(session_unacked(&s), 0);
	assert_int_equal(session_next_seq(&s), 8);
	session_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numbering_and_acks),
		cmocka_unit_test(test_rx),
		cmocka_unit_test(test_rto),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
