/*
 * libFuzzer harness for tuapd's dispatch: the job engine (controller/tuapd/engine) fed what the
 * hub and the control socket would hand it, from arbitrary bytes. The input is a sequence of
 * frames [kind][length, 2 bytes big-endian][bytes]: kind even is a message from tuap-ctl (an
 * Envelope decoded and checked in the ctl->tuapd direction: CtlRequest or UploadChunk), odd one
 * from domain a.test's agent (agent->controller, checked as the hub checks it). After each
 * frame the engine's deadlines are run. A fresh engine and state directory every input, so a
 * crash replays from its input alone. Every reply the engine sends is encoded (it must be
 * valid in its direction) and dropped.
 *
 * Seeds: tests/fuzz/corpus/engine (built by tests/fuzz/make-engine-seeds.py: enroll, provision
 * --existing, hello, step events, chunk requests, uploads).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[64];

static int agent_send(void *ctx, const char *domain, Tuap__Envelope *env)
{
	/* stamped as hub_send stamps every envelope to an agent: the version, the session's next
	 * sequence number when the body is sequenced */
	Tuap__Envelope copy = *env;

	(void)ctx;
	(void)domain;
	copy.version = WIRE_VERSION;
	copy.seq = wire_sequenced(env->body_case) ? 1 : 0;
	fuzz_must_encode("tuapd", &copy, WIRE_TO_AGENT);
	return 0;
}

static int ctl_send(void *ctx, const struct ctl_peer *peer, const Tuap__CtlEvent *ev)
{
	Tuap__Envelope env;

	(void)ctx;
	(void)peer;
	wire_init(&env);
	env.body_case = TUAP__ENVELOPE__BODY_CTL_EVENT;
	env.ctl_event = (Tuap__CtlEvent *)ev;
	fuzz_must_encode("tuapd", &env, WIRE_TO_CTL);
	return 0;
}

static int agent_allow(void *ctx, const char *domain, const char *key)
{
	(void)ctx;
	(void)domain;
	(void)key;
	return 0;
}

/* The state and pool directories of the input. */
static void rm_tree(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/state", root);
	fuzz_rm_tree(path);
	snprintf(path, sizeof(path), "%s/vms", root);
	fuzz_rm_tree(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char state[128], pool[128];
	struct engine_conf c = {.data_chunk = 64, .data_window = 2, .upload_chunk = 64};
	struct engine_io io = {agent_send, ctl_send, agent_allow, NULL};
	const struct ctl_peer peer = {{'c', 't', 'l'}, 3};
	struct tuap_err e;
	struct engine *eng;
	int64_t now = engine_now_ms();

	if (!root[0])
		fuzz_setup("engine", root, sizeof(root));
	snprintf(state, sizeof(state), "%s/state", root);
	snprintf(pool, sizeof(pool), "%s/vms", root);
	c.state_dir = state;
	c.pool_root = pool;
	c.server_public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
	if (!(eng = engine_new(&c, &io, &e)))
		abort();
	if (engine_resume_all(eng, &e) < 0)
		abort();
	while (size >= 3) {
		uint8_t kind = data[0];
		size_t len = (size_t)data[1] << 8 | data[2];
		Tuap__Envelope *env = NULL;
		enum wire_dir dir = kind & 1 ? WIRE_FROM_AGENT : WIRE_FROM_CTL;

		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		if (wire_decode(data, len, dir, &env, &e) == WIRE_OK &&
		    wire_check(env, dir, &e) == WIRE_OK) {
			if (dir == WIRE_FROM_AGENT)
				engine_agent_message(eng, "a.test", env);
			else if (env->body_case == TUAP__ENVELOPE__BODY_CTL_REQUEST)
				engine_ctl_request(eng, &peer, env->ctl_request);
			else if (env->body_case == TUAP__ENVELOPE__BODY_UPLOAD_CHUNK)
				engine_ctl_upload(eng, &peer, env->upload_chunk);
		}
		wire_free(env);
		data += len;
		size -= len;
		now += 7000; /* past the short deadlines, so their paths run too */
		engine_tick(eng, now);
		engine_commit(eng); /* tuapd's group commit, once per pass as its loop does */
	}
	engine_free(eng);
	rm_tree();
	return 0;
}
