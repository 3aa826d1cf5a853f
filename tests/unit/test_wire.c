/* Unit tests for common/wire: codec round trips, version rule, allow-list, limits, garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "wire.h"

static const uint8_t session[16] = "0123456789abcdef";

/* One envelope of each body type, built in static storage the test owns. */
struct sample {
	Tuap__Envelope env;
	Tuap__Hello hello;
	Tuap__StepRecord rec, *recs[1];
	Tuap__StepEvent ev;
	char *lines[2];
	Tuap__ChunkRequest creq;
	Tuap__Plan plan;
	Tuap__Step steps[3];
	Tuap__StepRequest sreq;
	Tuap__UsersArgs uargs;
	Tuap__User user, *users[1];
	char *groups[2];
	Tuap__DataChunk chunk;
	Tuap__Cancel cancel;
	Tuap__Error error;
	Tuap__CtlRequest ctlreq;
	Tuap__DomainRequest dreq;
	Tuap__UploadChunk upload;
	Tuap__CtlEvent ctlev;
	Tuap__PhaseEvent phase;
};

static void build(struct sample *s, Tuap__Envelope__BodyCase body)
{
	memset(s, 0, sizeof(*s));
	wire_init(&s->env);
	s->env.seq = wire_sequenced(body) ? 7 : 0;
	s->env.has_ack = 1;
	s->env.ack = 3;
	s->env.job_id = "job-1";
	s->env.body_case = body;
	switch (body) {
	case TUAP__ENVELOPE__BODY_HELLO:
		tuap__hello__init(&s->hello);
		tuap__step_record__init(&s->rec);
		s->hello.agent_version = "0.1.0";
		s->hello.session_id.data = (uint8_t *)session;
		s->hello.session_id.len = sizeof(session);
		s->hello.hostname = "www";
		s->rec.job_id = "job-0";
		s->rec.step = TUAP__STEP__STEP_MAKE;
		s->rec.state = TUAP__STEP_STATE__STATE_DONE;
		s->recs[0] = &s->rec;
		s->hello.n_steps = 1;
		s->hello.steps = s->recs;
		s->hello.has_last_seq_seen = 1;
		s->hello.last_seq_seen = 41;
		s->env.hello = &s->hello;
		break;
	case TUAP__ENVELOPE__BODY_STEP_EVENT:
		tuap__step_event__init(&s->ev);
		s->ev.step = TUAP__STEP__STEP_MAKE;
		s->ev.state = TUAP__STEP_STATE__STATE_LOG;
		s->lines[0] = "cc -o x x.c";
		s->lines[1] = "";
		s->ev.n_lines = 2;
		s->ev.lines = s->lines;
		s->env.step_event = &s->ev;
		break;
	case TUAP__ENVELOPE__BODY_CHUNK_REQUEST:
		tuap__chunk_request__init(&s->creq);
		s->creq.offset = 1u << 20;
		s->creq.credit = 4u << 20;
		s->env.chunk_request = &s->creq;
		break;
	case TUAP__ENVELOPE__BODY_PLAN:
		tuap__plan__init(&s->plan);
		s->plan.job_id = "job-1";
		s->plan.domain = "example.test";
		s->steps[0] = TUAP__STEP__STEP_USERS;
		s->steps[1] = TUAP__STEP__STEP_DATA;
		s->steps[2] = TUAP__STEP__STEP_MAKE;
		s->plan.n_steps = 3;
		s->plan.steps = s->steps;
		s->env.plan = &s->plan;
		break;
	case TUAP__ENVELOPE__BODY_STEP_REQUEST:
		tuap__step_request__init(&s->sreq);
		tuap__users_args__init(&s->uargs);
		tuap__user__init(&s->user);
		s->user.name = "alice";
		s->groups[0] = "adm";
		s->groups[1] = "sudo";
		s->user.n_groups = 2;
		s->user.groups = s->groups;
		s->users[0] = &s->user;
		s->uargs.n_users = 1;
		s->uargs.users = s->users;
		s->sreq.step = TUAP__STEP__STEP_USERS;
		s->sreq.args_case = TUAP__STEP_REQUEST__ARGS_USERS;
		s->sreq.users = &s->uargs;
		s->env.step_request = &s->sreq;
		break;
	case TUAP__ENVELOPE__BODY_DATA_CHUNK:
		tuap__data_chunk__init(&s->chunk);
		s->chunk.offset = 65536;
		s->chunk.data.data = (uint8_t *)"\0\1\2binary";
		s->chunk.data.len = 9;
		s->env.data_chunk = &s->chunk;
		break;
	case TUAP__ENVELOPE__BODY_CANCEL:
		tuap__cancel__init(&s->cancel);
		s->cancel.reason = "operator";
		s->env.cancel = &s->cancel;
		break;
	case TUAP__ENVELOPE__BODY_ERROR:
		tuap__error__init(&s->error);
		s->error.code = TUAP__ERROR__CODE__BUSY;
		s->error.message = "busy";
		s->env.error = &s->error;
		break;
	case TUAP__ENVELOPE__BODY_CTL_REQUEST:
		tuap__ctl_request__init(&s->ctlreq);
		tuap__domain_request__init(&s->dreq);
		s->dreq.domain = "example.test";
		s->ctlreq.req_case = TUAP__CTL_REQUEST__REQ_STATUS;
		s->ctlreq.status = &s->dreq;
		s->env.ctl_request = &s->ctlreq;
		break;
	case TUAP__ENVELOPE__BODY_UPLOAD_CHUNK:
		tuap__upload_chunk__init(&s->upload);
		s->upload.domain = "example.test";
		s->upload.offset = 0;
		s->upload.data.data = (uint8_t *)"tar";
		s->upload.data.len = 3;
		s->env.upload_chunk = &s->upload;
		break;
	case TUAP__ENVELOPE__BODY_CTL_EVENT:
		tuap__ctl_event__init(&s->ctlev);
		tuap__phase_event__init(&s->phase);
		s->phase.phase = "image";
		s->phase.state = TUAP__PHASE_EVENT__STATE__DONE;
		s->ctlev.ev_case = TUAP__CTL_EVENT__EV_PHASE;
		s->ctlev.phase = &s->phase;
		s->env.ctl_event = &s->ctlev;
		break;
	default:
		s->env.has_ack = 1; /* pure ack */
		break;
	}
}

static const Tuap__Envelope__BodyCase bodies[] = {
	TUAP__ENVELOPE__BODY__NOT_SET,	   TUAP__ENVELOPE__BODY_HELLO,
	TUAP__ENVELOPE__BODY_STEP_EVENT,   TUAP__ENVELOPE__BODY_CHUNK_REQUEST,
	TUAP__ENVELOPE__BODY_PLAN,	   TUAP__ENVELOPE__BODY_STEP_REQUEST,
	TUAP__ENVELOPE__BODY_DATA_CHUNK,   TUAP__ENVELOPE__BODY_CANCEL,
	TUAP__ENVELOPE__BODY_ERROR,	   TUAP__ENVELOPE__BODY_CTL_REQUEST,
	TUAP__ENVELOPE__BODY_UPLOAD_CHUNK, TUAP__ENVELOPE__BODY_CTL_EVENT,
};
#define NBODIES (sizeof(bodies) / sizeof(bodies[0]))

/* The allow-list the brief asks for, written out independently of wire.c: one string of four
 * flags per body (from agent, to agent, from ctl, to ctl). */
static const char *const expect[NBODIES] = {
	"11..", "1...", "1...", "1...", ".1..", ".1..",
	".1..", ".1..", "11.1", "..1.", "..1.", "...1",
};

static void encode(const Tuap__Envelope *env, struct buf *b)
{
	struct tuap_err e;

	buf_reset(b);
	if (wire_encode(env, b, &e) < 0)
		fail_msg("encode: %s", e.msg);
}

/* Packs without wire_encode's checks, as a hostile or buggy peer would. */
static void raw_pack(const Tuap__Envelope *env, struct buf *b)
{
	size_t n = tuap__envelope__get_packed_size(env);

	buf_reset(b);
	buf_grow(b, n);
	tuap__envelope__pack(env, (uint8_t *)b->s);
	b->len = n;
}

static void test_round_trip(void **state)
{
	struct sample *s = malloc(sizeof(*s));
	struct buf b = BUF_INIT, b2 = BUF_INIT;
	struct tuap_err e;

	for (size_t i = 0; i < NBODIES; i++) {
		Tuap__Envelope *out = NULL;
		enum wire_dir dir = (enum wire_dir)(strchr(expect[i], '1') - expect[i]);

		build(s, bodies[i]);
		encode(&s->env, &b);
		assert_int_equal(wire_decode(b.s, b.len, dir, &out, &e), WIRE_OK);
		assert_int_equal(out->body_case, bodies[i]);
		assert_int_equal(out->version, WIRE_VERSION);
		assert_int_equal(out->seq, s->env.seq);
		assert_string_equal(out->job_id, "job-1");
		/* The re-encoding of what was decoded is byte-identical. */
		encode(out, &b2);
		assert_int_equal(b2.len, b.len);
		assert_memory_equal(b2.s, b.s, b.len);
		switch (bodies[i]) {
		case TUAP__ENVELOPE__BODY_HELLO:
			assert_memory_equal(out->hello->session_id.data, session, 16);
			assert_int_equal(out->hello->n_steps, 1);
			assert_string_equal(out->hello->steps[0]->job_id, "job-0");
			assert_int_equal(out->hello->last_seq_seen, 41);
			break;
		case TUAP__ENVELOPE__BODY_STEP_REQUEST:
			assert_string_equal(out->step_request->users->users[0]->groups[1], "sudo");
			break;
		case TUAP__ENVELOPE__BODY_DATA_CHUNK:
			assert_int_equal(out->data_chunk->data.len, 9);
			assert_memory_equal(out->data_chunk->data.data, "\0\1\2binary", 9);
			break;
		case TUAP__ENVELOPE__BODY_PLAN:
			assert_int_equal(out->plan->steps[2], TUAP__STEP__STEP_MAKE);
			break;
		case TUAP__ENVELOPE__BODY_CTL_EVENT:
			assert_string_equal(out->ctl_event->phase->phase, "image");
			break;
		default:
			break;
		}
		wire_free(out);
	}
	buf_free(&b);
	buf_free(&b2);
	free(s);
}

/* What an agent says cannot drive the operator's terminal or forge log lines (17.4): every
 * string of its message, nested ones included, has its control characters replaced; the same
 * bytes sent to the agent are left alone (users' data). */
static void test_agent_text_scrubbed(void **state)
{
	struct sample *s = malloc(sizeof(*s));
	struct buf b = BUF_INIT;
	struct tuap_err e;
	Tuap__Envelope *out;
	char osc52[] = "\x1b]52;c;cm0gLXJmIH4=\x07"
		       "copied",
	     forged[] = "ok\r\n[phase data] done",
	     csi[] = "\xc2\x9b"
		     "31mred\x7f",
	     prio[] = "x\n<0>tuapd: emergency", tab[] = "a\tb \xc3\xa9t\xc3\xa9",
	     host[] = "www\x1b[2J", step_job[] = "job\x1b-0";

	(void)state;
	build(s, TUAP__ENVELOPE__BODY_STEP_EVENT);
	s->lines[0] = osc52;
	s->lines[1] = forged;
	s->ev.message = csi;
	encode(&s->env, &b);
	assert_int_equal(wire_decode(b.s, b.len, WIRE_FROM_AGENT, &out, &e), WIRE_OK);
	assert_string_equal(out->step_event->lines[0], "?]52;c;cm0gLXJmIH4=?copied");
	assert_string_equal(out->step_event->lines[1], "ok??[phase data] done");
	assert_string_equal(out->step_event->message, "??31mred?");
	wire_free(out);

	build(s, TUAP__ENVELOPE__BODY_HELLO);
	s->hello.hostname = host;
	s->hello.agent_version = prio;
	s->rec.job_id = step_job; /* a nested message's string */
	encode(&s->env, &b);
	assert_int_equal(wire_decode(b.s, b.len, WIRE_FROM_AGENT, &out, &e), WIRE_OK);
	assert_string_equal(out->hello->hostname, "www?[2J");
	assert_string_equal(out->hello->agent_version, "x?<0>tuapd: emergency");
	assert_string_equal(out->hello->steps[0]->job_id, "job?-0");
	wire_free(out);

	build(s, TUAP__ENVELOPE__BODY_STEP_EVENT);
	s->ev.message = tab; /* tab and UTF-8 (é) kept */
	encode(&s->env, &b);
	assert_int_equal(wire_decode(b.s, b.len, WIRE_FROM_AGENT, &out, &e), WIRE_OK);
	assert_string_equal(out->step_event->message, "a\tb \xc3\xa9t\xc3\xa9");
	wire_free(out);

	build(s, TUAP__ENVELOPE__BODY_STEP_REQUEST);
	s->groups[1] = host;
	encode(&s->env, &b);
	assert_int_equal(wire_decode(b.s, b.len, WIRE_TO_AGENT, &out, &e), WIRE_OK);
	assert_string_equal(out->step_request->users->users[0]->groups[1], host);
	wire_free(out);
	buf_free(&b);
	free(s);
}

static void test_allow_list(void **state)
{
	struct sample *s = malloc(sizeof(*s));
	struct buf b = BUF_INIT;
	struct tuap_err e;

	for (size_t i = 0; i < NBODIES; i++) {
		build(s, bodies[i]);
		encode(&s->env, &b);
		for (int d = WIRE_FROM_AGENT; d <= WIRE_TO_CTL; d++) {
			Tuap__Envelope *out = NULL;
			int r = wire_decode(b.s, b.len, (enum wire_dir)d, &out, &e);

			if (expect[i][d] == '1') {
				assert_int_equal(r, WIRE_OK);
			} else {
				assert_int_equal(r, WIRE_DENIED);
				assert_null(out);
				assert_non_null(strstr(e.msg, "not allowed"));
				assert_non_null(strstr(e.msg, wire_dir_name((enum wire_dir)d)));
			}
			assert_int_equal(wire_check(&s->env, (enum wire_dir)d, NULL), r);
			wire_free(out);
		}
	}
	/* The named case of the brief: an agent sending a Plan. */
	build(s, TUAP__ENVELOPE__BODY_PLAN);
	assert_int_equal(wire_check(&s->env, WIRE_FROM_AGENT, &e), WIRE_DENIED);
	assert_string_equal(e.msg, "plan is not allowed agent->controller");
	buf_free(&b);
	free(s);
}

static void test_seq_rule(void **state)
{
	struct sample *s = malloc(sizeof(*s));
	struct tuap_err e;

	build(s, TUAP__ENVELOPE__BODY_STEP_EVENT);
	s->env.seq = 0;
	assert_int_equal(wire_check(&s->env, WIRE_FROM_AGENT, &e), WIRE_BAD);
	assert_non_null(strstr(e.msg, "sequence number"));
	build(s, TUAP__ENVELOPE__BODY_HELLO);
	s->env.seq = 5;
	assert_int_equal(wire_check(&s->env, WIRE_FROM_AGENT, &e), WIRE_BAD);
	build(s, TUAP__ENVELOPE__BODY__NOT_SET);
	s->env.seq = 1;
	assert_int_equal(wire_check(&s->env, WIRE_TO_AGENT, &e), WIRE_BAD);
	/* The ctl link has no sequencing. */
	build(s, TUAP__ENVELOPE__BODY_CTL_REQUEST);
	s->env.seq = 0;
	assert_int_equal(wire_check(&s->env, WIRE_FROM_CTL, &e), WIRE_OK);
	/* A Hello's session id must be long enough to be a session id. */
	build(s, TUAP__ENVELOPE__BODY_HELLO);
	s->hello.session_id.len = 4;
	assert_int_equal(wire_check(&s->env, WIRE_FROM_AGENT, &e), WIRE_BAD);
	assert_non_null(strstr(e.msg, "session_id"));
	/* A ctl request must ask for something. */
	build(s, TUAP__ENVELOPE__BODY_CTL_REQUEST);
	s->ctlreq.req_case = TUAP__CTL_REQUEST__REQ__NOT_SET;
	assert_int_equal(wire_check(&s->env, WIRE_FROM_CTL, &e), WIRE_BAD);
	free(s);
}

static void test_version(void **state)
{
	struct sample *s = malloc(sizeof(*s));
	struct buf b = BUF_INIT;
	struct tuap_err e;
	Tuap__Envelope *out = NULL, reply;
	Tuap__Error err;
	uint8_t old[] = {0x08, 0x00, 0xff, 0xff, 0xff}; /* version 0, then nothing parseable */

	/* An older sender is told to upgrade, even when the rest no longer parses. */
	build(s, TUAP__ENVELOPE__BODY_HELLO);
	s->env.version = WIRE_MIN_VERSION - 1;
	encode(&s->env, &b);
	assert_int_equal(wire_decode(b.s, b.len, WIRE_FROM_AGENT, &out, &e), WIRE_OLD);
	assert_null(out);
	assert_non_null(strstr(e.msg, "upgrade"));
	assert_int_equal(wire_decode(old, sizeof(old), WIRE_FROM_AGENT, &out, &e), WIRE_OLD);

	/* The answer: an unsequenced Error UPGRADE_REQUIRED with our minimum, which the old peer
	 * can read (its minimum is lower than our version). */
	wire_error_reply(&reply, &err, WIRE_OLD, e.msg);
	encode(&reply, &b);
	assert_int_equal(wire_decode(b.s, b.len, WIRE_TO_AGENT, &out, &e), WIRE_OK);
	assert_int_equal(out->body_case, TUAP__ENVELOPE__BODY_ERROR);
	assert_int_equal(out->seq, 0);
	assert_int_equal(out->error->code, TUAP__ERROR__CODE__UPGRADE_REQUIRED);
	assert_true(out->error->has_min_version);
	assert_int_equal(out->error->min_version, WIRE_MIN_VERSION);
	wire_free(out);
	wire_error_reply(&reply, &err, WIRE_DENIED, "x");
	assert_int_equal(err.code, TUAP__ERROR__CODE__NOT_ALLOWED);
	wire_error_reply(&reply, &err, WIRE_BAD, "x");
	assert_int_equal(err.code, TUAP__ERROR__CODE__BAD_MESSAGE);

	/* A newer sender is accepted. */
	build(s, TUAP__ENVELOPE__BODY_HELLO);
	s->env.version = WIRE_VERSION + 3;
	encode(&s->env, &b);
	assert_int_equal(wire_decode(b.s, b.len, WIRE_FROM_AGENT, &out, &e), WIRE_OK);
	assert_int_equal(out->version, WIRE_VERSION + 3);
	wire_free(out);
	buf_free(&b);
	free(s);
}

static void test_unknown_body(void **state)
{
	struct sample *s = malloc(sizeof(*s));
	struct buf b = BUF_INIT;
	struct tuap_err e;
	Tuap__Envelope *out = NULL;

	/* A pure ack plus a field 60 (a body type from a newer peer): length-delimited, 1 byte. */
	build(s, TUAP__ENVELOPE__BODY__NOT_SET);
	encode(&s->env, &b);
	buf_add(&b, "\xe2\x03\x01x", 4);
	assert_int_equal(wire_decode(b.s, b.len, WIRE_FROM_AGENT, &out, &e), WIRE_DENIED);
	assert_non_null(strstr(e.msg, "unknown body type (field 60)"));
	/* Field number 0 (found by fuzz_wire): protobuf-c keeps it as unknown but writes it back
	 * in a form it cannot read; refused. */
	{
		const uint8_t f0[] = {0x08, 0x01, 0x10, 0x00, 0x85, 0x00, 0x08, 0x01, 0x10, 0x00};

		assert_int_equal(wire_decode(f0, sizeof(f0), WIRE_TO_AGENT, &out, &e), WIRE_BAD);
		assert_string_equal(e.msg, "field number 0");
	}
	/* An unknown header field (below 16) is ignored. */
	encode(&s->env, &b);
	buf_add(&b, "\x28\x05", 2); /* field 5, varint 5 */
	assert_int_equal(wire_decode(b.s, b.len, WIRE_FROM_AGENT, &out, &e), WIRE_OK);
	wire_free(out);
	buf_free(&b);
	free(s);
}

static void test_oversized(void **state)
{
	struct sample *s = malloc(sizeof(*s));
	struct buf b = BUF_INIT;
	struct tuap_err e;
	Tuap__Envelope *out = NULL;
	uint8_t *big = calloc(1, WIRE_MAX_MESSAGE + 16);
	/* A DataChunk over the chunk bound: encode refuses it... */
	build(s, TUAP__ENVELOPE__BODY_DATA_CHUNK);
	s->chunk.data.data = big;
	s->chunk.data.len = WIRE_MAX_CHUNK + 1;
	assert_int_equal(wire_encode(&s->env, &b, &e), -1);
	assert_int_equal(b.len, 0);
	assert_non_null(strstr(e.msg, "data_chunk.data"));
	/* ...and decode refuses it when a peer packs it anyway. */
	raw_pack(&s->env, &b);
	assert_int_equal(wire_decode(b.s, b.len, WIRE_TO_AGENT, &out, &e), WIRE_BAD);
	assert_null(out);
	s->chunk.data.len = WIRE_MAX_CHUNK;
	encode(&s->env, &b);
	assert_int_equal(wire_decode(b.s, b.len, WIRE_TO_AGENT, &out, &e), WIRE_OK);
	wire_free(out);

	/* Bigger than a message may be: refused before parsing, and by the encoder. */
	assert_int_equal(wire_decode(big, WIRE_MAX_MESSAGE + 1, WIRE_FROM_AGENT, &out, &e),
			 WIRE_BAD);
	assert_non_null(strstr(e.msg, "exceeds the limit"));
	build(s, TUAP__ENVELOPE__BODY_CTL_REQUEST);
	{
		Tuap__ProvisionRequest pr = TUAP__PROVISION_REQUEST__INIT;

		pr.domain = "a";
		pr.conf_path = "a/provision.conf";
		pr.conf_text.data = big;
		pr.conf_text.len = WIRE_MAX_PAYLOAD;
		pr.has_users_text = 1;
		pr.users_text.data = big;
		pr.users_text.len = WIRE_OVERHEAD;
		s->ctlreq.req_case = TUAP__CTL_REQUEST__REQ_PROVISION;
		s->ctlreq.provision = &pr;
		buf_reset(&b);
		assert_int_equal(wire_encode(&s->env, &b, &e), -1);
		assert_non_null(strstr(e.msg, "more than the limit"));
		pr.users_text.len = 100;
		encode(&s->env, &b);
		assert_int_equal(wire_decode(b.s, b.len, WIRE_FROM_CTL, &out, &e), WIRE_OK);
		wire_free(out);
	}
	free(big);
	buf_free(&b);
	free(s);
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void add_varint(struct buf *b, uint64_t v)
{
	while (v >= 0x80) {
		uint8_t c = (uint8_t)(v | 0x80);

		buf_add(b, &c, 1);
		v >>= 7;
	}
	buf_add(b, &(uint8_t){(uint8_t)v}, 1);
}

static void test_bounds(void **state)
{
	struct sample *s = malloc(sizeof(*s));
	struct buf b = BUF_INIT;
	struct tuap_err e;
	Tuap__Envelope *out = NULL;
	char **lines = calloc(4097, sizeof(char *));
	char *longline = malloc(WIRE_MAX_STRING + 2);

	for (int i = 0; i < 4097; i++)
		lines[i] = "x";
	build(s, TUAP__ENVELOPE__BODY_STEP_EVENT);
	s->ev.lines = lines;
	s->ev.n_lines = 4096;
	encode(&s->env, &b);
	if (wire_decode(b.s, b.len, WIRE_FROM_AGENT, &out, &e) != WIRE_OK)
		fail_msg("%s", e.msg);
	wire_free(out);
	s->ev.n_lines = 4097;
	assert_int_equal(wire_check(&s->env, WIRE_FROM_AGENT, &e), WIRE_BAD);
	assert_string_equal(e.msg, "step_event.lines: 4097 elements exceed 4096");

	/* A string over the default bound. */
	memset(longline, 'y', WIRE_MAX_STRING + 1);
	longline[WIRE_MAX_STRING + 1] = '\0';
	lines[3] = longline;
	s->ev.n_lines = 5;
	assert_int_equal(wire_check(&s->env, WIRE_FROM_AGENT, &e), WIRE_BAD);
	assert_non_null(strstr(e.msg, "step_event.lines[3]: string of 65537 bytes"));

	/* Repeated submessages over the default bound (1024 users). */
	{
		Tuap__User u = TUAP__USER__INIT, **us = calloc(1025, sizeof(*us));

		u.name = "u";
		for (int i = 0; i < 1025; i++)
			us[i] = &u;
		build(s, TUAP__ENVELOPE__BODY_STEP_REQUEST);
		s->uargs.users = us;
		s->uargs.n_users = 1025;
		assert_int_equal(wire_check(&s->env, WIRE_TO_AGENT, &e), WIRE_BAD);
		assert_non_null(strstr(e.msg, "step_request.users.users: 1025 elements"));
		free(us);
	}

	/* An enum value nobody defined. */
	build(s, TUAP__ENVELOPE__BODY_PLAN);
	s->steps[1] = (Tuap__Step)99;
	assert_int_equal(wire_encode(&s->env, &b, &e), -1);
	raw_pack(&s->env, &b);
	assert_int_equal(wire_decode(b.s, b.len, WIRE_TO_AGENT, &out, &e), WIRE_BAD);
	assert_string_equal(e.msg, "plan.steps[1]: unknown value 99");

	/* A small message that would expand a lot in memory: 250000 empty users (4 bytes each on
	 * the wire, a full struct each in memory) is refused while parsing. */
	{
		struct buf m = BUF_INIT;
		size_t inner = 250000 * 4;

		build(s, TUAP__ENVELOPE__BODY_CANCEL);
		s->env.body_case = TUAP__ENVELOPE__BODY__NOT_SET;
		s->env.seq = 7;
		encode(&s->env, &m);
		/* step_request (field 25) { step: USERS, users (field 8) { users (field 1):
		 * {name: ""} x 250000 } } */
		buf_add(&m, "\xca\x01", 2);
		add_varint(&m, 2 + 1 + varint_len(inner) + inner);
		buf_add(&m, "\x08\x01\x42", 3);
		add_varint(&m, inner);
		for (int i = 0; i < 250000; i++)
			buf_add(&m, "\x0a\x02\x0a\x00", 4);
		assert_int_equal(wire_decode(m.s, m.len, WIRE_TO_AGENT, &out, &e), WIRE_BAD);
		assert_null(out);
		if (!strstr(e.msg, "expands too much"))
			fail_msg("%s", e.msg);
		buf_free(&m);
	}
	free(lines);
	free(longline);
	buf_free(&b);
	free(s);
}

static void test_truncated_and_garbage(void **state)
{
	struct sample *s = malloc(sizeof(*s));
	struct buf b = BUF_INIT;
	struct tuap_err e;
	Tuap__Envelope *out;
	uint8_t junk[512];
	uint32_t x = 12345;

	/* Every proper prefix of a StepEvent is rejected (the body is the last field). */
	build(s, TUAP__ENVELOPE__BODY_STEP_EVENT);
	encode(&s->env, &b);
	for (size_t n = 0; n < b.len; n++) {
		out = NULL;
		assert_int_not_equal(wire_decode(b.s, n, WIRE_FROM_AGENT, &out, &e), WIRE_OK);
		assert_null(out);
	}
	/* Random bytes: never accepted as a sequenced body without crashing (ASan watches). */
	for (int round = 0; round < 20000; round++) {
		size_t n;

		for (size_t i = 0; i < sizeof(junk); i++) {
			x = x * 1103515245u + 12345u;
			junk[i] = (uint8_t)(x >> 16);
		}
		n = (x >> 8) % sizeof(junk);
		for (int d = WIRE_FROM_AGENT; d <= WIRE_TO_CTL; d++) {
			out = NULL;
			if (wire_decode(junk, n, (enum wire_dir)d, &out, &e) == WIRE_OK)
				assert_int_equal(wire_check(out, (enum wire_dir)d, NULL), WIRE_OK);
			wire_free(out);
		}
	}
	/* Flipping each byte of a valid message never crashes the decoder. */
	build(s, TUAP__ENVELOPE__BODY_HELLO);
	encode(&s->env, &b);
	for (size_t i = 0; i < b.len; i++) {
		char saved = b.s[i];

		b.s[i] = (char)(saved ^ 0x5a);
		out = NULL;
		(void)wire_decode(b.s, b.len, WIRE_FROM_AGENT, &out, &e);
		wire_free(out);
		b.s[i] = saved;
	}
	buf_free(&b);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_agent_text_scrubbed),
		cmocka_unit_test(test_allow_list),
		cmocka_unit_test(test_seq_rule),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_unknown_body),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_truncated_and_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
