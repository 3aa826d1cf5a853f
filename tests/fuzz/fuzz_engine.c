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
#include <ftw.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "job.h"
#include "log.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[64];

static void must_encode(const Tuap__Envelope *env, enum wire_dir dir)
{
	struct buf b = BUF_INIT;
	struct tuap_err e;

	if (wire_check(env, dir, &e) != WIRE_OK || wire_encode(env, &b, &e) < 0) {
		/* the engine sent what its peer would refuse */
		fprintf(stderr, "fuzz_engine: tuapd sent %s that fails its own checks: %s\n",
			wire_body_name(env->body_case), e.msg);
		abort();
	}
	buf_free(&b);
}

static int agent_send(void *ctx, const char *domain, Tuap__Envelope *env)
{
	/* stamped as hub_send stamps every envelope to an agent: the version, the session's next
	 * sequence number when the body is sequenced */
	Tuap__Envelope copy = *env;

	(void)ctx;
	(void)domain;
	copy.version = WIRE_VERSION;
	copy.seq = wire_sequenced(env->body_case) ? 1 : 0;
	must_encode(&copy, WIRE_TO_AGENT);
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
	must_encode(&env, WIRE_TO_CTL);
	return 0;
}

static int agent_allow(void *ctx, const char *domain, const char *key)
{
	(void)ctx;
	(void)domain;
	(void)key;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The state and pool directories of the input, removed in-process (a fork per input halved the
 * rate). */
/* tuapd's log lines are made (their formatting runs) and dropped: stderr would be the
 * bottleneck */
static bool drop_line(enum log_level level, const struct log_about *about, const char *msg)
{
	(void)level;
	(void)about;
	(void)msg;
	return true;
}

static void rm_tree(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/state", root);
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	snprintf(path, sizeof(path), "%s/vms", root);
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
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

	if (!root[0]) {
		log_set_writer(drop_line);
		const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

		snprintf(root, sizeof(root), "%s/tuap-fuzz-engine-XXXXXX", base);
		if (!mkdtemp(root))
			abort();
	}
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
