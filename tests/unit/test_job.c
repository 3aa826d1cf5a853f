/*
 * The job engine against a fake agent and a fake tuap-ctl: the whole conversation of an
 * --existing provision (upload, hello, every step, data chunks, make output), the journal and
 * resume after a tuapd restart (make is never re-sent as a rerun), stale messages, invalid
 * input (nothing created), deadlines, --resume after a failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "hash.h"
#include "job.h"

#define MAX_SEEN 256

struct fake {
	Tuap__Envelope *agent[MAX_SEEN]; /* what the engine sent to the agent (unpacked copies) */
	size_t n_agent;
	Tuap__CtlEvent *ctl[MAX_SEEN];
	size_t n_ctl;
	bool agent_down;
	char state[128], pool[160], data[200];
};

static struct fake F;

static int fake_agent_send(void *ctx, const char *domain, Tuap__Envelope *env)
{
	uint8_t buf[1 << 20];
	size_t n;

	if (F.agent_down)
		return -1;
	assert_true(F.n_agent < MAX_SEEN);
	n = tuap__envelope__pack(env, buf);
	F.agent[F.n_agent++] = tuap__envelope__unpack(NULL, n, buf);
	return 0;
}

static int fake_ctl_send(void *ctx, const struct ctl_peer *peer, const Tuap__CtlEvent *ev)
{
	static uint8_t buf[1 << 20];
	size_t n;

	assert_true(F.n_ctl < MAX_SEEN);
	n = tuap__ctl_event__pack(ev, buf);
	F.ctl[F.n_ctl++] = tuap__ctl_event__unpack(NULL, n, buf);
	return 0;
}

static int fake_allow(void *ctx, const char *domain, const char *key)
{
	return 0;
}

static void forget(void)
{
	for (size_t i = 0; i < F.n_agent; i++)
		tuap__envelope__free_unpacked(F.agent[i], NULL);
	for (size_t i = 0; i < F.n_ctl; i++)
		tuap__ctl_event__free_unpacked(F.ctl[i], NULL);
	F.n_agent = F.n_ctl = 0;
}

static unsigned keep_jobs; /* engine_conf.keep_jobs of the next new_engine (0: default) */

static struct engine *new_engine(void)
{
	struct engine_conf c = {.state_dir = F.state,
				.pool_root = F.pool,
				.data_chunk = 4,
				.data_window = 2,
				.upload_chunk = 4,
				.keep_jobs = keep_jobs};
	struct engine_io io = {fake_agent_send, fake_ctl_send, fake_allow, NULL};
	struct tuap_err err;
	struct engine *e = engine_new(&c, &io, &err);

	assert_non_null(e);
	return e;
}

static const char conf[] = "ips=192.0.2.10/24\ngateway=192.0.2.1\npackages=nginx\n"
			   "contact_email=webmaster@site.test\n";
static const char users[] = "users:\n  - name: alice\n    groups: [adm]\n"
			    "    sudo: ALL=(ALL) NOPASSWD:ALL\n";
static const char data[] = "0123456789abcdefghij"; /* 20 bytes: 5 chunks of 4 */

static const struct ctl_peer peer = {{'c', 't', 'l'}, 3};

static bool force_users; /* provision's --force-users */

static void provision(struct engine *e, const char *conf_text, bool existing)
{
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__ProvisionRequest p = TUAP__PROVISION_REQUEST__INIT;
	uint8_t sha[32];
	char hex[65];

	sha256_hex(data, 20, hex);
	for (int i = 0; i < 32; i++) {
		unsigned v;

		sscanf(hex + 2 * i, "%2x", &v);
		sha[i] = (uint8_t)v;
	}
	p.domain = "site.test";
	p.conf_path = "site.test/provision.conf";
	p.conf_text.data = (uint8_t *)conf_text;
	p.conf_text.len = strlen(conf_text);
	p.has_users_text = 1;
	p.users_text.data = (uint8_t *)users;
	p.users_text.len = strlen(users);
	p.has_data_sha256 = p.has_data_size = 1;
	p.data_sha256.data = sha;
	p.data_sha256.len = 32;
	p.data_size = 20;
	p.has_existing = 1;
	p.existing = existing;
	p.has_force_users = force_users;
	p.force_users = force_users;
	r.req_case = TUAP__CTL_REQUEST__REQ_PROVISION;
	r.provision = &p;
	engine_ctl_request(e, &peer, &r);
	engine_commit(e); /* as tuapd's loop does after each pass */
}

/* provision --existing of site.test with only a provision.conf (text), not committed: the
 * caller says when the pass ends. */
static void provision_bare(struct engine *e, const char *conf_path, const char *text)
{
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__ProvisionRequest p = TUAP__PROVISION_REQUEST__INIT;

	p.domain = "site.test";
	p.conf_path = (char *)conf_path;
	p.conf_text.data = (uint8_t *)text;
	p.conf_text.len = strlen(text);
	p.has_existing = p.existing = 1;
	r.req_case = TUAP__CTL_REQUEST__REQ_PROVISION;
	r.provision = &p;
	engine_ctl_request(e, &peer, &r);
}

static const Tuap__CtlEvent *last_ctl(void)
{
	assert_true(F.n_ctl > 0);
	return F.ctl[F.n_ctl - 1];
}

static const Tuap__Envelope *last_agent(void)
{
	assert_true(F.n_agent > 0);
	return F.agent[F.n_agent - 1];
}

static void upload_all(struct engine *e)
{
	for (uint64_t off = 0; off < 20; off += 4) {
		Tuap__UploadChunk c = TUAP__UPLOAD_CHUNK__INIT;

		c.domain = "site.test";
		c.offset = off;
		c.data.data = (uint8_t *)data + off;
		c.data.len = 4;
		engine_ctl_upload(e, &peer, &c);
		engine_commit(e);
	}
}

static void hello(struct engine *e)
{
	Tuap__Envelope env = TUAP__ENVELOPE__INIT;
	Tuap__Hello h = TUAP__HELLO__INIT;

	h.agent_version = "0.1.0";
	h.hostname = "site-host";
	env.body_case = TUAP__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	engine_agent_message(e, "site.test", &env);
	engine_commit(e);
}

/* A StepEvent from the agent; attempt 0 sends none (as for a make the agent recovered). */
static void step_event_of(struct engine *e, const char *job, Tuap__Step step, Tuap__StepState st,
			  int exit_code, char **lines, size_t n, uint64_t attempt)
{
	Tuap__Envelope env = TUAP__ENVELOPE__INIT;
	Tuap__StepEvent ev = TUAP__STEP_EVENT__INIT;

	ev.step = step;
	ev.state = st;
	ev.has_attempt = attempt != 0;
	ev.attempt = attempt;
	if (exit_code >= 0) {
		ev.has_exit_code = 1;
		ev.exit_code = exit_code;
	}
	ev.lines = lines;
	ev.n_lines = n;
	env.job_id = (char *)job;
	env.body_case = TUAP__ENVELOPE__BODY_STEP_EVENT;
	env.step_event = &ev;
	engine_agent_message(e, "site.test", &env);
	engine_commit(e);
}

static void step_event(struct engine *e, const char *job, Tuap__Step step, Tuap__StepState st,
		       int exit_code, char **lines, size_t n)
{
	step_event_of(e, job, step, st, exit_code, lines, n, 0);
}

static Tuap__Step last_step_request(void)
{
	const Tuap__Envelope *env = last_agent();

	assert_int_equal(env->body_case, TUAP__ENVELOPE__BODY_STEP_REQUEST);
	return env->step_request->step;
}

static int setup(void **state)
{
	char dir[] = "/tmp/tuap-job-XXXXXX";

	assert_non_null(mkdtemp(dir));
	memset(&F, 0, sizeof(F));
	snprintf(F.state, sizeof(F.state), "%s/state", dir);
	snprintf(F.pool, sizeof(F.pool), "%s/vms", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	forget();
	snprintf(cmd, sizeof(cmd), "rm -rf '%.*s'", (int)(strlen(F.state) - 6), F.state);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* Drives a provision up to the make step; returns the job id (static storage). */
static const char *run_to_make(struct engine *e)
{
	static char job[64];
	Tuap__ChunkRequest cr = TUAP__CHUNK_REQUEST__INIT;
	Tuap__Envelope env = TUAP__ENVELOPE__INIT;
	size_t before;

	provision(e, conf, true);
	assert_int_equal(last_ctl()->ev_case, TUAP__CTL_EVENT__EV_UPLOAD);
	assert_int_equal(last_ctl()->upload->offset, 0);
	snprintf(job, sizeof(job), "%s", last_ctl()->job_id);
	upload_all(e);
	/* upload done, plan done ("existing host"), now waiting for the agent */
	assert_int_equal(F.n_agent, 0);
	hello(e);
	assert_int_equal(F.agent[0]->body_case, TUAP__ENVELOPE__BODY_PLAN);
	assert_int_equal(F.agent[0]->plan->n_steps, 5);
	assert_int_equal(last_step_request(), TUAP__STEP__STEP_USERS);
	assert_string_equal(last_agent()->step_request->users->users[0]->name, "alice");
	assert_true(last_agent()->step_request->users->users[0]->lock_passwd);
	assert_false(last_agent()->step_request->users->force); /* no --force-users */
	step_event(e, job, TUAP__STEP__STEP_USERS, TUAP__STEP_STATE__STATE_DONE, -1, NULL, 0);
	assert_int_equal(last_step_request(), TUAP__STEP__STEP_PACKAGES);
	assert_string_equal(last_agent()->step_request->packages->packages[0], "nginx");
	step_event(e, job, TUAP__STEP__STEP_PACKAGES, TUAP__STEP_STATE__STATE_DONE, 0, NULL, 0);
	assert_int_equal(last_step_request(), TUAP__STEP__STEP_MAIL);
	step_event(e, job, TUAP__STEP__STEP_MAIL, TUAP__STEP_STATE__STATE_DONE, -1, NULL, 0);
	assert_int_equal(last_step_request(), TUAP__STEP__STEP_DATA);
	assert_int_equal(last_agent()->step_request->data->size, 20);
	/* the agent pulls with a credit in bytes; the engine sends its window (2 chunks of 4) at
	 * once (the rest would follow from engine_tick) */
	cr.offset = 8;
	cr.credit = 100;
	env.job_id = job;
	env.body_case = TUAP__ENVELOPE__BODY_CHUNK_REQUEST;
	env.chunk_request = &cr;
	before = F.n_agent;
	engine_agent_message(e, "site.test", &env);
	assert_int_equal(F.n_agent - before, 2);
	assert_int_equal(F.agent[before]->data_chunk->offset, 8);
	assert_memory_equal(F.agent[before]->data_chunk->data.data, "89ab", 4);
	assert_memory_equal(F.agent[before + 1]->data_chunk->data.data, "cdef", 4);
	step_event(e, job, TUAP__STEP__STEP_DATA, TUAP__STEP_STATE__STATE_DONE, -1, NULL, 0);
	assert_int_equal(last_step_request(), TUAP__STEP__STEP_MAKE);
	assert_false(last_agent()->step_request->make->rerun);
	return job;
}

static void chunk_request(struct engine *e, const char *job, uint64_t offset, uint32_t credit)
{
	Tuap__ChunkRequest cr = TUAP__CHUNK_REQUEST__INIT;
	Tuap__Envelope env = TUAP__ENVELOPE__INIT;

	cr.offset = offset;
	cr.credit = credit;
	env.job_id = (char *)job;
	env.body_case = TUAP__ENVELOPE__BODY_CHUNK_REQUEST;
	env.chunk_request = &cr;
	engine_agent_message(e, "site.test", &env);
}

/* Checks that the engine sent DataChunks at the given offsets since `from`, and nothing else. */
static void assert_chunks(size_t from, const uint64_t *offsets, size_t n)
{
	assert_int_equal(F.n_agent - from, n);
	for (size_t i = 0; i < n; i++) {
		const Tuap__Envelope *env = F.agent[from + i];

		assert_int_equal(env->body_case, TUAP__ENVELOPE__BODY_DATA_CHUNK);
		assert_int_equal(env->data_chunk->offset, offsets[i]);
		assert_memory_equal(env->data_chunk->data.data, data + offsets[i], 4);
	}
}

/* ChunkRequest.credit is in bytes (proto/tuap.proto). Regression: the engine took it for a
 * number of chunks, capped it at data_window and forgot the rest, so an agent granting more
 * than data_window chunks (every data.tar.gz over 2 MiB, with the defaults) waited forever.
 * The engine now sends data_window chunks at a time and the rest from engine_tick, also after
 * the hub could not take a chunk (backing off), and starts over where a request that does not
 * continue the previous one says. */
static void test_data_credit_in_bytes(void **state)
{
	struct engine *e = new_engine();
	char job[64];
	size_t before;
	int64_t now;
	long next;

	provision(e, conf, true);
	snprintf(job, sizeof(job), "%s", last_ctl()->job_id);
	upload_all(e);
	hello(e);
	step_event(e, job, TUAP__STEP__STEP_USERS, TUAP__STEP_STATE__STATE_DONE, -1, NULL, 0);
	step_event(e, job, TUAP__STEP__STEP_PACKAGES, TUAP__STEP_STATE__STATE_DONE, 0, NULL, 0);
	step_event(e, job, TUAP__STEP__STEP_MAIL, TUAP__STEP_STATE__STATE_DONE, -1, NULL, 0);
	assert_int_equal(last_step_request(), TUAP__STEP__STEP_DATA);
	/* 20 bytes granted: 2 chunks at once (the window), the other 3 from ticks */
	before = F.n_agent;
	chunk_request(e, job, 0, 20);
	assert_chunks(before, (const uint64_t[]){0, 4}, 2);
	before = F.n_agent;
	assert_true(engine_tick(e, engine_now_ms()) <= 100); /* more to send: soon */
	assert_chunks(before, (const uint64_t[]){8, 12}, 2);
	before = F.n_agent;
	engine_tick(e, engine_now_ms());
	assert_chunks(before, (const uint64_t[]){16}, 1);
	before = F.n_agent;
	assert_true(engine_tick(e, engine_now_ms()) > 1000); /* all sent: only the deadline */
	assert_int_equal(F.n_agent, before);
	/* the agent restarted and asks from 4 again while the hub cannot take anything: the
	 * engine tries again after 100 ms, then backs off (200 ms, ...), and sends once it can */
	F.agent_down = true;
	now = engine_now_ms();
	chunk_request(e, job, 4, 8);
	next = engine_tick(e, now);
	assert_true(next > 0 && next <= 100);
	assert_int_equal(F.n_agent, before);
	next = engine_tick(e, now + 150);
	assert_true(next > 100 && next <= 250);
	assert_int_equal(F.n_agent, before);
	F.agent_down = false;
	engine_tick(e, now + 200);
	assert_int_equal(F.n_agent, before);
	engine_tick(e, now + 5000);
	assert_chunks(before, (const uint64_t[]){4, 8}, 2);
	/* a request that continues the previous one extends it */
	before = F.n_agent;
	chunk_request(e, job, 12, 100);
	assert_chunks(before, (const uint64_t[]){12, 16}, 2);
	engine_free(e);
}

static void test_existing_provision(void **state)
{
	struct engine *e = new_engine();
	char *lines[] = {"install -d /var/www/site.test", "done"};
	char path[400], hex[65], *log;
	const char *job = run_to_make(e);

	step_event(e, job, TUAP__STEP__STEP_MAKE, TUAP__STEP_STATE__STATE_LOG, -1, lines, 2);
	step_event(e, job, TUAP__STEP__STEP_MAKE, TUAP__STEP_STATE__STATE_DONE, 0, NULL, 0);
	assert_true(last_ctl()->final);
	assert_int_equal(last_ctl()->exit_code, 0);
	/* the data reached the pool, content-addressed, and make's output the setup log */
	sha256_hex(data, 20, hex);
	snprintf(path, sizeof(path), "%s/site.test/data-%s.tar.gz", F.pool, hex);
	log = fs_read_file(path, 1 << 20, NULL, NULL);
	assert_non_null(log);
	assert_string_equal(log, data);
	free(log);
	snprintf(path, sizeof(path), "%s/domains/site.test/jobs/%s/setup.log", F.state, job);
	log = fs_read_file(path, 1 << 20, NULL, NULL);
	assert_non_null(log);
	assert_string_equal(log, "make| install -d /var/www/site.test\nmake| done\n");
	free(log);
	engine_free(e);
}

/* 14.4: --force-users reaches the users step, also after a tuapd restart (the journal keeps
 * it); without it the step is asked not to force. */
static void test_force_users(void **state)
{
	struct engine *e = new_engine();
	struct tuap_err err;

	force_users = true;
	provision(e, conf, true);
	force_users = false;
	upload_all(e);
	hello(e);
	assert_int_equal(last_step_request(), TUAP__STEP__STEP_USERS);
	assert_true(last_agent()->step_request->users->has_force);
	assert_true(last_agent()->step_request->users->force);
	engine_free(e);
	forget();
	e = new_engine();
	assert_int_equal(engine_resume_all(e, &err), 0);
	hello(e);
	assert_int_equal(last_step_request(), TUAP__STEP__STEP_USERS);
	assert_true(last_agent()->step_request->users->force);
	engine_free(e);
}

static size_t job_dirs(void)
{
	char path[300];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/domains/site.test/jobs", F.state);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* 11.7: setup logs are rotated: with keep_jobs 2, a domain's third job leaves two job
 * directories (inputs, setup.log), the newest; the last job's stays. */
static void test_setup_logs_rotated(void **state)
{
	struct engine *e;
	const char *job;

	keep_jobs = 2;
	e = new_engine();
	keep_jobs = 0;
	for (int i = 0; i < 3; i++) {
		static char id[64];

		/* a job that ends at its hello deadline (no agent comes) */
		provision(e, conf, true);
		snprintf(id, sizeof(id), "%s", last_ctl()->job_id);
		job = id;
		if (last_ctl()->ev_case == TUAP__CTL_EVENT__EV_UPLOAD)
			upload_all(e);
		engine_tick(e, engine_now_ms() + 24 * 3600 * 1000LL);
		assert_true(last_ctl()->final);
		assert_int_equal(last_ctl()->exit_code, 1);
		assert_int_equal(job_dirs(), i < 2 ? (size_t)i + 1 : 2);
	}
	{
		char path[400];

		/* the last job's inputs stay (setup.log too, when it has one) */
		snprintf(path, sizeof(path), "%s/domains/site.test/jobs/%s/provision.conf", F.state,
			 job);
		assert_true(fs_exists(path));
	}
	engine_free(e);
}

/* An agent's output cannot fill tuapd's state_dir (17.7): setup.log stops at 8 MiB with a
 * line saying so, and make's end is still recorded. */
static void test_setup_log_bounded(void **state)
{
	struct engine *e = new_engine();
	static char line[4001];
	char *lines[256], path[400];
	const char *job = run_to_make(e);
	struct stat st;

	memset(line, 'x', sizeof(line) - 1);
	for (size_t i = 0; i < 256; i++)
		lines[i] = line;
	for (int k = 0; k < 12; k++) /* 12 MiB of output */
		step_event(e, job, TUAP__STEP__STEP_MAKE, TUAP__STEP_STATE__STATE_LOG, -1, lines,
			   256);
	step_event(e, job, TUAP__STEP__STEP_MAKE, TUAP__STEP_STATE__STATE_DONE, 0, NULL, 0);
	assert_int_equal(last_ctl()->exit_code, 0);
	snprintf(path, sizeof(path), "%s/domains/site.test/jobs/%s/setup.log", F.state, job);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size <= (8 << 20) + 200);
	assert_true(st.st_size > (8 << 20) - 8192);
	char *log = fs_read_file(path, 16 << 20, NULL, NULL);
	assert_non_null(strstr(log, "tuapd| setup.log reached 8 MiB: the rest of this job's "
				    "output is not kept\n"));
	free(log);
	engine_free(e);
}

static void test_restart_during_make(void **state)
{
	struct engine *e = new_engine();
	char job[64];
	struct tuap_err err;

	snprintf(job, sizeof(job), "%s", run_to_make(e));
	/* tuapd dies (nothing more is written), a new one replays the journal */
	engine_free(e);
	forget();
	e = new_engine();
	assert_int_equal(engine_resume_all(e, &err), 0);
	/* it resumes at make and waits for the agent; the agent's hello gets the make request
	 * again, without rerun: the agent's own journal decides whether it is still running */
	hello(e);
	assert_int_equal(last_step_request(), TUAP__STEP__STEP_MAKE);
	assert_false(last_agent()->step_request->make->rerun);
	for (size_t i = 0; i < F.n_agent; i++)
		if (F.agent[i]->body_case == TUAP__ENVELOPE__BODY_STEP_REQUEST)
			assert_int_equal(F.agent[i]->step_request->step, TUAP__STEP__STEP_MAKE);
	/* an operator attaches with `tuap-ctl watch` (no tuap-ctl survived the restart) */
	{
		Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
		Tuap__DomainRequest d = TUAP__DOMAIN_REQUEST__INIT;

		d.domain = "site.test";
		r.req_case = TUAP__CTL_REQUEST__REQ_WATCH;
		r.watch = &d;
		engine_ctl_request(e, &peer, &r);
		assert_int_equal(last_ctl()->ev_case, TUAP__CTL_EVENT__EV_PHASE);
		assert_string_equal(last_ctl()->phase->phase, "make");
	}
	/* the agent says make was interrupted: the job fails and says how to go on */
	step_event(e, job, TUAP__STEP__STEP_MAKE, TUAP__STEP_STATE__STATE_INTERRUPTED, -1, NULL, 0);
	assert_true(last_ctl()->final);
	assert_int_equal(last_ctl()->exit_code, 1);
	assert_non_null(strstr(last_ctl()->text->lines[0], "--resume --rerun-make"));
	engine_free(e);
}

static void write_file(const char *path, const char *text)
{
	struct tuap_err err;

	assert_int_equal(fs_write_atomic(path, text, strlen(text), 0640, &err), 0);
}

/* The newest job of a domain is the one created last, whatever its id. Regression: the engine
 * took the greatest id, so of two jobs started in the same second the one with the smaller
 * random suffix was "older": status and log showed the wrong job, and finishing the newer one
 * pruned it while it was in use (a use-after-free ASan caught in tuapd). Here the journal holds
 * a finished job B-ffffff, then a job A-000000 running make (smaller id, created later). */
static void test_newest_job_is_the_last_created(void **state)
{
	const char *older = "20260101T000000-ffffff", *newer = "20260101T000000-000000";
	char path[400], text[1024];
	struct engine *e = new_engine();
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__DomainRequest d = TUAP__DOMAIN_REQUEST__INIT;
	struct tuap_err err;
	const char *ids[] = {older, newer};

	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/domains/site.test/jobs/%s", F.state, ids[i]);
		assert_int_equal(fs_mkdir_p(path, 0750, &err), 0);
		snprintf(path, sizeof(path), "%s/domains/site.test/jobs/%s/provision.conf", F.state,
			 ids[i]);
		write_file(path, conf);
	}
	snprintf(text, sizeof(text),
		 "job\t%s\t-\tcreated\tkind=1 existing=1 rerun_make=1 rebuild=0 data=-:0 "
		 "target=\t1\n"
		 "job\t%s\t-\tdone\t\t2\n"
		 "job\t%s\t-\tcreated\tkind=1 existing=1 rerun_make=1 rebuild=0 data=-:0 "
		 "target=\t3\n"
		 "phase\t%s\tmake\tstarted\t\t4\n",
		 older, older, newer, newer);
	snprintf(path, sizeof(path), "%s/domains/site.test/journal", F.state);
	write_file(path, text);
	assert_int_equal(engine_resume_all(e, &err), 0);
	hello(e);
	assert_int_equal(last_step_request(), TUAP__STEP__STEP_MAKE);
	assert_string_equal(last_agent()->job_id, newer);
	step_event(e, newer, TUAP__STEP__STEP_MAKE, TUAP__STEP_STATE__STATE_DONE, 0, NULL, 0);
	/* a name that is a path is refused before it reaches the keys directory (17.7), for
	 * every request that names a domain */
	r.req_case = TUAP__CTL_REQUEST__REQ_STATUS;
	r.status = &d;
	d.domain = "../../x";
	engine_ctl_request(e, &peer, &r);
	assert_int_equal(last_ctl()->ev_case, TUAP__CTL_EVENT__EV_ERROR);
	assert_int_equal(last_ctl()->error->code, TUAP__ERROR__CODE__INVALID);
	assert_non_null(strstr(last_ctl()->error->message, "'../../x' is not a domain name"));
	r.req_case = TUAP__CTL_REQUEST__REQ_LOG;
	r.log = &d;
	d.domain = "Site.test";
	engine_ctl_request(e, &peer, &r);
	assert_int_equal(last_ctl()->error->code, TUAP__ERROR__CODE__INVALID);
	d.domain = "site.test";
	r.req_case = TUAP__CTL_REQUEST__REQ_STATUS;
	r.status = &d;
	engine_ctl_request(e, &peer, &r);
	assert_int_equal(last_ctl()->ev_case, TUAP__CTL_EVENT__EV_STATUS);
	assert_int_equal(last_ctl()->status->n_domains, 1);
	assert_string_equal(last_ctl()->status->domains[0]->job_id, newer);
	assert_string_equal(last_ctl()->status->domains[0]->job_state, "done");
	engine_free(e);
}

static void test_stale_and_foreign_messages(void **state)
{
	struct engine *e = new_engine();
	const char *job = run_to_make(e);
	size_t before = F.n_agent, ctl_before;

	/* an event for another job id, and one for a step that is not current */
	step_event(e, "19700101T000000-000000", TUAP__STEP__STEP_MAKE, TUAP__STEP_STATE__STATE_DONE,
		   0, NULL, 0);
	ctl_before = F.n_ctl;
	step_event(e, job, TUAP__STEP__STEP_USERS, TUAP__STEP_STATE__STATE_FAILED, 1, NULL, 0);
	assert_int_equal(F.n_agent, before);
	assert_int_equal(F.n_ctl, ctl_before);
	assert_false(last_ctl()->final);
	engine_free(e);
}

/* Regression (stress slow disk, CI): the data step passed its deadline while the guest's disk
 * was stopped; the agent, blocked on the disk, sent its own "deadline passed" only once the disk
 * was back, after --resume had started the step again, and that late event failed the resumed
 * job at once. Each start of a step now has a larger attempt, and an event of another attempt
 * is dropped. */
static void test_late_event_of_earlier_attempt(void **state)
{
	struct engine *e = new_engine();
	char job[64];
	uint64_t first, second;

	snprintf(job, sizeof(job), "%s", run_to_make(e));
	assert_true(last_agent()->step_request->has_attempt);
	first = last_agent()->step_request->attempt;
	assert_true(first > 0);
	/* make passes its deadline: the job fails */
	engine_tick(e, engine_now_ms() + 30LL * 24 * 3600 * 1000);
	assert_true(last_ctl()->final);
	assert_int_equal(last_ctl()->exit_code, 1);
	/* --resume starts make again, under a larger attempt, as soon as the agent is there */
	{
		Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
		Tuap__ProvisionRequest p = TUAP__PROVISION_REQUEST__INIT;

		p.domain = "site.test";
		p.conf_path = "x";
		p.has_resume = 1;
		p.resume = 1;
		r.req_case = TUAP__CTL_REQUEST__REQ_PROVISION;
		r.provision = &p;
		forget();
		engine_ctl_request(e, &peer, &r);
		engine_commit(e);
	}
	if (F.n_agent == 0)
		hello(e);
	assert_int_equal(last_step_request(), TUAP__STEP__STEP_MAKE);
	second = last_agent()->step_request->attempt;
	assert_true(second > first);
	/* the first start's end arrives late: dropped; the job goes on */
	step_event_of(e, job, TUAP__STEP__STEP_MAKE, TUAP__STEP_STATE__STATE_FAILED, -1, NULL, 0,
		      first);
	assert_false(last_ctl()->final);
	/* a resend of the same start (a reconnect) keeps the attempt */
	hello(e);
	assert_int_equal(last_step_request(), TUAP__STEP__STEP_MAKE);
	assert_true(last_agent()->step_request->attempt == second);
	/* the second start's end is the job's */
	step_event_of(e, job, TUAP__STEP__STEP_MAKE, TUAP__STEP_STATE__STATE_DONE, 0, NULL, 0,
		      second);
	assert_true(last_ctl()->final);
	assert_int_equal(last_ctl()->exit_code, 0);
	engine_free(e);
}

static void test_invalid_creates_nothing(void **state)
{
	struct engine *e = new_engine();
	char path[300];

	provision(e, "ips=192.0.2.300\ngateway=192.0.2.1\nbogus=1\n", true);
	assert_int_equal(F.n_ctl, 2);
	assert_int_equal(F.ctl[0]->ev_case, TUAP__CTL_EVENT__EV_TEXT);
	assert_true(F.ctl[0]->text->n_lines >= 2);
	assert_non_null(strstr(F.ctl[0]->text->lines[0], "site.test/provision.conf:1: ips:"));
	assert_int_equal(F.ctl[1]->ev_case, TUAP__CTL_EVENT__EV_ERROR);
	assert_true(F.ctl[1]->final);
	snprintf(path, sizeof(path), "%s/domains/site.test", F.state);
	assert_false(fs_exists(path));
	assert_false(fs_exists(F.pool));
	/* an empty data.tar.gz (tuap-ctl refuses one; another client might not) is refused at
	 * once. Regression: the job waited in its upload phase for a byte that never came. */
	forget();
	{
		Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
		Tuap__ProvisionRequest p = TUAP__PROVISION_REQUEST__INIT;
		uint8_t sha[32] = {0};

		p.domain = "site.test";
		p.conf_path = "site.test/provision.conf";
		p.conf_text.data = (uint8_t *)conf;
		p.conf_text.len = strlen(conf);
		p.has_data_sha256 = p.has_data_size = 1;
		p.data_sha256.data = sha;
		p.data_sha256.len = 32;
		p.data_size = 0;
		r.req_case = TUAP__CTL_REQUEST__REQ_UPDATE_DATA;
		r.update_data = &p;
		engine_ctl_request(e, &peer, &r);
		assert_int_equal(F.n_ctl, 1);
		assert_int_equal(F.ctl[0]->ev_case, TUAP__CTL_EVENT__EV_ERROR);
		assert_true(F.ctl[0]->final);
		assert_non_null(strstr(F.ctl[0]->error->message, "data.tar.gz is empty"));
		assert_false(fs_exists(path));
	}
	engine_free(e);
}

static void test_hello_deadline_and_resume(void **state)
{
	struct engine *e = new_engine();
	long next;

	provision(e, conf, true);
	upload_all(e);
	next = engine_tick(e, engine_now_ms());
	assert_true(next > 0 && next <= 600 * 1000);
	engine_tick(e, engine_now_ms() + 601 * 1000);
	assert_true(last_ctl()->final);
	assert_int_equal(last_ctl()->exit_code, 1);
	assert_non_null(strstr(last_ctl()->text->lines[0], "hello: no hello from the agent"));
	/* --resume continues at hello (the upload is not repeated) */
	{
		Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
		Tuap__ProvisionRequest p = TUAP__PROVISION_REQUEST__INIT;

		p.domain = "site.test";
		p.conf_path = "x";
		p.has_resume = 1;
		p.resume = 1;
		r.req_case = TUAP__CTL_REQUEST__REQ_PROVISION;
		r.provision = &p;
		forget();
		engine_ctl_request(e, &peer, &r);
		assert_int_equal(F.ctl[0]->ev_case, TUAP__CTL_EVENT__EV_PHASE);
		assert_string_equal(F.ctl[0]->phase->phase, "hello");
		hello(e);
		assert_int_equal(last_step_request(), TUAP__STEP__STEP_USERS);
	}
	engine_free(e);
}

static void fake_vm_domains(void *ctx, struct strlist *names)
{
	strlist_add(names, "vm-only.test"); /* a VM of ours whose journal was purged */
	strlist_add(names, "site.test");    /* also has a job: listed once */
}

static const char *fake_vm_state(void *ctx, const char *domain)
{
	if (!strcmp(domain, "site.test"))
		return "running";
	return strcmp(domain, "vm-only.test") ? NULL : "shut off"; /* NULL: no VM of ours */
}

static void enroll(struct engine *e, const char *domain)
{
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__EnrollRequest en = TUAP__ENROLL_REQUEST__INIT;

	en.domain = (char *)domain;
	en.endpoint = "tcp://192.0.2.1:7600";
	r.req_case = TUAP__CTL_REQUEST__REQ_ENROLL;
	r.enroll = &en;
	engine_ctl_request(e, &peer, &r);
}

/* list shows every domain tuapd knows, not only those with a job: enrolled ones and the
 * hypervisor's VMs of ours; "server" (tuapd's own key files) is no domain. */
static void test_list_all_known(void **state)
{
	struct engine *e;
	struct phase_provider p = {.vm_state = fake_vm_state, .domains = fake_vm_domains};
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__ListRequest lr = TUAP__LIST_REQUEST__INIT;
	const Tuap__ListReply *l;

	{
		struct engine_conf c = {.state_dir = F.state,
					.pool_root = F.pool,
					.agent_endpoint = "tcp://192.0.2.1:7600",
					.server_public_key =
						"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"};
		struct engine_io io = {fake_agent_send, fake_ctl_send, fake_allow, NULL};
		struct tuap_err err;

		assert_non_null(e = engine_new(&c, &io, &err));
	}
	engine_set_provider(e, &p);
	provision(e, conf, true);
	enroll(e, "enrolled.test");
	if (last_ctl()->ev_case == TUAP__CTL_EVENT__EV_ERROR)
		fail_msg("enroll: %s", last_ctl()->error->message);
	enroll(e, "server");
	assert_int_equal(last_ctl()->ev_case, TUAP__CTL_EVENT__EV_ERROR);
	assert_non_null(strstr(last_ctl()->error->message, "tuapd's own keys"));
	r.req_case = TUAP__CTL_REQUEST__REQ_LIST;
	r.list = &lr;
	engine_ctl_request(e, &peer, &r);
	assert_int_equal(last_ctl()->ev_case, TUAP__CTL_EVENT__EV_LIST);
	l = last_ctl()->list;
	assert_int_equal(l->n_domains, 3);
	assert_string_equal(l->domains[0]->domain, "enrolled.test");
	assert_null(l->domains[0]->job_id);
	assert_string_equal(l->domains[1]->domain, "site.test");
	assert_string_equal(l->domains[1]->vm_state, "running");
	assert_string_equal(l->domains[1]->job_state, "running");
	assert_string_equal(l->domains[2]->domain, "vm-only.test");
	assert_string_equal(l->domains[2]->vm_state, "shut off");
	assert_null(l->domains[2]->job_id);
	/* status of one domain: known by its key, by its VM, or not at all */
	{
		Tuap__DomainRequest d = TUAP__DOMAIN_REQUEST__INIT;
		const char *known[] = {"enrolled.test", "vm-only.test"};

		r.req_case = TUAP__CTL_REQUEST__REQ_STATUS;
		r.status = &d;
		for (size_t i = 0; i < 2; i++) {
			d.domain = (char *)known[i];
			engine_ctl_request(e, &peer, &r);
			assert_int_equal(last_ctl()->ev_case, TUAP__CTL_EVENT__EV_STATUS);
			assert_int_equal(last_ctl()->status->n_domains, 1);
			assert_string_equal(last_ctl()->status->domains[0]->domain, known[i]);
		}
		d.domain = "nobody.test";
		engine_ctl_request(e, &peer, &r);
		assert_int_equal(last_ctl()->ev_case, TUAP__CTL_EVENT__EV_ERROR);
		assert_int_equal(last_ctl()->error->code, TUAP__ERROR__CODE__NOT_FOUND);
	}
	engine_free(e);
}

static void test_busy_and_status(void **state)
{
	struct engine *e = new_engine();
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__DomainRequest d = TUAP__DOMAIN_REQUEST__INIT;
	char job[64];

	provision(e, conf, true);
	upload_all(e);
	forget();
	provision(e, conf, true);
	assert_int_equal(last_ctl()->ev_case, TUAP__CTL_EVENT__EV_ERROR);
	assert_int_equal(last_ctl()->error->code, TUAP__ERROR__CODE__BUSY);
	d.domain = "site.test";
	r.req_case = TUAP__CTL_REQUEST__REQ_STATUS;
	r.status = &d;
	engine_ctl_request(e, &peer, &r);
	assert_int_equal(last_ctl()->ev_case, TUAP__CTL_EVENT__EV_STATUS);
	assert_string_equal(last_ctl()->status->domains[0]->job_state, "running");
	assert_string_equal(last_ctl()->status->domains[0]->phase, "hello");
	assert_int_equal(last_ctl()->status->domains[0]->n_steps, 0); /* none reached yet */

	/* the steps reached, and how: users and packages done, mail running */
	snprintf(job, sizeof(job), "%s", last_ctl()->status->domains[0]->job_id);
	hello(e);
	step_event(e, job, TUAP__STEP__STEP_USERS, TUAP__STEP_STATE__STATE_DONE, -1, NULL, 0);
	step_event(e, job, TUAP__STEP__STEP_PACKAGES, TUAP__STEP_STATE__STATE_DONE, 0, NULL, 0);
	engine_ctl_request(e, &peer, &r);
	{
		const Tuap__DomainStatus *s = last_ctl()->status->domains[0];

		assert_string_equal(s->phase, "mail");
		assert_int_equal(s->n_steps, 3);
		assert_int_equal(s->steps[0]->step, TUAP__STEP__STEP_USERS);
		assert_int_equal(s->steps[0]->state, TUAP__STEP_STATE__STATE_DONE);
		assert_int_equal(s->steps[1]->step, TUAP__STEP__STEP_PACKAGES);
		assert_int_equal(s->steps[1]->state, TUAP__STEP_STATE__STATE_DONE);
		assert_int_equal(s->steps[2]->step, TUAP__STEP__STEP_MAIL);
		assert_int_equal(s->steps[2]->state, TUAP__STEP_STATE__STATE_STARTED);
	}
	engine_free(e);
}

/* Jobs of one domain started within one second: the later one is the domain's last job, and
 * finishing it frees nothing still in use (regression: the last job was picked by comparing
 * ids, whose random suffix orders jobs of one second at random, so a finishing job could be
 * pruned as old while its domain name was still being read). */
static char *journal_text(void)
{
	char path[300];
	struct tuap_err err;

	snprintf(path, sizeof(path), "%s/domains/site.test/journal", F.state);
	return fs_exists(path) ? fs_read_file(path, 1 << 20, NULL, &err) : strdup("");
}

/* Group commit: a job's records reach its journal only at engine_commit, after its inputs;
 * a tuap-ctl that is gone (its events could not be delivered) is dropped, and the upload it
 * was sending fails, so that a later --resume continues it. */
static void test_group_commit(void **state)
{
	struct engine *e = new_engine();
	char path[300], *text, job[64];
	struct tuap_err err;

	provision_bare(e, "provision.conf", conf);
	assert_true(engine_commit_pending(e));
	text = journal_text();
	assert_string_equal(text, ""); /* nothing yet */
	free(text);
	snprintf(job, sizeof(job), "%s", last_ctl()->job_id);
	snprintf(path, sizeof(path), "%s/domains/site.test/jobs/%s/provision.conf", F.state, job);
	text = fs_read_file(path, 1 << 20, NULL, &err);
	assert_non_null(text); /* the input is in place, whole */
	assert_string_equal(text, conf);
	free(text);
	engine_commit(e);
	assert_false(engine_commit_pending(e));
	text = journal_text();
	assert_non_null(strstr(text, "job\t")); /* created, then the phases it went through */
	assert_non_null(strstr(text, "\tcreated\t"));
	assert_non_null(strstr(text, "\thello\tstarted\t"));
	free(text);

	/* a second provision with data: waiting for its upload, whose tuap-ctl goes away */
	engine_free(e);
	forget();
	e = new_engine();
	hello(e);
	provision(e, conf, true);
	assert_int_equal(last_ctl()->ev_case, TUAP__CTL_EVENT__EV_UPLOAD);
	engine_ctl_gone(e, &peer);
	engine_commit(e);
	text = journal_text();
	assert_non_null(strstr(text, "\tupload\tfailed\ttuap-ctl went away during the upload"));
	free(text);
	engine_free(e);
}

/* `tuap-ctl run`: a new job whose provision.conf is the last job's, hard-linked (no inode to
 * make, nothing to write or sync), and whose make request follows its records' commit. */
static void test_run_links_inputs(void **state)
{
	struct engine *e = new_engine();
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__RunRequest rr = TUAP__RUN_REQUEST__INIT;
	char first[64], path[400];
	struct stat a, b;
	char *text;

	snprintf(first, sizeof(first), "%s", run_to_make(e));
	step_event(e, first, TUAP__STEP__STEP_MAKE, TUAP__STEP_STATE__STATE_DONE, 0, NULL, 0);
	assert_int_equal(last_ctl()->exit_code, 0);
	forget();
	rr.domain = "site.test";
	r.req_case = TUAP__CTL_REQUEST__REQ_RUN;
	r.run = &rr;
	engine_ctl_request(e, &peer, &r);
	engine_commit(e);
	assert_int_equal(last_step_request(), TUAP__STEP__STEP_MAKE);
	assert_string_not_equal(last_agent()->job_id, first);
	snprintf(path, sizeof(path), "%s/domains/site.test/jobs/%s/provision.conf", F.state, first);
	assert_int_equal(stat(path, &a), 0);
	snprintf(path, sizeof(path), "%s/domains/site.test/jobs/%s/provision.conf", F.state,
		 last_agent()->job_id);
	assert_int_equal(stat(path, &b), 0);
	assert_true(a.st_ino == b.st_ino && a.st_nlink == 2);
	text = journal_text();
	snprintf(path, sizeof(path), "job\t%s\t-\tcreated\t", last_agent()->job_id);
	assert_non_null(strstr(text, path));
	free(text);
	engine_free(e);
}

static void test_jobs_in_one_second(void **state)
{
	struct engine *e = new_engine();
	const char text[] = "ips=192.0.2.10/24\ngateway=192.0.2.1\n";

	for (int i = 0; i < 16; i++) {
		char id[64];

		provision_bare(e, "site.test/provision.conf", text);
		snprintf(id, sizeof(id), "%s", last_ctl()->job_id);
		hello(e); /* no steps: the job is done at once */
		assert_int_equal(job_get_state(engine_domain_job(e, "site.test")), JOB_DONE);
		assert_string_equal(job_id(engine_domain_job(e, "site.test")), id);
		forget();
	}
	engine_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_existing_provision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setup_log_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_credit_in_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_during_make, setup, teardown),
		cmocka_unit_test_setup_teardown(test_force_users, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setup_logs_rotated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newest_job_is_the_last_created, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stale_and_foreign_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_event_of_earlier_attempt, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_invalid_creates_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hello_deadline_and_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_and_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_all_known, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jobs_in_one_second, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_links_inputs, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
