/*
 * tuap-agent: runs on a site's host (a tuap VM or an existing host), connects out to tuapd over
 * CURVE (agent/link.c), says Hello with what its journal knows, and runs the steps tuapd sends
 * (agent/steps.c) one at a time, streaming their events back. One poll loop: the link's
 * sockets, the running step's pipes, and the timers of both.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "agentconf.h"
#include "fsutil.h"
#include "keys.h"
#include "link.h"
#include "log.h"
#include "stepjournal.h"
#include "steps.h"
#include "wire.h"

#define MAX_STEP_FDS 8

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	stopping = sig;
}

struct agent {
	struct agentconf conf;
	struct link *link;
	struct stepjournal *journal;
	struct step_env env;
	struct step_run *run;
	char job[STEPJOURNAL_JOB_MAX + 1]; /* the job of the current/last run */
	/* Hello contents, kept alive until the next Hello */
	char hostname[256], os_id[64], os_version[64], boot_id[64];
	Tuap__StepRecord **records;
	size_t n_records;
};

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

static void fill_hello(void *arg, Tuap__Hello *h)
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
	if (link_send(a->link, env, &err) < 0)
		log_warn("not sent to tuapd (%s): %s", wire_body_name(env->body_case), err.msg);
}

static void emit(void *ctx, const Tuap__StepEvent *ev)
{
	struct agent *a = ctx;
	Tuap__Envelope env;

	wire_init(&env);
	env.body_case = TUAP__ENVELOPE__BODY_STEP_EVENT;
	env.step_event = (Tuap__StepEvent *)ev;
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

	if (!job || !stepjournal_job_ok(job)) {
		log_warn("step request without a valid job id; ignored");
		return;
	}
	if (a->run && !step_done(a->run)) {
		if (!strcmp(step_job(a->run), job) && step_which(a->run) == req->step) {
			/* tuapd resends the current step after a reconnect or its own restart:
			 * carry on, and ask again for data it may have dropped */
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
	if (step_start(&a->env, job, a->conf.domain, req, &a->run, &err) < 0) {
		Tuap__StepEvent ev = TUAP__STEP_EVENT__INIT;

		ev.step = req->step;
		ev.state = TUAP__STEP_STATE__STATE_FAILED;
		ev.message = err.msg;
		emit(a, &ev);
		return;
	}
	want_data(a);
}

static void handle(struct agent *a, const Tuap__Envelope *env)
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
		break;
	}
}

static void serve(struct agent *a)
{
	while (!stopping) {
		zmq_pollitem_t items[LINK_NPOLL + MAX_STEP_FDS];
		struct pollfd fds[MAX_STEP_FDS];
		size_t nfds =
			a->run && !step_done(a->run) ? step_pollfds(a->run, fds, MAX_STEP_FDS) : 0;
		int timeout = link_timeout(a->link), st, n;
		Tuap__Envelope *env;

		if (a->run && !step_done(a->run) && (st = step_timeout_ms(a->run)) >= 0 &&
		    (timeout < 0 || st < timeout))
			timeout = st;
		if (timeout < 0 || timeout > 1000)
			timeout = 1000;
		link_pollitems(a->link, items);
		for (size_t i = 0; i < nfds; i++)
			items[LINK_NPOLL + i] =
				(zmq_pollitem_t){NULL, fds[i].fd, (short)fds[i].events, 0};
		n = zmq_poll(items, LINK_NPOLL + (int)nfds, timeout);
		if (n < 0 && errno != EINTR) {
			log_error("poll: %s", zmq_strerror(errno));
			break;
		}
		if (a->run && !step_done(a->run)) {
			step_service(a->run);
			want_data(a);
		}
		while (link_recv(a->link, &env, 0) == 1) {
			handle(a, env);
			wire_free(env);
		}
	}
}

static void usage(FILE *out)
{
	fprintf(out, "usage: tuap-agent --config FILE [--site-root DIR] [-d]\n"
		     "       tuap-agent --version\n"
		     "  --config FILE     agent config (endpoint, keys, domain): agent.conf(5)\n"
		     "  --site-root DIR   where sites are extracted (default " STEP_SITE_ROOT ")\n"
		     "  -d                debug logging\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
					     {"site-root", required_argument, NULL, 's'},
					     {"version", no_argument, NULL, 'V'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *config = NULL, *site_root = STEP_SITE_ROOT;
	struct sigaction sa = {.sa_handler = on_signal};
	struct agent a = {0};
	struct tuap_err err;
	int c, debug = 0, rc = 1;

	while ((c = getopt_long(argc, argv, "c:s:dh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 's':
			site_root = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 'V':
			printf("tuap-agent %s\n", TUAP_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!config) {
		usage(stderr);
		return 2;
	}
	log_init("tuap-agent", debug);
	umask(022);
	if (agentconf_load(&a.conf, config, &err) < 0)
		fatal("%s", err.msg);
	if (fs_mkdir_p(a.conf.state_dir, 0700, &err) < 0 || fs_mkdir_p(site_root, 0755, &err) < 0 ||
	    stepjournal_open(&a.journal, a.conf.state_dir, &err) < 0)
		fatal("%s", err.msg);
	a.env = (struct step_env){"/", a.conf.state_dir, site_root, a.journal, emit, &a};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!(a.link = link_open(&a.conf, &err)))
		fatal("%s", err.msg);
	link_set_hello(a.link, fill_hello, &a);
	/* the link holds its own copy of the keys */
	keys_wipe(a.conf.secret_key, sizeof(a.conf.secret_key));
	/* a make that outlived the previous agent: reattach, or learn how it ended (its events
	 * queue on the link until tuapd is reached) */
	if (step_recover(&a.env, &a.run, &err) < 0)
		log_warn("recovering the last make: %s", err.msg);
	else if (a.run)
		snprintf(a.job, sizeof(a.job), "%s", step_job(a.run));
	log_info("tuap-agent %s: serving %s", TUAP_VERSION, config);
	serve(&a);
	log_info("stopping (signal %d); a running make goes on under its supervisor",
		 (int)stopping);
	rc = 0;
	step_free(a.run);
	link_close(a.link);
	stepjournal_records_free(a.records, a.n_records);
	stepjournal_close(a.journal);
	return rc;
}
