/*
 * libFuzzer harness for the agent's message handling: agent_dispatch (agent/dispatch.c) and the
 * steps it drives, fed what the link would hand it, from arbitrary bytes. The input is a
 * sequence of frames [length, 2 bytes big-endian][Envelope], each decoded and checked in the
 * controller->agent direction as link_recv does; after each frame the running step is served
 * (its pipes polled, its timers run) until it is idle. At the end it is served until idle
 * again, cancelled if it still runs, and freed, and a Hello is filled from the journal. Every
 * message the agent sends is checked as tuapd's hub checks it (valid agent->controller).
 *
 * Where it acts: a fresh directory per input on /dev/shm holds the agent's state dir (journal,
 * jobs), its site root, and the root the users and mail steps edit (etc/passwd, group, shadow,
 * gshadow; the shadow tools get --root and chroot themselves; newaliases is not run for a root
 * other than "/"). Two kinds of StepRequest are not passed on: packages (apt installs on the
 * running system, whatever the root) and make (it runs the site's Makefile under a supervisor
 * that outlives the agent), and only the first 8 of an input (a users step runs commands: the
 * input's time stays bounded); the link-level framing is fuzz_wire's. Without root, the users
 * step fails at its first command, which the harness accepts.
 *
 * Seeds: tests/fuzz/corpus/agent (tests/fuzz/make-agent-seeds.py: a plan, a data step fed a
 * real tarball in chunks out of order, users and mail steps, a cancel, resends of a running
 * step).
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dispatch.h"
#include "fsutil.h"
#include "fuzz_common.h"

#define SERVE_ROUNDS 256 /* polls per frame at most */
/* A step is served until nothing happened for this long: a data step waits for chunks (its
 * extractor thread is given longer at the end), a users or mail step for its commands. */
#define IDLE_DATA_MS	 1
#define IDLE_DATA_END_MS 20
#define IDLE_CMD_MS	 100
#define MAX_REQUESTS	 8 /* StepRequests passed on per input: each users step runs commands */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[64];
static bool trace; /* FUZZ_AGENT_TRACE=1: what the agent sends, on stderr (to check a seed) */

static int check_send(void *ctx, const Tuap__Envelope *env, struct tuap_err *err)
{
	/* stamped as link_send stamps it */
	Tuap__Envelope copy = *env;

	(void)ctx;
	(void)err;
	copy.version = WIRE_VERSION;
	copy.seq = wire_sequenced(env->body_case) ? 1 : 0;
	fuzz_must_encode("the agent", &copy, WIRE_FROM_AGENT);
	if (trace && env->body_case == TUAP__ENVELOPE__BODY_STEP_EVENT)
		fprintf(stderr, "fuzz_agent: step %d state %d attempt %llu: %s%s%s\n",
			env->step_event->step, env->step_event->state,
			(unsigned long long)env->step_event->attempt,
			env->step_event->message ? env->step_event->message : "",
			env->step_event->n_lines ? " | " : "",
			env->step_event->n_lines ? env->step_event->lines[0] : "");
	else if (trace)
		fprintf(stderr, "fuzz_agent: %s\n", wire_body_name(env->body_case));
	return 0;
}

/* Lets the running step work, what agent_service does in main.c's loop, until it is done or
 * was idle (above), bounded. */
static void serve(struct agent *a, bool end)
{
	int idle_ms;

	if (!a->run)
		return;
	idle_ms = step_which(a->run) != TUAP__STEP__STEP_DATA ? IDLE_CMD_MS
		  : end					      ? IDLE_DATA_END_MS
							      : IDLE_DATA_MS;
	for (int i = 0; i < SERVE_ROUNDS && a->run && !step_done(a->run); i++) {
		struct pollfd fds[8];
		size_t n = step_pollfds(a->run, fds, 8);
		int t = step_timeout_ms(a->run), ready;
		bool timer = t >= 0 && t < idle_ms;

		ready = poll(fds, n, timer ? t : idle_ms);
		agent_service(a);
		if (ready == 0 && !timer)
			break;
	}
}

static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[256];
	struct tuap_err e;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (fs_write_atomic(path, text, strlen(text), mode, &e) < 0)
		abort();
}

/* The input's directories: DIR/{state,sites,root/etc}, the latter with the system files the
 * users step reads. */
static void make_dirs(const char *dir)
{
	char path[192];
	struct tuap_err e;

	snprintf(path, sizeof(path), "%s/root/etc", dir);
	if (fs_mkdir_p(path, 0755, &e) < 0)
		abort();
	write_file(path, "passwd", "root:x:0:0:root:/root:/bin/sh\n", 0644);
	write_file(path, "group", "root:x:0:\nadm:x:4:\nsudo:x:27:\nusers:x:100:\n", 0644);
	write_file(path, "shadow", "root:*:19000:0:99999:7:::\n", 0640);
	write_file(path, "gshadow", "root:*::\nadm:*::\nsudo:*::\nusers:*::\n", 0640);
	snprintf(path, sizeof(path), "%s/state", dir);
	if (fs_mkdir_p(path, 0700, &e) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/sites", dir);
	if (fs_mkdir_p(path, 0755, &e) < 0)
		abort();
}

static bool passed_on(const Tuap__Envelope *env, int *requests)
{
	if (env->body_case != TUAP__ENVELOPE__BODY_STEP_REQUEST)
		return true;
	return env->step_request->step != TUAP__STEP__STEP_PACKAGES &&
	       env->step_request->step != TUAP__STEP__STEP_MAKE && ++*requests <= MAX_REQUESTS;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dir[128], state[160], sites[160], sysroot[160];
	struct agent a = {0};
	Tuap__Hello hello = TUAP__HELLO__INIT;
	struct tuap_err e;
	int requests = 0;

	if (!root[0]) {
		fuzz_setup("agent", root, sizeof(root));
		trace = getenv("FUZZ_AGENT_TRACE") && !strcmp(getenv("FUZZ_AGENT_TRACE"), "1");
	}
	snprintf(dir, sizeof(dir), "%s/in", root);
	make_dirs(dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(sites, sizeof(sites), "%s/sites", dir);
	snprintf(sysroot, sizeof(sysroot), "%s/root", dir);
	snprintf(a.conf.domain, sizeof(a.conf.domain), "a.test");
	if (stepjournal_open(&a.journal, state, &e) < 0)
		abort();
	a.env = (struct step_env){sysroot, state, sites, a.journal, agent_emit, &a};
	a.send = check_send;
	while (size >= 2) {
		size_t len = (size_t)data[0] << 8 | data[1];
		Tuap__Envelope *env = NULL;

		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		if (wire_decode(data, len, WIRE_TO_AGENT, &env, &e) == WIRE_OK &&
		    wire_check(env, WIRE_TO_AGENT, &e) == WIRE_OK && passed_on(env, &requests))
			agent_dispatch(&a, env);
		wire_free(env);
		data += len;
		size -= len;
		serve(&a, false);
	}
	serve(&a, true);
	if (a.run && !step_done(a.run)) {
		step_cancel(a.run, "the input ended");
		serve(&a, false); /* a child may take RUN_KILL_GRACE_MS: step_free kills it */
	}
	agent_fill_hello(&a, &hello);
	step_free(a.run);
	stepjournal_records_free(a.records, a.n_records);
	stepjournal_close(a.journal);
	fuzz_rm_tree(dir);
	return 0;
}
