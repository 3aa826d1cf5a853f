/* Unit tests for tuapd's control socket (controller/tuapd/control.c): events held by
 * control_defer until control_flush, in order; a client that is gone is reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "buf.h"
#include "control.h"
#include "wire.h"

static char dir[64], path[128];
static void *zctx;
static struct control ctl;
static int n_gone;

static void gone(void *ctx, const struct ctl_peer *peer)
{
	(void)ctx;
	(void)peer;
	n_gone++;
}

/* A tuap-ctl: a DEALER that sends a status request, so that the ROUTER knows it. */
static void *client(struct ctl_peer *peer)
{
	void *s = zmq_socket(zctx, ZMQ_DEALER);
	char ep[160];
	Tuap__Envelope env;
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__DomainRequest d = TUAP__DOMAIN_REQUEST__INIT;
	struct buf b = BUF_INIT;
	struct tuap_err err;
	Tuap__Envelope *got = NULL;
	int rc = 0;

	snprintf(ep, sizeof(ep), "ipc://%s", path);
	assert_int_equal(zmq_connect(s, ep), 0);
	wire_init(&env);
	d.domain = "site.test";
	r.req_case = TUAP__CTL_REQUEST__REQ_STATUS;
	r.status = &d;
	env.body_case = TUAP__ENVELOPE__BODY_CTL_REQUEST;
	env.ctl_request = &r;
	env.seq = 1;
	assert_int_equal(wire_encode(&env, &b, &err), 0);
	assert_int_equal(zmq_send(s, b.s, b.len, 0), (int)b.len);
	buf_free(&b);
	for (int i = 0; i < 200 && rc != 1; i++) {
		rc = control_recv(&ctl, peer, &got);
		if (rc != 1)
			usleep(10000);
	}
	assert_int_equal(rc, 1);
	wire_free(got);
	return s;
}

/* The next event on s within ms: its message, or NULL. */
static Tuap__Envelope *next_event(void *s, int ms)
{
	zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
	char buf[4096];
	Tuap__Envelope *env = NULL;
	struct tuap_err err;
	int n;

	if (zmq_poll(&it, 1, ms) <= 0)
		return NULL;
	n = zmq_recv(s, buf, sizeof(buf), 0);
	assert_true(n > 0);
	assert_int_equal(wire_decode(buf, (size_t)n, WIRE_TO_CTL, &env, &err), 0);
	return env;
}

static void send_error(const struct ctl_peer *peer, const char *msg)
{
	Tuap__CtlEvent ev = TUAP__CTL_EVENT__INIT;
	Tuap__Error er = TUAP__ERROR__INIT;

	er.code = TUAP__ERROR__CODE__INTERNAL;
	er.message = (char *)msg;
	ev.ev_case = TUAP__CTL_EVENT__EV_ERROR;
	ev.error = &er;
	assert_int_equal(control_send(&ctl, peer, &ev), 0);
}

static int setup(void **state)
{
	struct tuap_err err;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/tuap-control-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	zctx = zmq_ctx_new();
	assert_int_equal(control_open(&ctl, zctx, path, NULL, 1 << 20, &err), 0);
	n_gone = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	control_close(&ctl);
	zmq_ctx_term(zctx);
	unlink(path);
	rmdir(dir);
	return 0;
}

static void test_deferred_in_order(void **state)
{
	struct ctl_peer peer;
	void *s = client(&peer);
	Tuap__Envelope *env;
	int zero = 0;

	(void)state;
	control_defer(&ctl, true);
	send_error(&peer, "first");
	send_error(&peer, "second");
	assert_null(next_event(s, 200)); /* held */
	control_flush(&ctl, gone, NULL);
	env = next_event(s, 2000);
	assert_non_null(env);
	assert_string_equal(env->ctl_event->error->message, "first");
	wire_free(env);
	env = next_event(s, 2000);
	assert_non_null(env);
	assert_string_equal(env->ctl_event->error->message, "second");
	wire_free(env);
	assert_int_equal(n_gone, 0);

	/* the client goes away: its next events cannot be delivered, and that is said */
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_close(s);
	for (int i = 0; i < 100 && !n_gone; i++) {
		send_error(&peer, "to nobody");
		control_flush(&ctl, gone, NULL);
		usleep(20000);
	}
	assert_true(n_gone > 0);

	/* off: sent at once (and a gone client fails at once) */
	control_defer(&ctl, false);
	s = client(&peer);
	send_error(&peer, "now");
	env = next_event(s, 2000);
	assert_non_null(env);
	assert_string_equal(env->ctl_event->error->message, "now");
	wire_free(env);
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deferred_in_order, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
