/* tuapd's job engine: phases, deadlines and the step conversation with the agent; see job.h. */
#include "job.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "domain.h"
#include "fsutil.h"
#include "hash.h"
#include "job_impl.h"
#include "jobsteps.h"
#include "journal.h"
#include "log.h"
#include "users.h"

static const char *const phase_names[PH_COUNT] = {
	[PH_UPLOAD] = "upload", [PH_PLAN] = "plan",	    [PH_IMAGE] = "image",
	[PH_DISK] = "disk",	[PH_KEYS] = "keys",	    [PH_SEED] = "seed",
	[PH_DEFINE] = "define", [PH_PUSH] = "push",	    [PH_HELLO] = "hello",
	[PH_USERS] = "users",	[PH_PACKAGES] = "packages", [PH_MAIL] = "mail",
	[PH_DATA] = "data",	[PH_MAKE] = "make",	    [PH_DONE] = "done",
};

/* How soon engine_tick sends more data owed to an agent: at once after a full window, else
 * (the hub's queue to it is full, or it is gone) after PUMP_RETRY_MS, doubled on each failure up
 * to PUMP_RETRY_MAX_MS. */
#define PUMP_RETRY_MS	  100
#define PUMP_RETRY_MAX_MS 3200

/* Built-in deadlines (seconds), overridden by tuapd.conf. */
static const unsigned default_deadline[PH_COUNT] = {
	[PH_UPLOAD] = 3600, [PH_PLAN] = 60,   [PH_IMAGE] = 1800,    [PH_DISK] = 120,
	[PH_KEYS] = 30,	    [PH_SEED] = 60,   [PH_DEFINE] = 120,    [PH_PUSH] = 600,
	[PH_HELLO] = 600,   [PH_USERS] = 300, [PH_PACKAGES] = 1800, [PH_MAIL] = 60,
	[PH_DATA] = 3600,   [PH_MAKE] = 3600, [PH_DONE] = 10,
};

const char *job_phase_name(enum job_phase ph)
{
	return (unsigned)ph < PH_COUNT ? phase_names[ph] : "unknown";
}

int64_t engine_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *job_domain(const struct job *job)
{
	return job->domain;
}

const char *job_id(const struct job *job)
{
	return job->id;
}

const struct domain_conf *job_conf(const struct job *job)
{
	return &job->dom.conf;
}

/* ---- events to tuap-ctl ---- */

void job_event_init(const struct job *job, Tuap__CtlEvent *ev)
{
	tuap__ctl_event__init(ev);
	ev->domain = (char *)job->domain;
	ev->job_id = (char *)job->id;
	ev->has_unix_ms = 1;
	ev->unix_ms = (uint64_t)engine_now_ms();
	ev->has_elapsed_ms = 1;
	ev->elapsed_ms = (uint64_t)(ev->unix_ms - (uint64_t)job->started_ms);
}

void job_broadcast(struct engine *e, struct job *job, const Tuap__CtlEvent *ev)
{
	for (size_t i = 0; i < job->n_subs;) {
		if (e->io.ctl_send(e->io.ctx, &job->subs[i], ev) < 0) {
			/* the client went away (Ctrl-C): the job goes on without it */
			job->subs[i] = job->subs[--job->n_subs];
			continue;
		}
		i++;
	}
}

static bool same_peer(const struct ctl_peer *a, const struct ctl_peer *b)
{
	return a->len == b->len && !memcmp(a->id, b->id, a->len);
}

void engine_ctl_gone(struct engine *e, const struct ctl_peer *peer)
{
again:
	for (struct job *job = e->jobs; job; job = job->next) {
		for (size_t i = 0; i < job->n_subs;)
			if (same_peer(&job->subs[i], peer))
				job->subs[i] = job->subs[--job->n_subs];
			else
				i++;
		if (job->state == JOB_RUNNING && job->phase == PH_UPLOAD && job->uploading &&
		    same_peer(&job->uploader, peer)) {
			job_upload_gone(e, job); /* it may prune older jobs: walk the list again */
			goto again;
		}
	}
}

void job_subscribe(struct job *job, const struct ctl_peer *peer)
{
	for (size_t i = 0; i < job->n_subs; i++)
		if (same_peer(&job->subs[i], peer))
			return;
	if (job->n_subs < MAX_SUBSCRIBERS)
		job->subs[job->n_subs++] = *peer;
}

void job_emit_phase(struct engine *e, struct job *job, Tuap__PhaseEvent__State st, const char *msg,
		    uint64_t done, uint64_t total, const char *const *lines, size_t n_lines)
{
	Tuap__CtlEvent ev;
	Tuap__PhaseEvent ph = TUAP__PHASE_EVENT__INIT;

	job_event_init(job, &ev);
	ph.phase = (char *)job_phase_name(job->phase);
	ph.state = st;
	ph.message = (char *)msg;
	if (total) {
		ph.has_done = ph.has_total = 1;
		ph.done = done;
		ph.total = total;
	}
	if (st == TUAP__PHASE_EVENT__STATE__DONE || st == TUAP__PHASE_EVENT__STATE__FAILED ||
	    st == TUAP__PHASE_EVENT__STATE__STALLED) {
		ph.has_phase_ms = 1;
		ph.phase_ms = (uint64_t)(engine_now_ms() - job->phase_started_ms);
	}
	ph.lines = (char **)lines;
	ph.n_lines = n_lines;
	ev.ev_case = TUAP__CTL_EVENT__EV_PHASE;
	ev.phase = &ph;
	job_broadcast(e, job, &ev);
}

void job_send_final(struct engine *e, const struct ctl_peer *peer, struct job *job, int code,
		    const char *msg)
{
	Tuap__CtlEvent ev;
	Tuap__TextReply text = TUAP__TEXT_REPLY__INIT;
	char *line = (char *)msg;

	if (job)
		job_event_init(job, &ev);
	else
		tuap__ctl_event__init(&ev);
	ev.has_final = ev.has_exit_code = 1;
	ev.final = 1;
	ev.exit_code = code;
	if (msg) {
		text.lines = &line;
		text.n_lines = 1;
		ev.ev_case = TUAP__CTL_EVENT__EV_TEXT;
		ev.text = &text;
	}
	if (peer)
		e->io.ctl_send(e->io.ctx, peer, &ev);
	else
		job_broadcast(e, job, &ev);
}

/* An error reply that ends the request. */
void engine_reply_error(struct engine *e, const struct ctl_peer *peer, Tuap__Error__Code code,
			const char *fmt, ...)
{
	Tuap__CtlEvent ev = TUAP__CTL_EVENT__INIT;
	Tuap__Error er = TUAP__ERROR__INIT;
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	er.code = code;
	er.message = msg;
	ev.ev_case = TUAP__CTL_EVENT__EV_ERROR;
	ev.error = &er;
	ev.has_final = ev.has_exit_code = 1;
	ev.final = 1;
	ev.exit_code = 1;
	e->io.ctl_send(e->io.ctx, peer, &ev);
}

/* Appends output lines to the job's setup log (what `tuap-ctl log` shows). */
static void setup_log(struct job *job, const char *prefix, char **lines, size_t n)
{
	char path[PATH_MAX];
	long size;
	FILE *f = NULL;
	int fd;

	/* 0640 as the job's other files: make's output may show what the site holds */
	if (job->log_full || fs_path(path, sizeof(path), NULL, "%s/setup.log", job->dir) < 0 ||
	    (fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640)) < 0)
		return;
	if (!(f = fdopen(fd, "a"))) {
		close(fd);
		return;
	}
	size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
	for (size_t i = 0; i < n && size >= 0; i++) {
		size_t len = strlen(prefix) + strlen(lines[i]) + 3;

		if ((size_t)size + len > JOB_SETUP_LOG_MAX) {
			fprintf(f,
				"tuapd| setup.log reached %u MiB: the rest of this job's output is "
				"not kept\n",
				JOB_SETUP_LOG_MAX >> 20);
			log_job(LOG_LVL_WARN, JOB_ABOUT(job),
				"job %s: setup.log reached %u MiB; the rest is dropped", job->id,
				JOB_SETUP_LOG_MAX >> 20);
			job->log_full = true;
			break;
		}
		fprintf(f, "%s| %s\n", prefix, lines[i]);
		size += (long)len;
	}
	fclose(f);
}

unsigned engine_deadline(const struct engine *e, enum job_phase ph)
{
	return e->conf.deadline_s[ph] ? e->conf.deadline_s[ph] : default_deadline[ph];
}

/* Does phase ph apply to this job? */
bool job_phase_applies(struct engine *e, struct job *job, enum job_phase ph)
{
	bool host = job->existing || job->dom.conf.depends_on[0];
	bool vm = !host && e->has_provider && e->provider.applies(e->provider.ctx, job);

	switch (job->kind) {
	case KIND_RUN:
		return ph == PH_HELLO || ph == PH_MAKE || ph == PH_DONE;
	case KIND_UPDATE_DATA:
		return ph == PH_UPLOAD || ph == PH_HELLO || ph == PH_DATA || ph == PH_MAKE ||
		       ph == PH_DONE;
	case KIND_PROVISION:
		break;
	}
	switch (ph) {
	case PH_UPLOAD:
	case PH_DATA:
	case PH_MAKE:
		return job->has_data;
	case PH_IMAGE:
	case PH_DISK:
	case PH_KEYS:
	case PH_SEED:
	case PH_DEFINE:
		return vm;
	case PH_PUSH:
		return !job->existing && job->dom.conf.depends_on[0];
	case PH_USERS:
		return job->dom.users.n > 0;
	case PH_PACKAGES:
		/* also for make alone: the agent installs make where the image has none */
		return job->dom.conf.n_packages > 0 || job->has_data;
	case PH_MAIL:
		return job->dom.conf.contact_email[0] != '\0';
	default:
		return true;
	}
}

static void run_phase(struct engine *e, struct job *job);

static void finish_job(struct engine *e, struct job *job, bool ok, const char *msg)
{
	job->state = ok ? JOB_DONE : JOB_FAILED;
	job->phase_running = false;
	job->deadline_ms = 0;
	job_journal(e, job, "job", "-", ok ? "done" : "failed", msg);
	log_job(ok ? LOG_LVL_INFO : LOG_LVL_WARN, JOB_ABOUT(job), "job %s %s%s%s", job->id,
		ok ? "done" : "failed", msg ? ": " : "", msg ? msg : "");
	job_send_final(e, NULL, job, ok ? 0 : 1, msg);
	job->n_subs = 0;
	if (job->data_fd >= 0) {
		close(job->data_fd);
		job->data_fd = -1;
	}
	engine_prune_jobs(e, job->domain);
}

/* Moves to the next phase that applies, starting at `from`. */
void job_enter_phase(struct engine *e, struct job *job, enum job_phase from)
{
	enum job_phase ph = from;

	while (ph < PH_DONE && !job_phase_applies(e, job, ph))
		ph++;
	job->phase = ph;
	if (ph == PH_DONE) {
		job->phase_started_ms = engine_now_ms();
		finish_job(e, job, true, NULL);
		return;
	}
	job->phase_running = true;
	job->phase_started_ms = engine_now_ms();
	job->deadline_ms = job->phase_started_ms + (int64_t)engine_deadline(e, ph) * 1000;
	job->attempt = (uint64_t)job->phase_started_ms > job->attempt
			       ? (uint64_t)job->phase_started_ms
			       : job->attempt + 1;
	job_journal(e, job, "phase", job_phase_name(ph), "started", NULL);
	job_emit_phase(e, job, TUAP__PHASE_EVENT__STATE__STARTED, NULL, 0, 0, NULL, 0);
	run_phase(e, job);
}

void engine_phase_done(struct engine *e, struct job *job, const char *msg)
{
	if (job->state != JOB_RUNNING || !job->phase_running)
		return;
	job->phase_running = false;
	job_journal(e, job, "phase", job_phase_name(job->phase), "done", msg);
	job_emit_phase(e, job, TUAP__PHASE_EVENT__STATE__DONE, msg, 0, 0, NULL, 0);
	job_enter_phase(e, job, job->phase + 1);
}

void engine_phase_failed(struct engine *e, struct job *job, const char *msg,
			 const char *const *lines, size_t n_lines)
{
	char why[1024];

	if (job->state != JOB_RUNNING)
		return;
	job_journal(e, job, "phase", job_phase_name(job->phase), "failed", msg);
	job_emit_phase(e, job, TUAP__PHASE_EVENT__STATE__FAILED, msg, 0, 0, lines, n_lines);
	snprintf(why, sizeof(why), "%s: %s", job_phase_name(job->phase), msg);
	/* a provider that failed the phase has nothing left running for it: harmless then */
	if (e->has_provider && e->provider.phase_stopped && job->phase_running)
		e->provider.phase_stopped(e->provider.ctx, e, job);
	finish_job(e, job, false, why);
}

void engine_phase_progress(struct engine *e, struct job *job, uint64_t done, uint64_t total,
			   const char *msg)
{
	job_emit_phase(e, job, TUAP__PHASE_EVENT__STATE__PROGRESS, msg, done, total, NULL, 0);
}

/* ---- steps through the agent ---- */

Tuap__Step job_step_of(enum job_phase ph)
{
	switch (ph) {
	case PH_USERS:
		return TUAP__STEP__STEP_USERS;
	case PH_PACKAGES:
		return TUAP__STEP__STEP_PACKAGES;
	case PH_MAIL:
		return TUAP__STEP__STEP_MAIL;
	case PH_DATA:
		return TUAP__STEP__STEP_DATA;
	case PH_MAKE:
		return TUAP__STEP__STEP_MAKE;
	default:
		return TUAP__STEP__STEP_UNKNOWN;
	}
}

void engine_set_key_resolver(struct engine *e, key_resolver fn, void *ctx)
{
	e->resolve = fn;
	e->resolve_ctx = ctx;
}

static int agent_send(struct engine *e, struct job *job, Tuap__Envelope *env)
{
	env->job_id = job->id;
	return e->io.agent_send(e->io.ctx, job->domain, env);
}

static void job_send_plan(struct engine *e, struct job *job)
{
	Tuap__Envelope env = TUAP__ENVELOPE__INIT;
	Tuap__Plan plan = TUAP__PLAN__INIT;
	Tuap__Step steps[5];

	plan.job_id = job->id;
	plan.domain = job->domain;
	plan.steps = steps;
	for (enum job_phase ph = PH_USERS; ph <= PH_MAKE; ph++)
		if (job_phase_applies(e, job, ph))
			steps[plan.n_steps++] = job_step_of(ph);
	env.body_case = TUAP__ENVELOPE__BODY_PLAN;
	env.plan = &plan;
	agent_send(e, job, &env);
}

/* (Re)sends the current step's request. Without an agent the job waits for its hello. */
static void send_step(struct engine *e, struct job *job)
{
	struct jobsteps_args a = {
		.step = job_step_of(job->phase),
		.resolve = e->resolve,
		.resolve_ctx = e->resolve_ctx,
		.data_sha256 = job->data_sha,
		.data_size = job->data_size,
		.data_chunk = e->conf.data_chunk,
		.make_target = job->make_target,
		.rerun_make = job->rerun_make,
		.force_users = job->force_users,
		.deadline_s = engine_deadline(e, job->phase),
	};
	Tuap__Envelope env = TUAP__ENVELOPE__INIT;
	struct tuap_err err;
	Tuap__StepRequest *r = jobsteps_request(&job->dom, &a, &err);

	if (job->phase == PH_DATA) { /* the agent asks (again) for what it needs */
		job->data_next = job->data_owed = 0;
		job->pump_at_ms = 0;
		job->pump_fails = 0;
	}
	if (!r) {
		engine_phase_failed(e, job, err.msg, NULL, 0);
		return;
	}
	r->has_attempt = true;
	r->attempt = job->attempt;
	env.body_case = TUAP__ENVELOPE__BODY_STEP_REQUEST;
	env.step_request = r;
	if (agent_send(e, job, &env) < 0)
		log_job(LOG_LVL_INFO, JOB_ABOUT(job), "%s waits for the agent",
			job_phase_name(job->phase));
	jobsteps_free(r);
}

/* Sends what the agent asked for and has not got yet: at most data_window chunks per call, so
 * one call never queues much; the rest follows from engine_tick and the next ChunkRequest. Stops
 * early when the hub cannot take more (its queue to the agent is full, or no session). Returns
 * -1 when it failed the phase (the job may be gone: do not touch it), else 0. */
static int pump_chunks(struct engine *e, struct job *job, int64_t now_ms)
{
	uint8_t *block;
	int rc = 0;

	if (job->phase != PH_DATA || !job->phase_running || job->data_next >= job->data_owed)
		return 0;
	if (job->data_fd < 0 && (job->data_fd = open(job->data_path, O_RDONLY | O_CLOEXEC)) < 0) {
		char msg[PATH_MAX + 64];

		snprintf(msg, sizeof(msg), "cannot open %s: %s", job->data_path, strerror(errno));
		engine_phase_failed(e, job, msg, NULL, 0);
		return -1;
	}
	block = malloc(e->conf.data_chunk);
	if (!block)
		abort();
	for (uint32_t i = 0; i < e->conf.data_window && job->data_next < job->data_owed; i++) {
		Tuap__Envelope env = TUAP__ENVELOPE__INIT;
		Tuap__DataChunk dc = TUAP__DATA_CHUNK__INIT;
		uint64_t off = job->data_next;
		size_t want = job->data_owed - off < e->conf.data_chunk
				      ? (size_t)(job->data_owed - off)
				      : e->conf.data_chunk;
		ssize_t r = pread(job->data_fd, block, want, (off_t)off);

		if (r <= 0) {
			engine_phase_failed(e, job, "short read of data.tar.gz in the pool", NULL,
					    0);
			rc = -1;
			break;
		}
		dc.offset = off;
		dc.data.data = block;
		dc.data.len = (size_t)r;
		env.body_case = TUAP__ENVELOPE__BODY_DATA_CHUNK;
		env.data_chunk = &dc;
		if (agent_send(e, job, &env) < 0) {
			int64_t wait = (int64_t)PUMP_RETRY_MS
				       << (job->pump_fails < 5 ? job->pump_fails : 5);

			job->pump_fails++;
			job->pump_at_ms =
				now_ms + (wait < PUMP_RETRY_MAX_MS ? wait : PUMP_RETRY_MAX_MS);
			break;
		}
		job->pump_fails = 0;
		job->pump_at_ms = 0;
		job->data_next = off + (uint64_t)r;
	}
	free(block);
	return rc;
}

/* A ChunkRequest: the agent may be sent `credit` bytes from `offset` (proto/tuap.proto). A
 * request that does not continue the previous one (the agent restarted, or rewound after a
 * reconnect) starts the sending over at its offset. */
static void serve_chunks(struct engine *e, struct job *job, const Tuap__ChunkRequest *cr)
{
	uint64_t end;

	if (job->phase != PH_DATA || !job->phase_running)
		return;
	if (cr->offset > job->data_size) {
		log_warn("%s: agent asked for offset %" PRIu64 " past the end (%" PRIu64 ")",
			 job->domain, cr->offset, job->data_size);
		return;
	}
	end = job->data_size - cr->offset < cr->credit ? job->data_size : cr->offset + cr->credit;
	if (cr->offset != job->data_owed)
		job->data_next = cr->offset;
	job->data_owed = end;
	(void)pump_chunks(e, job, engine_now_ms());
}

static void step_event(struct engine *e, struct job *job, const Tuap__StepEvent *st)
{
	Tuap__CtlEvent ev;
	char msg[1024];

	/* output and progress go to tuap-ctl as they are; a step's start and end become the
	 * phase's events below (one line each, the step's message kept) */
	if (st->state == TUAP__STEP_STATE__STATE_LOG ||
	    st->state == TUAP__STEP_STATE__STATE_PROGRESS) {
		job_event_init(job, &ev);
		ev.ev_case = TUAP__CTL_EVENT__EV_STEP;
		ev.step = (Tuap__StepEvent *)st;
		job_broadcast(e, job, &ev);
	}
	switch (st->state) {
	case TUAP__STEP_STATE__STATE_LOG:
		setup_log(job, job_phase_name(job->phase), st->lines, st->n_lines);
		break;
	case TUAP__STEP_STATE__STATE_DONE:
		snprintf(msg, sizeof(msg), "%s%s", st->message ? st->message : "",
			 st->has_exit_code && st->exit_code ? " (non-zero exit)" : "");
		engine_phase_done(e, job, *msg ? msg : NULL);
		break;
	case TUAP__STEP_STATE__STATE_FAILED:
		if (st->has_exit_code)
			snprintf(msg, sizeof(msg), "exit %d%s%s", st->exit_code,
				 st->message ? ": " : "", st->message ? st->message : "");
		else
			snprintf(msg, sizeof(msg), "%s", st->message ? st->message : "failed");
		engine_phase_failed(e, job, msg, NULL, 0);
		break;
	case TUAP__STEP_STATE__STATE_INTERRUPTED:
		snprintf(msg, sizeof(msg),
			 "%s; it is not started again by itself: check the host, then run "
			 "'tuap-ctl provision --resume --rerun-make %s'",
			 st->message ? st->message : "interrupted", job->domain);
		engine_phase_failed(e, job, msg, NULL, 0);
		break;
	default:
		break;
	}
}

static void hello(struct engine *e, const char *domain, const Tuap__Hello *h)
{
	struct agent_info *a = engine_agent(e, domain, true);
	struct job *job = engine_running_job(e, domain);

	if (!a)
		return;
	snprintf(a->version, sizeof(a->version), "%s", h->agent_version);
	snprintf(a->host, sizeof(a->host), "%s", h->hostname ? h->hostname : "");
	a->last_seen_ms = engine_now_ms();
	a->hello_seen = true;
	log_info("%s: hello from agent %s on %s", domain, a->version, a->host);
	if (!job)
		return;
	if (job->phase == PH_HELLO && job->phase_running) {
		char msg[400];

		snprintf(msg, sizeof(msg), "agent %s on %s", a->version, *a->host ? a->host : "?");
		job_send_plan(e, job);
		engine_phase_done(e, job, msg);
		if (e->has_provider && e->provider.agent_hello &&
		    job_phase_applies(e, job, PH_DEFINE))
			e->provider.agent_hello(e->provider.ctx, e, job);
	} else if (job->phase >= PH_USERS && job->phase <= PH_MAKE && job->phase_running) {
		/* a reconnected or restarted agent: its journal makes the resend safe */
		job_send_plan(e, job);
		send_step(e, job);
	}
}

void engine_agent_message(struct engine *e, const char *domain, const Tuap__Envelope *env)
{
	struct agent_info *a = engine_agent(e, domain, false);
	struct job *job;

	if (a)
		a->last_seen_ms = engine_now_ms();
	if (env->body_case == TUAP__ENVELOPE__BODY_HELLO) {
		hello(e, domain, env->hello);
		return;
	}
	job = engine_running_job(e, domain);
	if (!job || !env->job_id || strcmp(env->job_id, job->id)) {
		log_debug("%s: message for job %s, which is not running; ignored", domain,
			  env->job_id ? env->job_id : "(none)");
		return;
	}
	switch (env->body_case) {
	case TUAP__ENVELOPE__BODY_STEP_EVENT:
		if (env->step_event->step != job_step_of(job->phase) || !job->phase_running) {
			log_debug("%s: event for step %d while in %s; ignored", domain,
				  env->step_event->step, job_phase_name(job->phase));
			return;
		}
		if (env->step_event->has_attempt && env->step_event->attempt != job->attempt) {
			/* the end of an earlier start, sent before the agent read this one */
			log_debug("%s: event of attempt %" PRIu64 " of %s, not the current %" PRIu64
				  "; ignored",
				  domain, env->step_event->attempt, job_phase_name(job->phase),
				  job->attempt);
			return;
		}
		step_event(e, job, env->step_event);
		break;
	case TUAP__ENVELOPE__BODY_CHUNK_REQUEST:
		serve_chunks(e, job, env->chunk_request);
		break;
	case TUAP__ENVELOPE__BODY_ERROR:
		log_warn("%s: agent error %d: %s", domain, env->error->code,
			 env->error->message ? env->error->message : "");
		if (job->phase_running && job->phase >= PH_USERS && job->phase <= PH_MAKE)
			engine_phase_failed(
				e, job, env->error->message ? env->error->message : "agent error",
				NULL, 0);
		break;
	default:
		break;
	}
}

/* ---- phases ---- */

static void run_phase(struct engine *e, struct job *job)
{
	struct agent_info *a;

	switch (job->phase) {
	case PH_UPLOAD:
		job_start_upload(e, job);
		break;
	case PH_PLAN:
		if (job->existing)
			engine_phase_done(e, job, "existing host with an enrolled agent");
		else if (job->dom.conf.depends_on[0])
			engine_phase_done(e, job, "existing host: the agent is pushed over SSH");
		else if (e->has_provider && e->provider.applies(e->provider.ctx, job))
			e->provider.run(e->provider.ctx, e, job, job->phase);
		else
			engine_phase_failed(e, job,
					    "this tuapd manages no VMs (no libvirt); use "
					    "--existing for a host whose agent is enrolled",
					    NULL, 0);
		break;
	case PH_PUSH:
		if (e->has_push)
			e->push.run(e->push.ctx, e, job);
		else
			engine_phase_failed(e, job, "this tuapd cannot push agents over SSH", NULL,
					    0);
		break;
	case PH_IMAGE:
	case PH_DISK:
	case PH_KEYS:
	case PH_SEED:
	case PH_DEFINE:
		e->provider.run(e->provider.ctx, e, job, job->phase);
		break;
	case PH_HELLO:
		a = engine_agent(e, job->domain, false);
		if (a && a->hello_seen) {
			char msg[400];

			snprintf(msg, sizeof(msg), "agent %s on %s already connected", a->version,
				 *a->host ? a->host : "?");
			job_send_plan(e, job);
			engine_phase_done(e, job, msg);
		}
		break;
	case PH_USERS:
	case PH_PACKAGES:
	case PH_MAIL:
	case PH_DATA:
	case PH_MAKE:
		send_step(e, job);
		break;
	default:
		break;
	}
}

long engine_tick(struct engine *e, int64_t now_ms)
{
	int64_t next = -1;

	for (struct job *job = e->jobs; job; job = job->next) {
		if (job->state != JOB_RUNNING || !job->phase_running || !job->deadline_ms)
			continue;
		if (now_ms >= job->deadline_ms) {
			char msg[256];

			/* the upload's deadline moves with each chunk, the others' do not */
			snprintf(msg, sizeof(msg), "%s within %u s (deadline from tuapd.conf)",
				 job->phase == PH_HELLO	   ? "no hello from the agent"
				 : job->phase == PH_UPLOAD ? "no progress"
							   : "not done",
				 engine_deadline(e, job->phase));
			char *tail[20];
			size_t n = 0;

			if (job->phase == PH_HELLO && e->has_provider && e->provider.console_tail)
				n = e->provider.console_tail(e->provider.ctx, job->domain, tail,
							     20);
			job_emit_phase(e, job, TUAP__PHASE_EVENT__STATE__STALLED, msg, 0, 0,
				       (const char *const *)tail, n);
			engine_phase_failed(e, job, msg, (const char *const *)tail, n);
			for (size_t i = 0; i < n; i++)
				free(tail[i]);
			/* the list may have changed (pruning): start over next tick */
			return 0;
		}
		if (next < 0 || job->deadline_ms - now_ms < next)
			next = job->deadline_ms - now_ms;
		if (job->phase == PH_DATA && job->data_next < job->data_owed) {
			if (now_ms >= job->pump_at_ms && pump_chunks(e, job, now_ms) < 0)
				return 0; /* as above */
			if (job->data_next < job->data_owed) {
				int64_t at =
					job->pump_at_ms > now_ms ? job->pump_at_ms - now_ms : 0;

				if (next < 0 || at < next)
					next = at;
			}
		}
	}
	return next < 0 ? -1 : (long)next;
}

/* ---- life of the engine ---- */

struct engine *engine_new(const struct engine_conf *conf, const struct engine_io *io,
			  struct tuap_err *err)
{
	struct engine *e = calloc(1, sizeof(*e));

	if (!e) {
		err_set(err, "out of memory");
		return NULL;
	}
	e->conf = *conf;
	if (fs_path(e->state_dir, sizeof(e->state_dir), err, "%s", conf->state_dir) < 0 ||
	    fs_path(e->pool_root, sizeof(e->pool_root), err, "%s", conf->pool_root) < 0) {
		free(e);
		return NULL;
	}
	snprintf(e->endpoint, sizeof(e->endpoint), "%s",
		 conf->agent_endpoint ? conf->agent_endpoint : "");
	snprintf(e->server_pub, sizeof(e->server_pub), "%s",
		 conf->server_public_key ? conf->server_public_key : "");
	e->conf.state_dir = e->state_dir;
	e->conf.pool_root = e->pool_root;
	e->conf.agent_endpoint = e->endpoint;
	e->conf.server_public_key = e->server_pub;
	if (!e->conf.data_chunk)
		e->conf.data_chunk = 256 << 10;
	if (!e->conf.data_window)
		e->conf.data_window = 8;
	if (!e->conf.upload_chunk)
		e->conf.upload_chunk = 256 << 10;
	e->io = *io;
	return e;
}

void engine_set_push_provider(struct engine *e, const struct push_provider *p)
{
	e->push = *p;
	e->has_push = true;
}

struct job_flags job_get_flags(const struct job *job)
{
	return (struct job_flags){job->existing, job->resumed, job->rebuild, job->rerun_make};
}

const struct domain *job_domain_model(const struct job *job)
{
	return &job->dom;
}

enum job_state job_get_state(const struct job *job)
{
	return job->state;
}

const struct job *engine_domain_job(struct engine *e, const char *domain)
{
	return engine_last_job(e, domain);
}

void engine_set_provider(struct engine *e, const struct phase_provider *p)
{
	e->provider = *p;
	e->has_provider = true;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	engine_commit_free(e);
	while (e->jobs) {
		struct job *j = e->jobs;

		e->jobs = j->next;
		job_free(j);
	}
	while (e->agents) {
		struct agent_info *a = e->agents;

		e->agents = a->next;
		free(a);
	}
	free(e);
}
