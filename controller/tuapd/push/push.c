/* push: the PH_PUSH provider, ssh children watched from tuapd's poll loop (push.h). */
#include "push.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agentconf.h"
#include "domain.h"
#include "fsutil.h"
#include "job.h"
#include "keys.h"
#include "log.h"
#include "wire.h"

#define KILL_GRACE_MS 2000
#define READ_BUDGET   (64 << 10) /* bytes read from one child per service call */

/* The one-line script run as root on the host: its stdin is the payload tar. One line without
 * '!', so that any login shell (even csh) hands it to sh intact. */
static const char remote_script[] = "set -eu; umask 077; d=$(mktemp -d /tmp/tuap-push.XXXXXX); "
				    "trap 'rm -rf \"$d\"' EXIT; trap 'exit 1' HUP INT TERM; "
				    "tar -xf - -C \"$d\"; sh \"$d/install\" \"$d\" \"$1\"";

enum stage { STAGE_CHECK, STAGE_INSTALL };

struct run {
	struct run *next;
	char domain[DOMAIN_NAME_MAX + 1];
	char job_id[32];
	char user[33];
	char host[256];
	enum stage stage;
	pid_t pid; /* 0: reaped */
	int status;
	int fd; /* ssh's stdout + stderr; -1 at EOF */
	int64_t deadline_ms, kill_ms;
	bool dropped; /* the job is gone or failed: end quietly */
	struct buf partial;
	char *tail[PUSH_TAIL];
	size_t n_tail;
	char offered[256]; /* the host key ssh was shown */
	char done[512];	   /* the installer's "done:" line */
};

struct push {
	struct push_conf conf;
	char ssh_client[PATH_MAX], ssh_dir[PATH_MAX], agent_binary[PATH_MAX], endpoint[256];
	struct engine *e;
	struct run *runs;
	size_t n_runs;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- target ---- */

int push_resolve(struct engine *e, const struct job *job, char *host, size_t len,
		 struct tuap_err *err)
{
	const char *chain[PUSH_DEPTH_MAX + 1], *name = job_conf(job)->depends_on;
	size_t n = 0;

	chain[n++] = job_domain(job);
	for (int depth = 0; depth < PUSH_DEPTH_MAX; depth++) {
		const struct job *dj = engine_domain_job(e, name);
		const struct domain_conf *c;

		if (!dj) { /* not a domain of ours: a host name or address */
			snprintf(host, len, "%s", name);
			return 0;
		}
		for (size_t i = 0; i < n; i++)
			if (!strcasecmp(chain[i], name))
				return err_set(err,
					       "depends_on goes round in a circle: %s -> ... -> %s",
					       job_domain(job), name);
		if (job_get_state(dj) == JOB_RUNNING)
			return err_set(
				err,
				"%s is being provisioned (job %s, phase %s); %s builds on "
				"it: provision %s once that job is done ('tuap-ctl watch %s')",
				name, job_id(dj), job_phase_name(job_current_phase(dj)),
				chain[n - 1], job_domain(job), name);
		if (job_get_state(dj) == JOB_FAILED)
			return err_set(err,
				       "%s's last job (%s) failed in phase %s; %s builds on it: "
				       "finish %s first ('tuap-ctl status %s')",
				       name, job_id(dj), job_phase_name(job_current_phase(dj)),
				       chain[n - 1], name, name);
		c = job_conf(dj);
		if (c->depends_on[0]) {
			chain[n++] = name;
			name = c->depends_on;
			continue;
		}
		if (c->n_ips) {
			char a[INET6_ADDRSTRLEN];

			inet_ntop(c->ips[0].family, c->ips[0].addr, a, sizeof(a));
			snprintf(host, len, "%s", a);
		} else {
			snprintf(host, len, "%s", name);
		}
		return 0;
	}
	return err_set(err, "depends_on goes through more than %d domains", PUSH_DEPTH_MAX);
}

/* ---- children ---- */

static void run_free(struct run *r)
{
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
	}
	if (r->fd >= 0)
		close(r->fd);
	buf_free(&r->partial);
	for (size_t i = 0; i < r->n_tail; i++)
		free(r->tail[i]);
	free(r);
}

static void keep_line(struct run *r, const char *line)
{
	if (r->n_tail == PUSH_TAIL) {
		free(r->tail[0]);
		memmove(r->tail, r->tail + 1, (PUSH_TAIL - 1) * sizeof(*r->tail));
		r->n_tail--;
	}
	if (!(r->tail[r->n_tail++] = strndup(line, PUSH_LINE_MAX)))
		abort();
}

static void on_line(struct push *p, struct run *r, char *line)
{
	static const char hostkey[] = "debug1: Server host key: ", inst[] = "tuap-install: ",
			  done[] = "tuap-install: done: ";
	size_t n = strlen(line);
	struct job *job;

	if (n && line[n - 1] == '\r')
		line[--n] = '\0';
	wire_scrub_text(line); /* the remote host's words reach the log and the operator */
	if (!strncmp(line, hostkey, sizeof(hostkey) - 1)) {
		snprintf(r->offered, sizeof(r->offered), "%s", line + sizeof(hostkey) - 1);
		return;
	}
	if (!strncmp(line, "debug", 5) || !strncmp(line, "OpenSSH_", 8) ||
	    !strncmp(line, "Authenticated to ", 17) || !strncmp(line, "Transferred: ", 13) ||
	    !strncmp(line, "Bytes per second: ", 18))
		return; /* the rest of ssh's verbose log */
	log_debug("%s: push: %s", r->domain, line);
	keep_line(r, line);
	if (!strncmp(line, done, sizeof(done) - 1))
		snprintf(r->done, sizeof(r->done), "%s", line + sizeof(done) - 1);
	else if (!strncmp(line, inst, sizeof(inst) - 1) && !r->dropped &&
		 (job = engine_find_job(p->e, r->domain, r->job_id)))
		engine_phase_progress(p->e, job, 0, 0, line + sizeof(inst) - 1);
}

/* Reads what the child wrote (bounded per call); closes the pipe at EOF. */
static void drain(struct push *p, struct run *r)
{
	char block[4096];
	size_t budget = READ_BUDGET;

	while (r->fd >= 0 && budget) {
		ssize_t n = read(r->fd, block, sizeof(block));
		char *nl;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			close(r->fd);
			r->fd = -1;
			break;
		}
		budget -= (size_t)n < budget ? (size_t)n : budget;
		buf_add(&r->partial, block, (size_t)n);
		while ((nl = memchr(r->partial.s, '\n', r->partial.len))) {
			size_t len = (size_t)(nl - r->partial.s);

			*nl = '\0';
			on_line(p, r, r->partial.s);
			memmove(r->partial.s, nl + 1, r->partial.len - len - 1);
			r->partial.len -= len + 1;
			r->partial.s[r->partial.len] = '\0';
		}
		if (r->partial.len > PUSH_LINE_MAX) { /* an endless line: cut it */
			on_line(p, r, r->partial.s);
			buf_reset(&r->partial);
		}
	}
	if (r->fd < 0 && r->partial.len) {
		on_line(p, r, r->partial.s);
		buf_reset(&r->partial);
	}
}

/* Starts ssh for r's stage. */
static int start_stage(struct push *p, struct run *r, int in_fd, struct tuap_err *err)
{
	const char *check[] = {"sudo", "-n", "true"};
	const char *install[] = {"sudo", "-n",		"--",	     "sh",
				 "-c",	 remote_script, "tuap-push", r->domain};
	bool root = !strcmp(r->user, "root");
	struct buf cmd = BUF_INIT;
	struct strlist av = {0};
	pid_t pid;

	if (r->stage == STAGE_CHECK) {
		if (root)
			push_remote_command(&cmd, (const char *const[]){"true"}, 1);
		else
			push_remote_command(&cmd, check, 3);
	} else {
		/* root needs no sudo: the words after "sudo -n --" */
		push_remote_command(&cmd, root ? install + 3 : install, root ? 5 : 8);
	}
	push_ssh_argv(&p->conf, r->user, r->host, cmd.s, r->stage == STAGE_CHECK, &av);
	pid = push_spawn(av.v, in_fd, &r->fd, err);
	strlist_free(&av);
	buf_free(&cmd);
	if (pid < 0)
		return -1;
	r->pid = pid;
	return 0;
}

static void fail(struct push *p, struct run *r, const char *fmt, ...) TUAP_PRINTF(3, 4);

static void fail(struct push *p, struct run *r, const char *fmt, ...)
{
	struct job *job = engine_find_job(p->e, r->domain, r->job_id);
	char msg[2048];
	va_list ap;

	r->dropped = true;
	if (!job)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("%s: push to %s@%s failed: %s", r->domain, r->user, r->host, msg);
	engine_phase_failed(p->e, job, msg, (const char *const *)r->tail, r->n_tail);
}

/* Explains an ssh failure to the operator. */
static void fail_ssh(struct push *p, struct run *r, enum push_ssh_problem why)
{
	char kh[PATH_MAX + 16], pub[PATH_MAX + 16];
	const char *h = r->host, *u = r->user;

	snprintf(kh, sizeof(kh), "%s/known_hosts", p->ssh_dir);
	snprintf(pub, sizeof(pub), "%s/id_ed25519.pub", p->ssh_dir);
	switch (why) {
	case PUSH_SSH_HOSTKEY_CHANGED:
		fail(p, r,
		     "the SSH host key of %s has CHANGED: it offered %s, which is not the key for "
		     "it in %s; refused, nothing was sent. If the host was reinstalled, check the "
		     "new key on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), "
		     "then replace the old one (ssh-keygen -R %s -f %s)",
		     h, *r->offered ? r->offered : "a key", kh, h, kh);
		break;
	case PUSH_SSH_HOSTKEY_UNKNOWN:
		fail(p, r,
		     "the SSH host key of %s is not known to tuapd: it offered %s, which is not in "
		     "%s; refused, nothing was sent. Check that fingerprint on the host "
		     "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then add the key "
		     "(ssh-keyscan -t ed25519 %s >> %s)",
		     h, *r->offered ? r->offered : "a key", kh, h, kh);
		break;
	case PUSH_SSH_AUTH:
		fail(p, r,
		     "%s@%s refused tuapd's SSH key; authorize %s for %s on %s "
		     "(~%s/.ssh/authorized_keys)",
		     u, h, pub, u, h, u);
		break;
	case PUSH_SSH_RESOLVE:
		fail(p, r,
		     "%s does not resolve; depends_on names a host (or a domain tuapd has "
		     "provisioned: if %s is a site of yours, provision it first)",
		     h, h);
		break;
	case PUSH_SSH_CONNECT:
		fail(p, r, "cannot reach %s over SSH (see below)", h);
		break;
	case PUSH_SSH_LOCAL:
		fail(p, r, "ssh cannot use tuapd's SSH settings in %s (see below)", p->ssh_dir);
		break;
	default:
		fail(p, r, "ssh to %s@%s failed (exit %d)", u, h,
		     WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1);
		break;
	}
}

/* Fresh keys for the domain's agent, its config text and the payload; then the install. */
static int start_install(struct push *p, struct run *r, struct job *job, struct tuap_err *err)
{
	struct agentconf ac;
	struct buf text = BUF_INIT;
	int fd = -1, rc = -1;

	/* the old key is revoked here: only now that the host let us in with sudo */
	if (engine_enroll_keys(p->e, r->domain, p->endpoint, &ac, err) < 0 ||
	    fs_path(ac.state_dir, sizeof(ac.state_dir), err, "/var/lib/tuap-agent/domains/%s",
		    r->domain) < 0 ||
	    agentconf_format(&ac, &text, err) < 0 ||
	    (fd = push_payload(p->agent_binary, text.s, text.len, err)) < 0)
		goto out;
	r->stage = STAGE_INSTALL;
	if (start_stage(p, r, fd, err) < 0)
		goto out;
	engine_phase_progress(p->e, job, 0, 0, "sending tuap-agent and its config");
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	agentconf_wipe(&ac);
	if (text.s)
		keys_wipe(text.s, text.cap);
	buf_free(&text);
	return rc;
}

/* The child of r ended: next stage, or the phase's end. */
static void stage_ended(struct push *p, struct run *r)
{
	int code = WIFEXITED(r->status) ? WEXITSTATUS(r->status) : -1;
	enum push_ssh_problem why = push_ssh_diagnose(r->tail, r->n_tail);
	struct job *job = engine_find_job(p->e, r->domain, r->job_id);
	struct tuap_err err;

	if (r->dropped || !job) {
		r->dropped = true;
		return;
	}
	if (r->stage == STAGE_CHECK) {
		if (code == 0) {
			if (start_install(p, r, job, &err) < 0)
				fail(p, r, "%s", err.msg);
		} else if (why != PUSH_SSH_NONE || code == 255 || code < 0)
			fail_ssh(p, r, why);
		else if (!strcmp(r->user, "root"))
			fail(p, r, "root on %s cannot run commands (exit %d); nothing was changed",
			     r->host, code);
		else
			fail(p, r,
			     "%s on %s has no passwordless sudo ('sudo -n true' failed, exit %d); "
			     "nothing was changed on the host. Allow it (e.g. '%s ALL=(ALL) "
			     "NOPASSWD:ALL' in /etc/sudoers.d/tuap) or set admin_user=root",
			     r->user, r->host, code, r->user);
		return;
	}
	if (code == 0 && *r->done) {
		char msg[1024];

		snprintf(msg, sizeof(msg), "%s@%s: %s", r->user, r->host, r->done);
		r->dropped = true;
		log_info("%s: agent pushed to %s", r->domain, msg);
		engine_phase_done(p->e, job, msg);
	} else if (why != PUSH_SSH_NONE || code == 255 || code < 0)
		fail_ssh(p, r, why);
	else
		fail(p, r, "installing the agent on %s failed (exit %d; output below)", r->host,
		     code);
}

/* ---- the provider ---- */

static void drop_domain(struct push *p, const char *domain)
{
	for (struct run *r = p->runs; r; r = r->next)
		if (!strcmp(r->domain, domain) && !r->dropped) {
			r->dropped = true;
			if (r->pid > 0)
				kill(r->pid, SIGTERM);
			r->kill_ms = mono_ms() + KILL_GRACE_MS;
		}
}

static int provider_run(void *ctx, struct engine *e, struct job *job)
{
	struct push *p = ctx;
	const struct domain_conf *c = job_conf(job);
	struct tuap_err err;
	struct run *r;
	char key[PATH_MAX + 16];

	drop_domain(p, job_domain(job)); /* a resumed job pushes again from the start */
	if (p->n_runs >= PUSH_MAX_RUNS) {
		engine_phase_failed(e, job, "too many pushes at once; try again later", NULL, 0);
		return -1;
	}
	if (!(r = calloc(1, sizeof(*r))))
		abort();
	r->fd = -1;
	snprintf(r->domain, sizeof(r->domain), "%s", job_domain(job));
	snprintf(r->job_id, sizeof(r->job_id), "%s", job_id(job));
	snprintf(r->user, sizeof(r->user), "%s", c->admin_user[0] ? c->admin_user : "root");
	snprintf(key, sizeof(key), "%s/id_ed25519", p->ssh_dir);
	if (push_resolve(e, job, r->host, sizeof(r->host), &err) < 0 ||
	    push_ssh_dir_ok(p->ssh_dir, &err) < 0 ||
	    (!fs_exists(key) &&
	     err_set(&err, "tuapd has no SSH key %s (see tuapd's log at its start)", key) < 0) ||
	    start_stage(p, r, -1, &err) < 0) {
		run_free(r);
		engine_phase_failed(e, job, err.msg, NULL, 0);
		return -1;
	}
	r->deadline_ms = mono_ms() + (int64_t)p->conf.deadline_s * 1000 - 500;
	r->next = p->runs;
	p->runs = r;
	p->n_runs++;
	{
		char msg[512];

		snprintf(msg, sizeof(msg), "%s@%s: checking %s", r->user, r->host,
			 strcmp(r->user, "root") ? "passwordless sudo" : "the login");
		log_info("%s: push: %s", r->domain, msg);
		engine_phase_progress(e, job, 0, 0, msg);
	}
	return 0;
}

size_t push_pollitems(struct push *p, zmq_pollitem_t *items, size_t max)
{
	size_t n = 0;

	for (struct run *r = p->runs; r && n < max; r = r->next)
		if (r->fd >= 0)
			items[n++] = (zmq_pollitem_t){NULL, r->fd, ZMQ_POLLIN, 0};
	return n;
}

long push_timeout(const struct push *p)
{
	int64_t now = mono_ms(), next = -1;

	for (const struct run *r = p->runs; r; r = r->next) {
		int64_t t = r->kill_ms ? r->kill_ms : r->deadline_ms;

		/* a child whose pipe is closed is reaped by polling */
		if (r->fd < 0 || r->dropped)
			t = now + 100 < t ? now + 100 : t;
		if (next < 0 || t < next)
			next = t;
	}
	if (next < 0)
		return -1;
	return next <= now ? 0 : (long)(next - now);
}

/* One run: read, reap, next stage, deadlines. Returns true when it is over (reaped and
 * reported, or given up) and can be freed. */
static bool service_run(struct push *p, struct run *r, int64_t now)
{
	drain(p, r);
	if (r->pid > 0 && waitpid(r->pid, &r->status, WNOHANG) == r->pid) {
		r->pid = 0;
		drain(p, r);	  /* what it wrote last */
		if (r->fd >= 0) { /* a grandchild holds the pipe (ProxyCommand): not ours */
			close(r->fd);
			r->fd = -1;
		}
		stage_ended(p, r);
	}
	if (!r->dropped && !engine_find_job(p->e, r->domain, r->job_id))
		drop_domain(p, r->domain); /* the job ended (its deadline, a restart) */
	if (r->pid > 0 && !r->kill_ms && now >= r->deadline_ms) {
		fail(p, r,
		     "%s@%s did not finish within %u s (the push deadline); ssh was stopped%s",
		     r->user, r->host, p->conf.deadline_s,
		     r->stage == STAGE_INSTALL ? ", the host may hold a partial install" : "");
		kill(r->pid, SIGTERM);
		r->kill_ms = now + KILL_GRACE_MS;
	}
	if (r->pid > 0 && r->kill_ms && now >= r->kill_ms) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		r->pid = 0;
	}
	return r->pid == 0 && r->dropped;
}

void push_service(struct push *p)
{
	int64_t now = mono_ms();

	/* engine calls made from here never start a push, so the list only shrinks */
	for (struct run **pp = &p->runs; *pp;) {
		struct run *r = *pp;

		if (service_run(p, r, now)) {
			*pp = r->next;
			p->n_runs--;
			run_free(r);
			continue;
		}
		pp = &r->next;
	}
}

/* ---- life ---- */

struct push *push_new(const struct push_conf *c, struct engine *e, struct tuap_err *err)
{
	struct push *p = calloc(1, sizeof(*p));
	struct push_provider prov;

	if (!p) {
		err_set(err, "out of memory");
		return NULL;
	}
	if (fs_path(p->ssh_client, sizeof(p->ssh_client), err, "%s", c->ssh_client) < 0 ||
	    fs_path(p->ssh_dir, sizeof(p->ssh_dir), err, "%s", c->ssh_dir) < 0 ||
	    fs_path(p->agent_binary, sizeof(p->agent_binary), err, "%s", c->agent_binary) < 0) {
		free(p);
		return NULL;
	}
	snprintf(p->endpoint, sizeof(p->endpoint), "%s", c->endpoint ? c->endpoint : "");
	p->conf = *c;
	p->conf.ssh_client = p->ssh_client;
	p->conf.ssh_dir = p->ssh_dir;
	p->conf.agent_binary = p->agent_binary;
	p->conf.endpoint = p->endpoint;
	if (!p->conf.deadline_s)
		p->conf.deadline_s = 600;
	if (!p->conf.connect_timeout_s)
		p->conf.connect_timeout_s = 15;
	if (p->ssh_client[0] != '/' || !strrchr(p->ssh_client, '/')) {
		err_set(err, "ssh.client '%s' is not an absolute path", p->ssh_client);
		free(p);
		return NULL;
	}
	p->e = e;
	/* without a key pushes fail with a clear message; tuapd itself goes on */
	if (push_ssh_setup(&p->conf, err) < 0)
		log_warn("existing hosts cannot be reached: %s", err->msg);
	prov.run = provider_run;
	prov.ctx = p;
	engine_set_push_provider(e, &prov);
	return p;
}

void push_free(struct push *p)
{
	if (!p)
		return;
	for (struct run *r = p->runs; r; r = r->next)
		if (r->pid > 0)
			kill(r->pid, SIGTERM);
	while (p->runs) {
		struct run *r = p->runs;

		p->runs = r->next;
		if (r->pid > 0) {
			int64_t end = mono_ms() + KILL_GRACE_MS;

			while (mono_ms() < end && waitpid(r->pid, NULL, WNOHANG) == 0)
				usleep(20000);
			if (waitpid(r->pid, NULL, WNOHANG) != 0)
				r->pid = 0; /* reaped (or not ours any more) */
		}
		run_free(r);
	}
	free(p);
}
