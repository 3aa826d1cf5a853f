/* What tuap-agent does with each message from tuapd; see dispatch.h. */
#include "dispatch.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "valid.h"

static void read_line(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");

	out[0] = '\0';
	if (!f)
		return;
	if (fgets(out, (int)len, f))
		out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

/* ID= and VERSION_ID= of /etc/os-release, unquoted. */
static void os_release(char *id, size_t idlen, char *ver, size_t verlen)
{
	char line[256];
	FILE *f = fopen("/etc/os-release", "r");

	id[0] = ver[0] = '\0';
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *v = strchr(line, '='), *out = NULL;
		size_t max = 0;

		if (!v)
			continue;
		*v++ = '\0';
		v[strcspn(v, "\n")] = '\0';
		if (*v == '"') {
			v++;
			v[strcspn(v, "\"")] = '\0';
		}
		if (!strcmp(line, "ID"))
			out = id, max = idlen;
		else if (!strcmp(line, "VERSION_ID"))
			out = ver, max = verlen;
		if (out)
			snprintf(out, max, "%s", v);
	}
	fclose(f);
}

void agent_fill_hello(void *arg, Tuap__Hello *h)
{
	struct agent *a = arg;
	struct tuap_err err;

	stepjournal_records_free(a->records, a->n_records);
	a->records = NULL;
	a->n_records = 0;
	if (stepjournal_records(a->journal, a->run == NULL, &a->records, &a->n_records, &err) < 0)
		log_warn("hello: %s", err.msg);
	if (gethostname(a->hostname, sizeof(a->hostname)) < 0)
		a->hostname[0] = '\0';
	a->hostname[sizeof(a->hostname) - 1] = '\0';
	os_release(a->os_id, sizeof(a->os_id), a->os_version, sizeof(a->os_version));
	read_line("/proc/sys/kernel/random/boot_id", a->boot_id, sizeof(a->boot_id));
	h->agent_version = TUAP_VERSION;
	h->hostname = a->hostname;
	h->os_id = a->os_id;
	h->os_version = a->os_version;
	h->boot_id = a->boot_id;
	h->pkg_manager = (char *)step_pkg_manager();
	h->steps = a->records;
	h->n_steps = a->n_records;
	if (a->run && !step_done(a->run)) {
		h->running_job_id = (char *)step_job(a->run);
		h->has_running_step = 1;
		h->running_step = step_which(a->run);
	}
}

static void send_env(struct agent *a, Tuap__Envelope *env)
{
	struct tuap_err err;

	if (!a->job[0])
		return; /* a recovered make reports again once tuapd resends its step */
	env->job_id = a->job;
	if (a->send(a->send_ctx, env, &err) < 0)
		log_warn("not sent to tuapd (%s): %s", wire_body_name(env->body_case), err.msg);
}

void agent_emit(void *ctx, const Tuap__StepEvent *ev)
{
	struct agent *a = ctx;
	Tuap__Envelope env;
	Tuap__StepEvent tagged = *ev;

	wire_init(&env);
	env.body_case = TUAP__ENVELOPE__BODY_STEP_EVENT;
	env.step_event = &tagged;
	if (a->attempt) {
		tagged.has_attempt = true;
		tagged.attempt = a->attempt;
	}
	send_env(a, &env);
}

/* Asks for data while the data step wants more. */
static void want_data(struct agent *a)
{
	Tuap__Envelope env;
	Tuap__ChunkRequest cr = TUAP__CHUNK_REQUEST__INIT;

	if (!a->run || step_done(a->run) || step_which(a->run) != TUAP__STEP__STEP_DATA)
		return;
	while (step_data_want(a->run, &cr.offset, &cr.credit) == 1) {
		wire_init(&env);
		env.body_case = TUAP__ENVELOPE__BODY_CHUNK_REQUEST;
		env.chunk_request = &cr;
		send_env(a, &env);
	}
}

static void step_request(struct agent *a, const char *job, const Tuap__StepRequest *req)
{
	struct tuap_err err;

	if (!job || valid_job_id(job, NULL, 0) < 0) {
		log_warn("step request without a valid job id; ignored");
		return;
	}
	if (a->run && !step_done(a->run)) {
		if (!strcmp(step_job(a->run), job) && step_which(a->run) == req->step) {
			/* tuapd resends the current step after a reconnect or its own restart:
			 * carry on under the attempt and deadline it now counts, and ask again
			 * for data it may have dropped */
			a->attempt = req->has_attempt ? req->attempt : 0;
			step_set_deadline(a->run, req->has_deadline_s ? req->deadline_s : 0);
			if (req->step == TUAP__STEP__STEP_DATA) {
				step_data_rewind(a->run);
				want_data(a);
			}
			return;
		}
		log_warn("job %s step %d requested while step %d of job %s runs; refused", job,
			 req->step, step_which(a->run), step_job(a->run));
		return;
	}
	step_free(a->run);
	a->run = NULL;
	snprintf(a->job, sizeof(a->job), "%s", job);
	a->attempt = req->has_attempt ? req->attempt : 0;
	if (step_start(&a->env, job, a->conf.domain, req, &a->run, &err) < 0) {
		Tuap__StepEvent ev = TUAP__STEP_EVENT__INIT;

		ev.step = req->step;
		ev.state = TUAP__STEP_STATE__STATE_FAILED;
		ev.message = err.msg;
		agent_emit(a, &ev);
		return;
	}
	want_data(a);
}

void agent_dispatch(struct agent *a, const Tuap__Envelope *env)
{
	struct tuap_err err;

	switch (env->body_case) {
	case TUAP__ENVELOPE__BODY_PLAN:
		if (strcmp(env->plan->domain, a->conf.domain))
			log_warn("plan for %s, but this agent serves %s; ignored",
				 env->plan->domain, a->conf.domain);
		else
			log_info("job %s: %zu steps planned", env->plan->job_id,
				 env->plan->n_steps);
		break;
	case TUAP__ENVELOPE__BODY_STEP_REQUEST:
		step_request(a, env->job_id, env->step_request);
		break;
	case TUAP__ENVELOPE__BODY_DATA_CHUNK:
		if (!a->run || step_which(a->run) != TUAP__STEP__STEP_DATA || !env->job_id ||
		    strcmp(env->job_id, step_job(a->run)))
			break; /* a chunk of a step that ended: nothing to do with it */
		if (step_data_chunk(a->run, env->data_chunk->offset, env->data_chunk->data.data,
				    env->data_chunk->data.len, &err) < 0)
			log_warn("data chunk at %llu: %s",
				 (unsigned long long)env->data_chunk->offset, err.msg);
		want_data(a);
		break;
	case TUAP__ENVELOPE__BODY_CANCEL:
		if (a->run && !step_done(a->run))
			step_cancel(a->run, env->cancel->reason ? env->cancel->reason
								: "cancelled by tuapd");
		break;
	case TUAP__ENVELOPE__BODY_ERROR:
		log_warn("tuapd: error %d: %s", env->error->code,
			 env->error->message ? env->error->message : "");
		break;
	default:
		/* wire.c's allow-list lets no other message reach an agent */
		log_warn("tuapd sent %s, which an agent does not take; ignored",
			 wire_body_name(env->body_case));
		break;
	}
}

void agent_service(struct agent *a)
{
	if (a->run && !step_done(a->run)) {
		step_service(a->run);
		want_data(a);
	}
}
