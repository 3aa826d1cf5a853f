/* Step runs: dispatch, events, journal, and the action queue; see steps.h and steps/run.h. */
#include "steps.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "log.h"
#include "names.h"
#include "run.h"
#include "valid.h"

uint64_t run_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void emit(struct step_run *r, Tuap__StepEvent *ev)
{
	ev->step = r->step;
	if (r->env.emit)
		r->env.emit(r->env.ctx, ev);
}

/* ------------------------------------------------------------------------------------------ */
/* Log lines */

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t want;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		want = 2, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		want = 3, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		want = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < want)
		return 0;
	for (size_t i = 1; i < want; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((want == 2 && cp < 0x80) || (want == 3 && cp < 0x800) || (want == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return want;
}

/* Adds one line: invalid UTF-8 and control characters become '?', a trailing CR goes. */
static void add_line(struct step_run *r, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	char *line;
	size_t k = 0;

	if (n > 0 && s[n - 1] == '\r')
		n--;
	line = malloc(n + 1);
	if (!line)
		abort();
	for (size_t i = 0; i < n;) {
		size_t m = utf8_len(u + i, n - i);

		if (m == 1 && (u[i] < 0x20 || u[i] == 0x7f) && u[i] != '\t') {
			line[k++] = '?';
			i++;
		} else if (m == 0) {
			line[k++] = '?';
			i++;
		} else {
			memcpy(line + k, s + i, m);
			k += m;
			i += m;
		}
	}
	line[k] = '\0';
	r->lines[r->n_lines++] = line;
	r->batch_bytes += k;
	if (r->n_lines == STEP_LOG_BATCH || r->batch_bytes >= RUN_BATCH_BYTES)
		run_flush(r);
}

void run_flush(struct step_run *r)
{
	Tuap__StepEvent ev = TUAP__STEP_EVENT__INIT;

	if (r->n_lines == 0)
		return;
	ev.state = TUAP__STEP_STATE__STATE_LOG;
	ev.n_lines = r->n_lines;
	ev.lines = r->lines;
	emit(r, &ev);
	for (size_t i = 0; i < r->n_lines; i++)
		free(r->lines[i]);
	r->n_lines = 0;
	r->batch_bytes = 0;
}

void run_output(struct step_run *r, struct linebuf *lb, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n') {
			add_line(r, lb->s, lb->len);
			lb->len = 0;
			continue;
		}
		lb->s[lb->len++] = data[i];
		if (lb->len == sizeof(lb->s)) {
			add_line(r, lb->s, lb->len);
			lb->len = 0;
		}
	}
}

void run_output_end(struct step_run *r, struct linebuf *lb)
{
	if (lb->len)
		add_line(r, lb->s, lb->len);
	lb->len = 0;
}

void run_log(struct step_run *r, const char *fmt, ...)
{
	char msg[2 * STEP_LOG_LINE_MAX];
	struct linebuf lb;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	lb.len = 0;
	run_output(r, &lb, msg, strlen(msg));
	run_output_end(r, &lb);
}

void run_progress(struct step_run *r, uint64_t done, uint64_t total, const char *msg)
{
	Tuap__StepEvent ev = TUAP__STEP_EVENT__INIT;

	run_flush(r);
	ev.state = TUAP__STEP_STATE__STATE_PROGRESS;
	ev.has_done = ev.has_total = true;
	ev.done = done;
	ev.total = total;
	ev.message = (char *)msg;
	emit(r, &ev);
}

int run_journal(struct step_run *r, Tuap__StepState state, int code, struct tuap_err *err)
{
	struct stepjournal_rec rec;

	if (!r->env.journal)
		return 0;
	memset(&rec, 0, sizeof(rec));
	snprintf(rec.job, sizeof(rec.job), "%s", r->job);
	snprintf(rec.domain, sizeof(rec.domain), "%s", r->domain);
	rec.step = r->step;
	rec.state = state;
	rec.has_exit_code = code >= 0;
	rec.exit_code = code;
	return stepjournal_append(r->env.journal, &rec, err);
}

void run_finish(struct step_run *r, Tuap__StepState state, bool journal, int code, const char *fmt,
		...)
{
	Tuap__StepEvent ev = TUAP__STEP_EVENT__INIT;
	struct tuap_err err;
	char msg[1024] = "";
	va_list ap;

	if (r->finished)
		return;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	run_flush(r);
	if (journal && run_journal(r, state, code, &err) < 0)
		log_warn("job %s: %s: cannot journal %s: %s", r->job, step_name(r->step),
			 step_state_name(state), err.msg);
	r->finished = true;
	r->state = state;
	ev.state = state;
	ev.has_exit_code = code >= 0;
	ev.exit_code = code;
	ev.message = msg[0] ? msg : NULL;
	emit(r, &ev);
}

/* ------------------------------------------------------------------------------------------ */
/* Paths */

int run_root_path(const struct step_run *r, const char *abs, char *out, size_t len)
{
	const char *root = r->env.root && strcmp(r->env.root, "/") != 0 ? r->env.root : "";

	if ((size_t)snprintf(out, len, "%s%s", root, abs) >= len)
		return -1;
	return 0;
}

int run_job_dir(const struct step_run *r, char *out, size_t len, bool create, struct tuap_err *err)
{
	if ((size_t)snprintf(out, len, "%s/jobs/%s", r->env.state_dir, r->job) >= len)
		return err_set(err, "%s: path too long", r->env.state_dir);
	if (create && fs_mkdir_p(out, 0700, err) < 0)
		return -1;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The action queue */

static char *shown_cmd(const char *const argv[], int secret)
{
	struct buf b = BUF_INIT;

	buf_adds(&b, "$");
	for (int i = 0; argv[i]; i++) {
		const char *a = i == secret ? "***" : argv[i];

		if (*a && strcspn(a, " \t'\"\\$") == strlen(a))
			buf_addf(&b, " %s", a);
		else
			buf_addf(&b, " '%s'", a);
	}
	return buf_detach(&b, NULL);
}

static struct action *new_action(struct step_run *r)
{
	struct action *a;

	if (r->n_acts == RUN_MAX_ACTIONS)
		abort(); /* the planners bound their input far below this */
	if ((r->n_acts & (r->n_acts - 1)) == 0) {
		size_t cap = r->n_acts ? r->n_acts * 2 : 8;
		a = realloc(r->acts, cap * sizeof(*a));
		if (!a)
			abort();
		r->acts = a;
	}
	a = &r->acts[r->n_acts++];
	memset(a, 0, sizeof(*a));
	return a;
}

void run_queue_cmd(struct step_run *r, const char *const argv[], int secret)
{
	struct action *a = new_action(r);
	size_t n = 0;

	while (argv[n])
		n++;
	a->argv = calloc(n + 1, sizeof(char *));
	if (!a->argv)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!(a->argv[i] = strdup(argv[i])))
			abort();
	a->shown = shown_cmd(argv, secret);
}

void run_queue_fn(struct step_run *r, action_fn fn, void *arg, void (*arg_free)(void *),
		  const char *shown)
{
	struct action *a = new_action(r);

	a->fn = fn;
	a->arg = arg;
	a->arg_free = arg_free;
	if (shown && !(a->shown = strdup(shown)))
		abort();
}

static void free_actions(struct step_run *r)
{
	for (size_t i = 0; i < r->n_acts; i++) {
		struct action *a = &r->acts[i];

		for (size_t k = 0; a->argv && a->argv[k]; k++)
			free(a->argv[k]);
		free(a->argv);
		free(a->shown);
		if (a->arg_free)
			a->arg_free(a->arg);
	}
	free(r->acts);
	r->acts = NULL;
	r->n_acts = 0;
}

/* Reads what the child wrote, within budget; returns 1 at EOF. */
static int drain(struct step_run *r, size_t budget)
{
	char buf[16384];

	while (r->child.out >= 0 && budget > 0) {
		ssize_t n = read(r->child.out, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0) {
			proc_close(&r->child);
			run_output_end(r, &r->out);
			return 1;
		}
		run_output(r, &r->out, buf, (size_t)n);
		budget = (size_t)n > budget ? 0 : budget - (size_t)n;
	}
	return r->child.out < 0;
}

static void child_exited(struct step_run *r, int code)
{
	struct action *a = &r->acts[r->next];

	drain(r, RUN_READ_BUDGET);
	proc_close(&r->child);
	run_output_end(r, &r->out);
	if (r->kill_reason) {
		run_finish(r, TUAP__STEP_STATE__STATE_FAILED, true, code, "%s: %s", a->argv[0],
			   r->kill_reason);
		return;
	}
	if (code != 0) {
		run_finish(r, TUAP__STEP_STATE__STATE_FAILED, true, code, "%s exited with code %d",
			   a->argv[0], code);
		return;
	}
	r->next++;
}

static void stop_child(struct step_run *r, const char *reason)
{
	if (r->child.pid <= 0)
		return;
	if (!r->kill_reason)
		r->kill_reason = reason;
	if (!r->term_at_ms) {
		proc_signal(&r->child, SIGTERM);
		r->term_at_ms = run_now_ms();
	} else if (run_now_ms() >= r->term_at_ms + RUN_KILL_GRACE_MS) {
		proc_signal(&r->child, SIGKILL);
	}
}

static int start_next(struct step_run *r)
{
	struct action *a = &r->acts[r->next];
	struct proc_opts o = PROC_OPTS_INIT;
	struct tuap_err err;

	if (a->shown)
		run_log(r, "%s", a->shown);
	if (a->fn) {
		if (a->fn(r, a->arg, &err) < 0) {
			run_finish(r, TUAP__STEP_STATE__STATE_FAILED, true, -1, "%s", err.msg);
			return -1;
		}
		r->next++;
		return 0;
	}
	o.new_pgrp = true;
	if (proc_spawn(&r->child, (const char *const *)a->argv, &o, &err) < 0) {
		run_finish(r, TUAP__STEP_STATE__STATE_FAILED, true, 127, "%s", err.msg);
		return -1;
	}
	r->out.len = 0;
	r->term_at_ms = 0;
	return 0;
}

static void queue_service(struct step_run *r)
{
	static char deadline_msg[64];

	for (int rounds = 0; rounds < 64 && !r->finished; rounds++) {
		int code;

		if (r->deadline_ms && run_now_ms() >= r->deadline_ms) {
			snprintf(deadline_msg, sizeof(deadline_msg), "deadline of %us passed",
				 r->deadline_s);
			if (r->child.pid <= 0) {
				run_finish(r, TUAP__STEP_STATE__STATE_FAILED, true, -1, "%s",
					   deadline_msg);
				break;
			}
			stop_child(r, deadline_msg);
		} else if (r->kill_reason) {
			stop_child(r, r->kill_reason);
		}
		if (r->child.pid > 0) {
			drain(r, RUN_READ_BUDGET);
			if (proc_reap(&r->child, &code) == 1) {
				child_exited(r, code);
				continue;
			}
			break; /* still running: wait for output, exit or a timer */
		}
		if (r->next == r->n_acts) {
			run_finish(r, TUAP__STEP_STATE__STATE_DONE, true, 0, NULL);
			break;
		}
		if (start_next(r) < 0)
			break;
	}
	run_flush(r);
}

static size_t queue_pollfds(struct step_run *r, struct pollfd *fds, size_t max)
{
	if (r->child.out < 0 || max == 0)
		return 0;
	fds[0].fd = r->child.out;
	fds[0].events = POLLIN;
	fds[0].revents = 0;
	return 1;
}

static int queue_timeout(const struct step_run *r)
{
	uint64_t now = run_now_ms(), t = 500; /* reap a child whose pipe a grandchild holds */

	if (r->child.pid <= 0)
		return 0; /* the next action, or the end */
	if (r->child.out < 0)
		t = 10; /* output closed: the child is exiting */
	if (r->deadline_ms)
		t = r->deadline_ms > now ? (r->deadline_ms - now < t ? r->deadline_ms - now : t)
					 : 0;
	if (r->term_at_ms)
		t = t < 200 ? t : 200;
	return (int)t;
}

static void queue_cancel(struct step_run *r, const char *reason)
{
	if (r->child.pid > 0) {
		stop_child(r, reason);
		return;
	}
	run_finish(r, TUAP__STEP_STATE__STATE_FAILED, true, -1, "cancelled: %s", reason);
}

static void queue_free(struct step_run *r)
{
	if (r->child.pid > 0) {
		int code;

		proc_signal(&r->child, SIGKILL);
		for (int i = 0; i < 100 && proc_reap(&r->child, &code) == 0; i++)
			usleep(10000);
	}
	proc_close(&r->child);
	free(r->priv);
}

/* ------------------------------------------------------------------------------------------ */
/* Public interface */

static const Tuap__StepRequest__ArgsCase args_for[] = {
	[TUAP__STEP__STEP_USERS] = TUAP__STEP_REQUEST__ARGS_USERS,
	[TUAP__STEP__STEP_PACKAGES] = TUAP__STEP_REQUEST__ARGS_PACKAGES,
	[TUAP__STEP__STEP_MAIL] = TUAP__STEP_REQUEST__ARGS_MAIL,
	[TUAP__STEP__STEP_DATA] = TUAP__STEP_REQUEST__ARGS_DATA,
	[TUAP__STEP__STEP_MAKE] = TUAP__STEP_REQUEST__ARGS_MAKE,
};

static int start_step(struct step_run *r, const Tuap__StepRequest *req, struct tuap_err *err)
{
	const struct stepjournal_rec *rec;
	Tuap__StepEvent ev = TUAP__STEP_EVENT__INIT;

	if (req->step <= TUAP__STEP__STEP_UNKNOWN || req->step > TUAP__STEP__STEP_MAKE)
		return err_set(err, "unknown step %d", (int)req->step);
	if (req->args_case != args_for[req->step])
		return err_set(err, "step %s: arguments missing or of another step",
			       step_name(req->step));
	char why[128];

	if (valid_job_id(r->job, why, sizeof(why)) < 0)
		return err_set(err, "job id '%s' is not acceptable: %s", r->job, why);
	if (valid_domain_name(r->domain, why, sizeof(why)) < 0)
		return err_set(err, "domain '%s' is not a domain name: %s", r->domain, why);
	if (req->step == TUAP__STEP__STEP_MAKE)
		return make_start(r, req->make, err);
	rec = r->env.journal ? stepjournal_get(r->env.journal, r->job, r->step) : NULL;
	if (rec && rec->state == TUAP__STEP_STATE__STATE_DONE) {
		run_finish(r, TUAP__STEP_STATE__STATE_DONE, false,
			   rec->has_exit_code ? rec->exit_code : 0, "already done");
		return 0;
	}
	if (run_journal(r, TUAP__STEP_STATE__STATE_STARTED, -1, err) < 0)
		return -1;
	ev.state = TUAP__STEP_STATE__STATE_STARTED;
	emit(r, &ev);
	switch (req->step) {
	case TUAP__STEP__STEP_USERS:
		return users_start(r, req->users, err);
	case TUAP__STEP__STEP_PACKAGES:
		return packages_start(r, req->packages, err);
	case TUAP__STEP__STEP_MAIL:
		return mail_start(r, req->mail, err);
	case TUAP__STEP__STEP_DATA:
		return data_start(r, req->data, err);
	default:
		return err_set(err, "unknown step");
	}
}

int step_start(const struct step_env *env, const char *job_id, const char *domain,
	       const Tuap__StepRequest *req, struct step_run **run, struct tuap_err *err)
{
	struct step_run *r;
	struct tuap_err e;
	char msg[1024];

	*run = NULL;
	memset(&e, 0, sizeof(e));
	if (!env || !job_id || !domain || !req || !env->state_dir || !env->site_root)
		return err_set(err, "step_start: missing argument");
	r = calloc(1, sizeof(*r));
	if (!r)
		return err_set(err, "out of memory");
	r->env = *env;
	if (!r->env.root)
		r->env.root = "/";
	snprintf(r->job, sizeof(r->job), "%s", job_id);
	snprintf(r->domain, sizeof(r->domain), "%s", domain);
	r->step = req->step;
	r->state = TUAP__STEP_STATE__STATE_STARTED;
	r->child.pid = -1;
	r->child.out = -1;
	step_set_deadline(r, req->has_deadline_s ? req->deadline_s : 0);
	if (strlen(job_id) >= sizeof(r->job) || strlen(domain) >= sizeof(r->domain))
		run_finish(r, TUAP__STEP_STATE__STATE_FAILED, false, -1,
			   "job id or domain too long");
	else if (start_step(r, req, &e) < 0)
		run_finish(r, TUAP__STEP_STATE__STATE_FAILED,
			   r->step != TUAP__STEP__STEP_MAKE && valid_job_id(r->job, NULL, 0) == 0,
			   -1, "%s", err_str(&e, msg, sizeof(msg)));
	else if (!r->ops && !r->finished)
		queue_service(r);
	run_flush(r);
	*run = r;
	return 0;
}

void step_set_deadline(struct step_run *r, uint32_t deadline_s)
{
	r->deadline_s = deadline_s;
	r->deadline_ms = deadline_s ? run_now_ms() + (uint64_t)deadline_s * 1000 : 0;
}

size_t step_pollfds(struct step_run *r, struct pollfd *fds, size_t max)
{
	if (r->finished)
		return 0;
	return r->ops ? r->ops->pollfds(r, fds, max) : queue_pollfds(r, fds, max);
}

int step_timeout_ms(const struct step_run *r)
{
	if (r->finished)
		return -1;
	return r->ops ? r->ops->timeout_ms(r) : queue_timeout(r);
}

void step_service(struct step_run *r)
{
	if (r->finished)
		return;
	if (r->ops)
		r->ops->service(r);
	else
		queue_service(r);
	run_flush(r);
}

bool step_done(const struct step_run *r)
{
	return r->finished;
}

Tuap__StepState step_state(const struct step_run *r)
{
	return r->state;
}

Tuap__Step step_which(const struct step_run *r)
{
	return r->step;
}

const char *step_job(const struct step_run *r)
{
	return r->job;
}

void step_cancel(struct step_run *r, const char *reason)
{
	if (r->finished)
		return;
	if (!reason || !*reason)
		reason = "cancelled";
	if (r->ops)
		r->ops->cancel(r, reason);
	else
		queue_cancel(r, reason);
	run_flush(r);
}

void step_free(struct step_run *r)
{
	if (!r)
		return;
	if (r->ops)
		r->ops->free(r);
	else
		queue_free(r);
	free_actions(r);
	for (size_t i = 0; i < r->n_lines; i++)
		free(r->lines[i]);
	free(r);
}

int step_recover(const struct step_env *env, struct step_run **run, struct tuap_err *err)
{
	Tuap__StepRequest req = TUAP__STEP_REQUEST__INIT;
	Tuap__MakeArgs make = TUAP__MAKE_ARGS__INIT;
	const struct stepjournal_rec *best = NULL;

	*run = NULL;
	if (!env->journal)
		return 0;
	for (size_t i = 0; i < stepjournal_count(env->journal); i++) {
		const struct stepjournal_rec *rec = stepjournal_at(env->journal, i);

		if (rec->step == TUAP__STEP__STEP_MAKE &&
		    rec->state == TUAP__STEP_STATE__STATE_STARTED && rec->domain[0] &&
		    (!best || rec->unix_time >= best->unix_time))
			best = rec;
	}
	if (!best)
		return 0;
	req.step = TUAP__STEP__STEP_MAKE;
	req.args_case = TUAP__STEP_REQUEST__ARGS_MAKE;
	req.make = &make;
	if (step_start(env, best->job, best->domain, &req, run, err) < 0)
		return -1;
	return 1;
}

const char *step_pkg_manager(void)
{
	char path[256];

	if (proc_which("apt-get", path, sizeof(path)) == 0)
		return "apt";
	if (proc_which("dnf", path, sizeof(path)) == 0)
		return "dnf";
	return NULL;
}
