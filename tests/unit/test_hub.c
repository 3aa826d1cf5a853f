/*
 * A real hub (controller/hub) and real agent links (agent/link) in one process, over
 * tcp://127.0.0.1 with CURVE and the ZAP handler: hello, seq/ack, resend after a reconnect,
 * unknown keys, one domain speaking for another, oversized and disallowed messages, replays,
 * revocation and rotation. Every wait is bounded. The hub's log (stderr) is captured to check
 * that each rejection says why.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentconf.h"
#include "fsutil.h"
#include "hub.h"
#include "keys.h"
#include "link.h"
#include "log.h"
#include "session.h"
#include "wire.h"

#define MAXQ  64
#define WAIT  5000 /* ms: the longest any step may take */
#define NLINK 3

struct inbox {
	Tuap__Envelope *v[MAXQ];
	char dom[MAXQ][HUB_DOMAIN_SIZE];
	int n;
};

struct world {
	struct hub *hub;
	char server_pub[KEYS_Z85_SIZE];
	struct link *l[NLINK];
	struct agentconf conf[NLINK];
	struct inbox hub_in, link_in[NLINK];
	char logpath[64];
	int saved_stderr;
};

static void push(struct inbox *in, const char *dom, Tuap__Envelope *env)
{
	if (in->n == MAXQ)
		fail_msg("inbox overflow");
	snprintf(in->dom[in->n], HUB_DOMAIN_SIZE, "%s", dom ? dom : "");
	in->v[in->n++] = env;
}

static void drain(struct inbox *in)
{
	for (int i = 0; i < in->n; i++)
		wire_free(in->v[i]);
	in->n = 0;
}

/* Runs hub and links for ms milliseconds, collecting everything they deliver. */
static void pump(struct world *w, int ms)
{
	int64_t end = session_now() + ms;

	do {
		char dom[HUB_DOMAIN_SIZE];
		Tuap__Envelope *env;

		while (hub_recv(w->hub, dom, &env, 2) == 1)
			push(&w->hub_in, dom, env);
		for (int i = 0; i < NLINK; i++)
			while (w->l[i] && link_recv(w->l[i], &env, 2) == 1)
				push(&w->link_in[i], NULL, env);
	} while (session_now() < end);
}

/* Pops the first message of type body (any when -1) from in, pumping up to WAIT ms. */
static Tuap__Envelope *wait_in(struct world *w, struct inbox *in, int body, char *dom)
{
	int64_t end = session_now() + WAIT;

	for (;;) {
		for (int i = 0; i < in->n; i++) {
			Tuap__Envelope *env = in->v[i];

			if (body >= 0 && env->body_case != (Tuap__Envelope__BodyCase)body)
				continue;
			if (dom)
				memcpy(dom, in->dom[i], HUB_DOMAIN_SIZE);
			memmove(&in->v[i], &in->v[i + 1],
				(size_t)(in->n - i - 1) * sizeof(in->v[0]));
			memmove(in->dom[i], in->dom[i + 1],
				(size_t)(in->n - i - 1) * HUB_DOMAIN_SIZE);
			in->n--;
			return env;
		}
		if (session_now() > end)
			return NULL;
		pump(w, 10);
	}
}

static Tuap__Envelope *hub_wait(struct world *w, int body, char *dom)
{
	Tuap__Envelope *env = wait_in(w, &w->hub_in, body, dom);

	if (!env)
		fail_msg("hub: no %s within %d ms", wire_body_name(body), WAIT);
	return env;
}

static Tuap__Envelope *link_wait(struct world *w, int i, int body)
{
	Tuap__Envelope *env = wait_in(w, &w->link_in[i], body, NULL);

	if (!env)
		fail_msg("link %d: no %s within %d ms", i, wire_body_name(body), WAIT);
	return env;
}

/* The captured log so far (static buffer). */
static const char *logtext(struct world *w)
{
	static char text[1 << 20];
	int fd = open(w->logpath, O_RDONLY);
	ssize_t n;

	fflush(stderr);
	n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : 0;
	text[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	return text;
}

static void expect_log(struct world *w, const char *s)
{
	if (!strstr(logtext(w), s))
		fail_msg("log lacks '%s'; log:\n%s", s, logtext(w));
}

static void hello_cb(void *arg, Tuap__Hello *hl)
{
	hl->hostname = arg;
	hl->os_id = "debian";
}

/* An agent config for domain with a fresh keypair (pub gets the public key). */
static void make_conf(struct world *w, int i, const char *domain, char pub[KEYS_Z85_SIZE])
{
	struct agentconf *c = &w->conf[i];

	agentconf_init(c);
	assert_int_equal(keys_keypair(c->public_key, c->secret_key, NULL), 0);
	memcpy(pub, c->public_key, KEYS_Z85_SIZE);
	memcpy(c->server_public_key, w->server_pub, KEYS_Z85_SIZE);
	snprintf(c->endpoint, sizeof(c->endpoint), "%s", hub_endpoint(w->hub));
	snprintf(c->domain, sizeof(c->domain), "%s", domain);
	snprintf(c->state_dir, sizeof(c->state_dir), "/tmp");
}

static void open_link(struct world *w, int i)
{
	struct tuap_err e;

	w->l[i] = link_open(&w->conf[i], &e);
	if (!w->l[i])
		fail_msg("link_open: %s", e.msg);
	link_set_hello(w->l[i], hello_cb, w->conf[i].domain);
}

static void close_link(struct world *w, int i)
{
	link_close(w->l[i]);
	w->l[i] = NULL;
	drain(&w->link_in[i]);
}

/* Domains a.test (link 0) and b.test (link 1), both allowed; links not yet open. */
static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	char sec[KEYS_Z85_SIZE], pub[KEYS_Z85_SIZE];
	struct hub_params p = {0};
	struct tuap_err e;
	int fd;

	snprintf(w->logpath, sizeof(w->logpath), "/tmp/tuap-hublog-XXXXXX");
	fd = mkstemp(w->logpath);
	if (fd < 0)
		return -1;
	fflush(stderr);
	w->saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
	log_init("test", 0);

	keys_keypair(w->server_pub, sec, NULL);
	p.listen = "tcp://127.0.0.1:*";
	p.server_secret = sec;
	w->hub = hub_new(&p, &e);
	keys_wipe(sec, sizeof(sec));
	if (!w->hub) {
		fprintf(stdout, "hub_new: %s\n", e.msg);
		return -1;
	}
	make_conf(w, 0, "a.test", pub);
	if (hub_allow(w->hub, "a.test", pub, &e) < 0)
		return -1;
	make_conf(w, 1, "b.test", pub);
	if (hub_allow(w->hub, "b.test", pub, &e) < 0)
		return -1;
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	for (int i = 0; i < NLINK; i++)
		if (w->l[i])
			close_link(w, i);
	drain(&w->hub_in);
	hub_free(w->hub);
	if (getenv("TUAP_TEST_LOG")) /* show the captured log */
		fputs(logtext(w), stdout);
	fflush(stderr);
	dup2(w->saved_stderr, 2);
	close(w->saved_stderr);
	unlink(w->logpath);
	free(w);
	return 0;
}

/* ---- helpers building messages ------------------------------------------------------------- */

static void send_plan(struct world *w, const char *domain, const char *job)
{
	Tuap__Envelope env;
	Tuap__Plan plan = TUAP__PLAN__INIT;
	Tuap__Step steps[] = {TUAP__STEP__STEP_USERS, TUAP__STEP__STEP_MAKE};
	struct tuap_err e;

	wire_init(&env);
	plan.job_id = (char *)job;
	plan.domain = (char *)domain;
	plan.n_steps = 2;
	plan.steps = steps;
	env.job_id = (char *)job;
	env.body_case = TUAP__ENVELOPE__BODY_PLAN;
	env.plan = &plan;
	if (hub_send(w->hub, domain, &env, &e) < 0)
		fail_msg("hub_send: %s", e.msg);
}

static void send_cancel(struct world *w, const char *domain, const char *job, const char *why)
{
	Tuap__Envelope env;
	Tuap__Cancel c = TUAP__CANCEL__INIT;
	struct tuap_err e;

	wire_init(&env);
	c.reason = (char *)why;
	env.job_id = (char *)job;
	env.body_case = TUAP__ENVELOPE__BODY_CANCEL;
	env.cancel = &c;
	if (hub_send(w->hub, domain, &env, &e) < 0)
		fail_msg("hub_send: %s", e.msg);
}

static void step_event(Tuap__Envelope *env, Tuap__StepEvent *ev, const char *job, const char *msg)
{
	wire_init(env);
	tuap__step_event__init(ev);
	ev->step = TUAP__STEP__STEP_MAKE;
	ev->state = TUAP__STEP_STATE__STATE_PROGRESS;
	ev->message = (char *)msg;
	env->job_id = (char *)job;
	env->body_case = TUAP__ENVELOPE__BODY_STEP_EVENT;
	env->step_event = ev;
}

static void link_event(struct world *w, int i, const char *job, const char *msg)
{
	Tuap__Envelope env;
	Tuap__StepEvent ev;
	struct tuap_err e;

	step_event(&env, &ev, job, msg);
	if (link_send(w->l[i], &env, &e) < 0)
		fail_msg("link_send: %s", e.msg);
}

/* Sends env as-is (seq included) on link i's socket, bypassing the link's checks. */
static void raw_send(struct world *w, int i, const Tuap__Envelope *env)
{
	size_t n = tuap__envelope__get_packed_size(env);
	uint8_t *b = malloc(n);

	tuap__envelope__pack(env, b);
	assert_int_equal(zmq_send(link_socket(w->l[i]), b, n, 0), (int)n);
	free(b);
}

/* Opens link i and waits until the hub has its hello. */
static void connect_link(struct world *w, int i)
{
	char dom[HUB_DOMAIN_SIZE];
	Tuap__Envelope *hello;

	open_link(w, i);
	hello = hub_wait(w, TUAP__ENVELOPE__BODY_HELLO, dom);
	assert_string_equal(dom, w->conf[i].domain);
	wire_free(hello);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_hello_and_seq(void **state)
{
	struct world *w = *state;
	char dom[HUB_DOMAIN_SIZE];
	Tuap__Envelope *env;
	struct hub_peer_info pi;
	struct link_status ls;
	struct hub_stats hs;

	assert_int_equal(hub_peer_info(w->hub, "a.test", &pi), 0);
	assert_false(pi.session);
	open_link(w, 0);
	env = hub_wait(w, TUAP__ENVELOPE__BODY_HELLO, dom);
	assert_string_equal(dom, "a.test");
	assert_int_equal(env->seq, 0);
	assert_string_equal(env->hello->agent_version, TUAP_VERSION);
	assert_string_equal(env->hello->hostname, "a.test");
	assert_int_equal(env->hello->session_id.len, 16);
	assert_int_equal(env->hello->last_seq_seen, 0);
	assert_int_equal(env->hello->next_seq, 1);
	wire_free(env);
	assert_int_equal(hub_peer_info(w->hub, "a.test", &pi), 0);
	assert_true(pi.session);
	assert_true(pi.connected);
	assert_true(pi.last_seen_unix > 0);
	assert_string_equal(pi.agent_version, TUAP_VERSION);
	assert_string_equal(pi.address, "127.0.0.1");

	/* Controller -> agent, in order, numbered from 1. */
	send_plan(w, "a.test", "job-1");
	send_cancel(w, "a.test", "job-1", "first");
	send_cancel(w, "a.test", "job-1", "second");
	env = link_wait(w, 0, TUAP__ENVELOPE__BODY_PLAN);
	assert_int_equal(env->seq, 1);
	assert_string_equal(env->plan->domain, "a.test");
	wire_free(env);
	env = link_wait(w, 0, TUAP__ENVELOPE__BODY_CANCEL);
	assert_int_equal(env->seq, 2);
	assert_string_equal(env->cancel->reason, "first");
	wire_free(env);
	env = link_wait(w, 0, TUAP__ENVELOPE__BODY_CANCEL);
	assert_int_equal(env->seq, 3);
	wire_free(env);

	/* Agent -> controller, in order. */
	for (int i = 0; i < 3; i++) {
		char msg[32];

		snprintf(msg, sizeof(msg), "event %d", i);
		link_event(w, 0, "job-1", msg);
	}
	for (int i = 0; i < 3; i++) {
		char msg[32];

		env = hub_wait(w, TUAP__ENVELOPE__BODY_STEP_EVENT, dom);
		snprintf(msg, sizeof(msg), "event %d", i);
		assert_string_equal(dom, "a.test");
		assert_int_equal(env->seq, (uint64_t)i + 1);
		assert_string_equal(env->step_event->message, msg);
		assert_string_equal(env->job_id, "job-1");
		wire_free(env);
	}
	/* Acks flow both ways without further traffic: both queues empty. */
	pump(w, SESSION_ACK_DELAY_MS * 4);
	assert_int_equal(hub_peer_info(w->hub, "a.test", &pi), 0);
	assert_int_equal(pi.unacked, 0);
	link_status(w->l[0], &ls);
	assert_int_equal(ls.unacked, 0);
	assert_true(ls.up);
	assert_int_equal(ls.connects, 1);
	hub_stats(w->hub, &hs);
	assert_int_equal(hs.delivered, 4);
	assert_int_equal(hs.rejected, 0);
	assert_int_equal(hs.duplicates, 0);
	assert_int_equal(w->hub_in.n, 0);
	assert_int_equal(w->link_in[0].n, 0);

	/* hub_send refuses what the controller must not send. */
	{
		Tuap__Envelope bad;
		Tuap__StepEvent ev;
		struct tuap_err e;

		step_event(&bad, &ev, "job-1", "x");
		assert_int_equal(hub_send(w->hub, "a.test", &bad, &e), -1);
		assert_non_null(strstr(e.msg, "not allowed controller->agent"));
		assert_int_equal(hub_send(w->hub, "nowhere.test", &bad, &e), -1);
	}
}

/* hub_defer: sequenced messages wait for hub_flush, through the hub's own timers too (tuapd
 * lets them out after its group commit). */
static void test_deferred_until_flush(void **state)
{
	struct world *w = *state;
	Tuap__Envelope *env;
	struct hub_peer_info pi;

	connect_link(w, 0);
	hub_defer(w->hub, true);
	send_plan(w, "a.test", "job-1");
	send_cancel(w, "a.test", "job-1", "held");
	pump(w, 300);
	assert_int_equal(w->link_in[0].n, 0);
	assert_int_equal(hub_peer_info(w->hub, "a.test", &pi), 0);
	assert_int_equal(pi.unacked, 2); /* queued, not lost */
	hub_flush(w->hub);
	env = link_wait(w, 0, TUAP__ENVELOPE__BODY_PLAN);
	assert_int_equal(env->seq, 1);
	wire_free(env);
	env = link_wait(w, 0, TUAP__ENVELOPE__BODY_CANCEL);
	assert_string_equal(env->cancel->reason, "held");
	wire_free(env);
	/* off again: sent at once */
	hub_defer(w->hub, false);
	send_cancel(w, "a.test", "job-1", "now");
	env = link_wait(w, 0, TUAP__ENVELOPE__BODY_CANCEL);
	assert_string_equal(env->cancel->reason, "now");
	wire_free(env);
}

static void test_resend_after_reconnect(void **state)
{
	struct world *w = *state;
	char dom[HUB_DOMAIN_SIZE];
	Tuap__Envelope *env;
	struct hub_peer_info pi;
	struct link_status ls;
	struct tuap_err e;

	connect_link(w, 0);
	send_plan(w, "a.test", "job-2");
	env = link_wait(w, 0, TUAP__ENVELOPE__BODY_PLAN);
	wire_free(env);

	/* Two messages reach the agent's socket but the socket is replaced before the agent reads
	 * them: they are lost with it, and not acknowledged. */
	send_cancel(w, "a.test", "job-2", "lost 1");
	send_cancel(w, "a.test", "job-2", "lost 2");
	while (hub_recv(w->hub, dom, &env, 50) == 1) /* let the hub push them out */
		push(&w->hub_in, dom, env);
	assert_int_equal(link_reconnect(w->l[0], &e), 0);
	/* While the new socket is still connecting, the agent sends: queued, not lost. */
	link_event(w, 0, "job-2", "sent while reconnecting");
	link_status(w->l[0], &ls);
	assert_false(ls.up);
	assert_int_equal(ls.unacked, 1);

	/* The new connection says hello (same session, last seen seq 1); the hub resends 2, 3. */
	env = hub_wait(w, TUAP__ENVELOPE__BODY_HELLO, dom);
	assert_int_equal(env->hello->last_seq_seen, 1);
	assert_int_equal(env->hello->next_seq, 1);
	wire_free(env);
	env = link_wait(w, 0, TUAP__ENVELOPE__BODY_CANCEL);
	assert_int_equal(env->seq, 2);
	assert_string_equal(env->cancel->reason, "lost 1");
	wire_free(env);
	env = link_wait(w, 0, TUAP__ENVELOPE__BODY_CANCEL);
	assert_int_equal(env->seq, 3);
	assert_string_equal(env->cancel->reason, "lost 2");
	wire_free(env);
	env = hub_wait(w, TUAP__ENVELOPE__BODY_STEP_EVENT, dom);
	assert_int_equal(env->seq, 1);
	assert_string_equal(env->step_event->message, "sent while reconnecting");
	wire_free(env);
	expect_log(w, "agent a.test (127.0.0.1): reconnected, session resumed; resending 2");
	pump(w, SESSION_ACK_DELAY_MS * 4);
	hub_peer_info(w->hub, "a.test", &pi);
	assert_int_equal(pi.unacked, 0);
	link_status(w->l[0], &ls);
	assert_int_equal(ls.unacked, 0);
	assert_int_equal(ls.connects, 2);
	assert_int_equal(w->link_in[0].n, 0); /* nothing twice */

	/* A new agent process is a new session: numbering restarts, the old queue is dropped. */
	send_cancel(w, "a.test", "job-2", "to the old process");
	close_link(w, 0);
	connect_link(w, 0);
	expect_log(w, "agent a.test: new agent session; 1 message(s) to the previous one dropped");
	if (strstr(logtext(w), "second connection"))
		fail_msg("a restart was taken for a stolen key:\n%s", logtext(w));
	send_cancel(w, "a.test", "job-2", "to the new process");
	env = link_wait(w, 0, TUAP__ENVELOPE__BODY_CANCEL);
	assert_int_equal(env->seq, 1);
	assert_string_equal(env->cancel->reason, "to the new process");
	wire_free(env);
	link_event(w, 0, "job-2", "new");
	env = hub_wait(w, TUAP__ENVELOPE__BODY_STEP_EVENT, dom);
	assert_int_equal(env->seq, 1);
	wire_free(env);
}

/* A second agent with the same key while the first is connected (the seed's agent.conf read
 * by someone else, 17.6): it gets in, but the log says so and the first is told. */
static void test_second_connection_same_key(void **state)
{
	struct world *w = *state;
	Tuap__Envelope *env;

	connect_link(w, 0);
	w->conf[1] = w->conf[0]; /* a copy of a.test's agent.conf */
	connect_link(w, 1);
	expect_log(w, "agent a.test: a second connection (127.0.0.1) with its key opened a new "
		      "session while the one from 127.0.0.1 is connected; it takes over");
	expect_log(w, "rotate it (tuap-ctl enroll --rotate a.test)");
	env = link_wait(w, 0, TUAP__ENVELOPE__BODY_ERROR);
	assert_int_equal(env->error->code, TUAP__ERROR__CODE__REFUSED);
	assert_non_null(strstr(env->error->message, "opened a new session"));
	wire_free(env);
}

static void test_unknown_key(void **state)
{
	struct world *w = *state;
	char pub[KEYS_Z85_SIZE], msg[200];
	struct link_status ls;
	struct hub_stats hs;

	make_conf(w, 2, "a.test", pub); /* claims a.test, but with a key nobody allowed */
	open_link(w, 2);
	link_event(w, 2, "job-x", "should never arrive");
	pump(w, 1500);
	assert_int_equal(w->hub_in.n, 0);
	hub_stats(w->hub, &hs);
	assert_true(hs.zap_denied >= 1);
	assert_int_equal(hs.zap_allowed, 0);
	assert_int_equal(hs.delivered, 0);
	link_status(w->l[2], &ls);
	assert_true(ls.auth_failures >= 1);
	assert_false(ls.up);
	assert_int_equal(ls.connects, 0);
	snprintf(msg, sizeof(msg), "agent socket: refused %s from 127.0.0.1: unknown public key",
		 pub);
	expect_log(w, msg);
	expect_log(w, "refused this agent's key (status 400)");
}

static void test_other_domain_job(void **state)
{
	struct world *w = *state;
	char dom[HUB_DOMAIN_SIZE];
	Tuap__Envelope *env;
	struct hub_stats hs;

	connect_link(w, 0);
	connect_link(w, 1);
	send_plan(w, "a.test", "job-a");
	wire_free(link_wait(w, 0, TUAP__ENVELOPE__BODY_PLAN));

	/* b.test reports on a.test's job: dropped, and told so. */
	link_event(w, 1, "job-a", "I am a.test, honest");
	env = link_wait(w, 1, TUAP__ENVELOPE__BODY_ERROR);
	assert_int_equal(env->error->code, TUAP__ERROR__CODE__NOT_ALLOWED);
	wire_free(env);
	expect_log(w, "agent b.test (127.0.0.1): dropped step_event: job 'job-a' belongs to domain "
		      "a.test");
	/* A job nobody started. */
	link_event(w, 1, "job-none", "?");
	env = link_wait(w, 1, TUAP__ENVELOPE__BODY_ERROR);
	assert_int_equal(env->error->code, TUAP__ERROR__CODE__UNKNOWN_JOB);
	wire_free(env);
	expect_log(w, "dropped step_event: unknown job 'job-none'");

	/* a.test itself is heard; b.test's seqs were consumed, so it goes on normally too. */
	link_event(w, 0, "job-a", "real");
	env = hub_wait(w, TUAP__ENVELOPE__BODY_STEP_EVENT, dom);
	assert_string_equal(dom, "a.test");
	assert_string_equal(env->step_event->message, "real");
	wire_free(env);
	assert_int_equal(w->hub_in.n, 0);
	hub_stats(w->hub, &hs);
	assert_int_equal(hs.rejected, 2);

	/* The hub refuses to send b.test a plan naming a.test, or a.test's job. */
	{
		struct tuap_err e;
		Tuap__Envelope p;
		Tuap__Plan plan = TUAP__PLAN__INIT;

		wire_init(&p);
		plan.job_id = "job-b";
		plan.domain = "a.test";
		p.body_case = TUAP__ENVELOPE__BODY_PLAN;
		p.plan = &plan;
		assert_int_equal(hub_send(w->hub, "b.test", &p, &e), -1);
		assert_non_null(strstr(e.msg, "plan for domain a.test sent to b.test"));
		assert_int_equal(hub_bind_job(w->hub, "b.test", "job-a", &e), -1);
	}
}

static void test_oversized(void **state)
{
	struct world *w = *state;
	char dom[HUB_DOMAIN_SIZE], line[200];
	Tuap__Envelope *env;
	size_t n = WIRE_MAX_MESSAGE + 100, huge = 2 * WIRE_MAX_MESSAGE + 100;
	char *big = calloc(1, huge);
	struct link_status ls;

	connect_link(w, 0);
	connect_link(w, 1);
	send_plan(w, "a.test", "job-o");
	wire_free(link_wait(w, 0, TUAP__ENVELOPE__BODY_PLAN));

	/* Over max_message: dropped, logged and answered; the connection stays (regression: it
	 * used to be libzmq's ZMQ_MAXMSGSIZE, which cuts the connection without a word). */
	assert_int_equal(zmq_send(link_socket(w->l[0]), big, n, 0), (int)n);
	env = link_wait(w, 0, TUAP__ENVELOPE__BODY_ERROR);
	assert_int_equal(env->error->code, TUAP__ERROR__CODE__BAD_MESSAGE);
	wire_free(env);
	snprintf(line, sizeof(line),
		 "agent a.test (127.0.0.1): dropped message: %zu bytes, more than max_message (%u)",
		 n, WIRE_MAX_MESSAGE);
	expect_log(w, line);
	link_status(w->l[0], &ls);
	assert_int_equal(ls.connects, 1);

	/* Over twice max_message: libzmq drops the frame and the connection; the agent
	 * reconnects, says hello again, and nothing of the frame is ever delivered. */
	assert_int_equal(zmq_send(link_socket(w->l[0]), big, huge, 0), (int)huge);
	free(big);
	env = hub_wait(w, TUAP__ENVELOPE__BODY_HELLO, dom);
	assert_string_equal(dom, "a.test");
	wire_free(env);
	link_status(w->l[0], &ls);
	assert_int_equal(ls.connects, 2);

	/* The hub keeps serving both agents. */
	link_event(w, 0, "job-o", "after the big one");
	env = hub_wait(w, TUAP__ENVELOPE__BODY_STEP_EVENT, dom);
	assert_string_equal(env->step_event->message, "after the big one");
	wire_free(env);
	send_plan(w, "b.test", "job-ob");
	wire_free(link_wait(w, 1, TUAP__ENVELOPE__BODY_PLAN));

	/* Small garbage is dropped by wire_decode, answered with BAD_MESSAGE, and logged. */
	assert_int_equal(zmq_send(link_socket(w->l[1]), "\xff\xff\xff", 3, 0), 3);
	env = link_wait(w, 1, TUAP__ENVELOPE__BODY_ERROR);
	assert_int_equal(env->error->code, TUAP__ERROR__CODE__BAD_MESSAGE);
	wire_free(env);
	expect_log(w, "agent b.test (127.0.0.1): dropped message: undecodable message of 3 bytes");
	assert_int_equal(w->hub_in.n, 0);
}

static void test_disallowed_and_version(void **state)
{
	struct world *w = *state;
	Tuap__Envelope env, *got;
	Tuap__Plan plan = TUAP__PLAN__INIT;
	Tuap__StepEvent ev;
	struct hub_stats hs;

	connect_link(w, 0);
	/* An agent sending a Plan. */
	wire_init(&env);
	plan.job_id = "job-p";
	plan.domain = "a.test";
	env.seq = 1;
	env.body_case = TUAP__ENVELOPE__BODY_PLAN;
	env.plan = &plan;
	raw_send(w, 0, &env);
	got = link_wait(w, 0, TUAP__ENVELOPE__BODY_ERROR);
	assert_int_equal(got->error->code, TUAP__ERROR__CODE__NOT_ALLOWED);
	wire_free(got);
	expect_log(w, "agent a.test (127.0.0.1): dropped message: plan is not allowed "
		      "agent->controller");

	/* An agent speaking an older protocol is told the minimum. */
	step_event(&env, &ev, "job-p", "old");
	env.version = WIRE_MIN_VERSION - 1;
	env.seq = 1;
	raw_send(w, 0, &env);
	got = link_wait(w, 0, TUAP__ENVELOPE__BODY_ERROR);
	assert_int_equal(got->error->code, TUAP__ERROR__CODE__UPGRADE_REQUIRED);
	assert_int_equal(got->error->min_version, WIRE_MIN_VERSION);
	wire_free(got);
	expect_log(w, "dropped message: protocol version 0 is older than 1");

	/* Two frames in one message: not the protocol. */
	assert_int_equal(zmq_send(link_socket(w->l[0]), "a", 1, ZMQ_SNDMORE), 1);
	assert_int_equal(zmq_send(link_socket(w->l[0]), "b", 1, 0), 1);
	pump(w, 300);
	expect_log(w, "dropped message: multipart messages are not part of the protocol");

	hub_stats(w->hub, &hs);
	assert_int_equal(hs.rejected, 3);
	assert_int_equal(hs.delivered, 1); /* the hello */
	assert_int_equal(w->hub_in.n, 0);
}

static void test_replayed_seq(void **state)
{
	struct world *w = *state;
	char dom[HUB_DOMAIN_SIZE];
	Tuap__Envelope env, *got;
	Tuap__StepEvent ev;
	struct hub_stats hs;

	connect_link(w, 0);
	send_plan(w, "a.test", "job-r");
	wire_free(link_wait(w, 0, TUAP__ENVELOPE__BODY_PLAN));
	link_event(w, 0, "job-r", "original");
	got = hub_wait(w, TUAP__ENVELOPE__BODY_STEP_EVENT, dom);
	assert_int_equal(got->seq, 1);
	wire_free(got);

	/* Replaying seq 1 (e.g. a captured message resent): dropped. */
	step_event(&env, &ev, "job-r", "replayed");
	env.seq = 1;
	raw_send(w, 0, &env);
	/* Jumping ahead: dropped until the gap is filled. */
	env.seq = 1000;
	raw_send(w, 0, &env);
	pump(w, 300);
	assert_int_equal(w->hub_in.n, 0);
	hub_stats(w->hub, &hs);
	assert_int_equal(hs.duplicates, 1);
	expect_log(w, "agent a.test (127.0.0.1): dropped step_event seq 1: already received");
	expect_log(w, "dropped step_event: seq 1000 out of order (expected 2");

	/* The link goes on at seq 2. */
	link_event(w, 0, "job-r", "next");
	got = hub_wait(w, TUAP__ENVELOPE__BODY_STEP_EVENT, dom);
	assert_int_equal(got->seq, 2);
	assert_string_equal(got->step_event->message, "next");
	wire_free(got);
}

static void test_revoke_and_rotate(void **state)
{
	struct world *w = *state;
	char dom[HUB_DOMAIN_SIZE], pub[KEYS_Z85_SIZE];
	Tuap__Envelope *env;
	struct link_status ls;
	struct hub_peer_info pi;
	struct tuap_err e;

	connect_link(w, 0);
	send_plan(w, "a.test", "job-v");
	wire_free(link_wait(w, 0, TUAP__ENVELOPE__BODY_PLAN));

	/* Revoked: the open connection is no longer heard... */
	assert_int_equal(hub_revoke(w->hub, "a.test"), 0);
	assert_int_equal(hub_revoke(w->hub, "a.test"), -1);
	assert_int_equal(hub_peer_info(w->hub, "a.test", &pi), -1);
	link_event(w, 0, "job-v", "after revoke");
	pump(w, 300);
	assert_int_equal(w->hub_in.n, 0);
	expect_log(w, "dropped message: domain 'a.test' is not allowed (revoked?)");
	/* ...and a new connection is refused at the handshake. */
	assert_int_equal(link_reconnect(w->l[0], &e), 0);
	pump(w, 1500);
	link_status(w->l[0], &ls);
	assert_true(ls.auth_failures >= 1);
	assert_false(ls.up);
	assert_int_equal(w->hub_in.n, 0);

	/* Rotation: a.test gets a new key. The agent with the new key is let in... */
	make_conf(w, 2, "a.test", pub);
	assert_int_equal(hub_allow(w->hub, "a.test", pub, &e), 0);
	open_link(w, 2);
	env = hub_wait(w, TUAP__ENVELOPE__BODY_HELLO, dom);
	assert_string_equal(dom, "a.test");
	wire_free(env);
	/* ...and the old one stays out. */
	pump(w, 800);
	link_status(w->l[0], &ls);
	assert_false(ls.up);
	assert_int_equal(w->hub_in.n, 0);

	/* Rotating while the old key's connection is open: that connection is ignored. */
	make_conf(w, 1, "a.test", pub);
	close_link(w, 0);
	assert_int_equal(hub_allow(w->hub, "a.test", pub, &e), 0); /* key of link 1's config */
	expect_log(w, "agent a.test: key rotated; the old key is refused from now on");
	link_event(w, 2, "job-v", "old key, open connection");
	pump(w, 300);
	assert_int_equal(w->hub_in.n, 0);
	expect_log(w, "dropped message: sent under a key that is no longer the domain's");

	/* A key serves one domain only. */
	assert_int_equal(hub_allow(w->hub, "c.test", pub, &e), -1);
	assert_non_null(strstr(e.msg, "already belongs to domain a.test"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hello_and_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deferred_until_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resend_after_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_connection_same_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_domain_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disallowed_and_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replayed_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revoke_and_rotate, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
