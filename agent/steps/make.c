/*
 * The make step. make (after pre_make_script, when given) runs in SITE_ROOT/DOMAIN under a
 * supervisor process of its own (double fork, setsid) so that it outlives the agent. Files in
 * STATE_DIR/jobs/JOB/:
 *   make.log     what the script and make print (the supervisor's children write it directly)
 *   make.pid     "PID STARTTIME": the supervisor, checked against /proc/PID/stat
 *   make.status  "code=N stage=make|pre_make_script timeout=0|1": written (atomically) last
 *   make.sent    how far into make.log the agent has emitted lines (saved at most every second
 *                and when the run is freed: after a crash a second of lines may come again)
 * The journal gets "make started" (fsync'd) before the fork. The agent tails make.log; a
 * restarted agent finding the job's make started reattaches to a live supervisor, reports the
 * status the supervisor left, or, with neither, INTERRUPTED. It never starts a job's make a
 * second time unless MakeArgs.rerun is set.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "run.h"
#include "valid.h"

#define TAIL_MS		 100
#define SAVE_MS		 1000
#define READY_MS	 5000
#define SUP_KILL_GRACE_S 10

struct make_paths {
	char dir[PATH_MAX], log[PATH_MAX], status[PATH_MAX], pid[PATH_MAX], sent[PATH_MAX];
	char site[PATH_MAX];
};

struct make_run {
	struct make_paths p;
	int logfd;
	uint64_t consumed; /* bytes of make.log read (complete lines + lb) */
	uint64_t saved;	   /* value last written to make.sent */
	uint64_t last_save_ms;
	struct linebuf lb;
	pid_t sup;
	bool ending; /* final state known: read to EOF, then finish */
	Tuap__StepState final;
	int final_code;
	char final_msg[256];
	char cancel_reason[128];
};

/* ------------------------------------------------------------------------------------------ */
/* Files */

static int make_paths(struct step_run *r, struct make_paths *p, struct tuap_err *err)
{
	if (run_job_dir(r, p->dir, sizeof(p->dir), true, err) < 0)
		return -1;
	if ((size_t)snprintf(p->log, sizeof(p->log), "%s/make.log", p->dir) >= sizeof(p->log) ||
	    (size_t)snprintf(p->status, sizeof(p->status), "%s/make.status", p->dir) >=
		    sizeof(p->status) ||
	    (size_t)snprintf(p->pid, sizeof(p->pid), "%s/make.pid", p->dir) >= sizeof(p->pid) ||
	    (size_t)snprintf(p->sent, sizeof(p->sent), "%s/make.sent", p->dir) >= sizeof(p->sent))
		return err_set(err, "%s: path too long", p->dir);
	if ((size_t)snprintf(p->site, sizeof(p->site), "%s/%s", r->env.site_root, r->domain) >=
	    sizeof(p->site))
		return err_set(err, "%s: path too long", r->env.site_root);
	return 0;
}

/* Reads a small file into buf; -1 when absent. */
static int read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/* Writes a small file by rename, without fsync (see make.sent above). */
static int write_small(const char *path, const char *text)
{
	char tmp[PATH_MAX + 16];
	size_t len = strlen(text);
	int fd, ok;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	ok = write(fd, text, len) == (ssize_t)len;
	close(fd);
	if (!ok || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Field 22 (start time) and the state of /proc/PID/stat; -1 when there is no such process. */
static int proc_stat(pid_t pid, unsigned long long *start, char *state)
{
	char path[64], buf[1024], *p;
	int field = 3;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if (read_small(path, buf, sizeof(buf)) < 0 || !(p = strrchr(buf, ')')))
		return -1;
	p++;
	while (*p == ' ')
		p++;
	*state = *p;
	for (; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (field != 22)
		return -1;
	*start = strtoull(p, NULL, 10);
	return 0;
}

/* The supervisor's pid when it is alive, else 0. */
static pid_t supervisor_alive(const struct make_paths *p)
{
	char buf[128], state;
	long pid;
	unsigned long long start, now_start;

	if (read_small(p->pid, buf, sizeof(buf)) < 0 ||
	    sscanf(buf, "%ld %llu", &pid, &start) != 2 || pid <= 1)
		return 0;
	if (proc_stat((pid_t)pid, &now_start, &state) < 0 || now_start != start || state == 'Z' ||
	    state == 'X')
		return 0;
	return (pid_t)pid;
}

struct status {
	int code;
	bool timeout;
	char stage[32];
};

static int read_status(const struct make_paths *p, struct status *st)
{
	char buf[256];

	memset(st, 0, sizeof(*st));
	if (read_small(p->status, buf, sizeof(buf)) < 0)
		return -1;
	{
		int t = 0;

		if (sscanf(buf, "code=%d stage=%31s timeout=%d", &st->code, st->stage, &t) != 3)
			return -1;
		st->timeout = t != 0;
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The supervisor (runs in the grandchild; single-threaded, leaves with _exit) */

struct sup_args {
	const struct make_paths *p;
	char script[PATH_MAX]; /* "" when none */
	char target[256];      /* "" for the default */
	uint32_t deadline_s;
};

static void close_from(int lowest)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0) == 0)
		return;
#endif
	for (int fd = lowest; fd < 65536; fd++)
		close(fd);
}

static void put_status(const struct make_paths *p, int code, const char *stage, bool timeout)
{
	char text[128];

	snprintf(text, sizeof(text), "code=%d stage=%s timeout=%d\n", code, stage, timeout ? 1 : 0);
	fs_write_atomic(p->status, text, strlen(text), 0600, NULL);
}

static void note(int logfd, const char *msg)
{
	if (write(logfd, msg, strlen(msg)) < 0) {
		/* nothing to do: the log is where we would say it */
	}
}

/* Runs argv in site with output to logfd; waits (SIGCHLD/SIGTERM via sigtimedwait) until it
 * exits, the deadline passes or the supervisor is told to stop. Returns the exit code. */
static int sup_run(const char *site, const char *const argv[], int logfd, time_t deadline,
		   bool *timed_out)
{
	const char *envp[PROC_ENV_MAX + 1];
	char path[PATH_MAX];
	sigset_t set;
	pid_t child, me = getpid();
	time_t kill_at = 0;
	int st;

	if (proc_which(argv[0], path, sizeof(path)) < 0) {
		note(logfd, "tuap-agent: command not found\n");
		return 127;
	}
	proc_env(NULL, envp, PROC_ENV_MAX + 1);
	child = fork();
	if (child < 0)
		return 126;
	if (child == 0) {
		int null = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != me)
			_exit(126);
		if (null < 0 || dup2(null, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0 ||
		    chdir(site) < 0)
			_exit(126);
		sigemptyset(&set);
		sigprocmask(SIG_SETMASK, &set, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		execve(path, (char *const *)argv, (char *const *)envp);
		_exit(127);
	}
	setpgid(child, child);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	for (;;) {
		struct timespec ts = {1, 0};
		pid_t w = waitpid(child, &st, WNOHANG);
		time_t now = time(NULL);
		int sig;

		if (w == child)
			return proc_code(st);
		if (deadline && now >= deadline && !kill_at) {
			*timed_out = true;
			kill(-child, SIGTERM);
			kill_at = now + SUP_KILL_GRACE_S;
		} else if (kill_at && now >= kill_at) {
			kill(-child, SIGKILL);
		}
		sig = sigtimedwait(&set, NULL, &ts);
		if ((sig == SIGTERM || sig == SIGINT) && !kill_at) {
			kill(-child, SIGTERM);
			kill_at = time(NULL) + SUP_KILL_GRACE_S;
		}
	}
}

static _Noreturn void supervise(const struct sup_args *a, int ready)
{
	char buf[128];
	unsigned long long start;
	bool timed_out = false;
	time_t deadline = a->deadline_s ? time(NULL) + a->deadline_s : 0;
	const char *make_argv[] = {"make", a->target[0] ? a->target : NULL, NULL};
	sigset_t set;
	int logfd, code = 0;
	char state;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (dup2(ready, 3) < 0)
		_exit(1);
	close_from(4);
	ready = 3;
	/* nothing of the agent's: not its stdio (a journald stream, a terminal, a test's pipe) */
	logfd = open("/dev/null", O_RDWR);
	if (logfd < 0 || dup2(logfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
		_exit(1);
	if (logfd > 3)
		close(logfd);
	logfd = open(a->p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (logfd < 0 || proc_stat(getpid(), &start, &state) < 0)
		_exit(1);
	snprintf(buf, sizeof(buf), "%ld %llu\n", (long)getpid(), start);
	if (fs_write_atomic(a->p->pid, buf, strlen(buf), 0600, NULL) < 0)
		_exit(1);
	if (write(ready, "R", 1) != 1)
		_exit(1);
	close(ready);
	if (a->script[0]) {
		struct stat st;
		char full[PATH_MAX * 2];
		const char *argv[3] = {full, NULL, NULL};

		snprintf(full, sizeof(full), "%s/%s", a->p->site, a->script);
		if (stat(full, &st) < 0) {
			note(logfd, "tuap-agent: pre_make_script not found\n");
			put_status(a->p, 127, "pre_make_script", false);
			_exit(0);
		}
		if (!(st.st_mode & S_IXUSR)) {
			argv[0] = "sh";
			argv[1] = full;
		}
		code = sup_run(a->p->site, argv, logfd, deadline, &timed_out);
		if (code != 0 || timed_out) {
			put_status(a->p, code, "pre_make_script", timed_out);
			_exit(0);
		}
	}
	code = sup_run(a->p->site, make_argv, logfd, deadline, &timed_out);
	fsync(logfd);
	put_status(a->p, code, "make", timed_out);
	_exit(0);
}

/* Forks the supervisor and waits (bounded) until it has written its pidfile. */
static int spawn_supervisor(const struct sup_args *a, pid_t *pid, struct tuap_err *err)
{
	int pfd[2], st, rc = -1;
	struct pollfd pl;
	char c = 0, buf[128];
	pid_t mid;
	long p = 0;
	unsigned long long start;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return err_set(err, "pipe: %s", strerror(errno));
	mid = fork();
	if (mid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return err_set(err, "fork: %s", strerror(errno));
	}
	if (mid == 0) {
		close(pfd[0]);
		setsid();
		if (fork() == 0)
			supervise(a, pfd[1]);
		_exit(0);
	}
	close(pfd[1]);
	while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
		;
	pl.fd = pfd[0];
	pl.events = POLLIN;
	if (poll(&pl, 1, READY_MS) != 1 || read(pfd[0], &c, 1) != 1 || c != 'R') {
		err_set(err, "make supervisor did not start");
		goto out;
	}
	if (read_small(a->p->pid, buf, sizeof(buf)) < 0 ||
	    sscanf(buf, "%ld %llu", &p, &start) != 2) {
		err_set(err, "%s: unreadable", a->p->pid);
		goto out;
	}
	*pid = (pid_t)p;
	rc = 0;
out:
	close(pfd[0]);
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Tailing make.log */

static void save_sent(struct make_run *m, bool force)
{
	uint64_t sent = m->consumed - m->lb.len, now = run_now_ms();
	char text[32];

	if (sent == m->saved || (!force && now < m->last_save_ms + SAVE_MS))
		return;
	snprintf(text, sizeof(text), "%" PRIu64 "\n", sent);
	if (write_small(m->p.sent, text) == 0)
		m->saved = sent;
	m->last_save_ms = now;
}

/* Reads make.log within budget; 1 at its current end. */
static int tail(struct step_run *r, struct make_run *m, size_t budget)
{
	char buf[16384];

	if (m->logfd < 0) {
		m->logfd = open(m->p.log, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (m->logfd < 0)
			return 1;
		if (lseek(m->logfd, (off_t)m->consumed, SEEK_SET) < 0)
			return 1;
	}
	while (budget > 0) {
		ssize_t n = read(m->logfd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 1;
		run_output(r, &m->lb, buf, (size_t)n);
		m->consumed += (uint64_t)n;
		budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
	}
	return 0;
}

/* Settles the final state from the status file, or INTERRUPTED when the supervisor is gone
 * without one. Returns 1 when settled. */
static int settle(struct step_run *r, struct make_run *m)
{
	struct status st;

	if (read_status(&m->p, &st) < 0) {
		if (supervisor_alive(&m->p))
			return 0;
		if (read_status(&m->p, &st) < 0) {
			m->final = TUAP__STEP_STATE__STATE_INTERRUPTED;
			m->final_code = -1;
			snprintf(m->final_msg, sizeof(m->final_msg),
				 "make was interrupted (its supervisor is gone without a status); "
				 "not restarted unless asked to rerun");
			m->ending = true;
			return 1;
		}
	}
	m->final = st.code == 0 && !st.timeout ? TUAP__STEP_STATE__STATE_DONE
					       : TUAP__STEP_STATE__STATE_FAILED;
	m->final_code = st.code;
	if (m->cancel_reason[0])
		snprintf(m->final_msg, sizeof(m->final_msg), "cancelled: %s", m->cancel_reason);
	else if (st.timeout)
		snprintf(m->final_msg, sizeof(m->final_msg), "%s: deadline passed (code %d)",
			 st.stage, st.code);
	else
		snprintf(m->final_msg, sizeof(m->final_msg), "%s exited with code %d", st.stage,
			 st.code);
	m->ending = true;
	return 1;
}

static void make_service(struct step_run *r)
{
	struct make_run *m = r->priv;

	if (!m->ending) {
		tail(r, m, RUN_READ_BUDGET);
		settle(r, m);
	}
	if (m->ending && tail(r, m, RUN_READ_BUDGET)) {
		run_output_end(r, &m->lb);
		save_sent(m, true);
		run_finish(r, m->final, true, m->final_code, "%s", m->final_msg);
		return;
	}
	save_sent(m, false);
}

static size_t make_pollfds(struct step_run *r, struct pollfd *fds, size_t max)
{
	return 0;
}

static int make_timeout(const struct step_run *r)
{
	const struct make_run *m = r->priv;

	return m->ending ? 0 : TAIL_MS;
}

static void make_cancel(struct step_run *r, const char *reason)
{
	struct make_run *m = r->priv;
	pid_t pid = supervisor_alive(&m->p);

	snprintf(m->cancel_reason, sizeof(m->cancel_reason), "%s", reason);
	if (pid > 0)
		kill(pid, SIGTERM); /* it stops make and writes the status */
}

static void make_free(struct step_run *r)
{
	struct make_run *m = r->priv;

	if (!m)
		return;
	save_sent(m, true);
	if (m->logfd >= 0)
		close(m->logfd);
	free(m);
}

static const struct step_ops make_ops = {
	make_pollfds, make_timeout, make_service, make_cancel, make_free,
};

/* ------------------------------------------------------------------------------------------ */
/* Start */

static int rel_path_ok(const char *s)
{
	if (!*s || s[0] == '/' || strlen(s) >= 1024)
		return 0;
	for (const char *p = s; *p;) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return 0;
		p += n;
		while (*p == '/')
			p++;
	}
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

static void follow_from_sent(struct make_run *m)
{
	char buf[64];
	struct stat st;

	m->consumed = 0;
	if (read_small(m->p.sent, buf, sizeof(buf)) == 0)
		m->consumed = strtoull(buf, NULL, 10);
	if (stat(m->p.log, &st) == 0 && (uint64_t)st.st_size < m->consumed)
		m->consumed = (uint64_t)st.st_size;
	m->saved = m->consumed;
}

static void emit_started(struct step_run *r)
{
	Tuap__StepEvent ev = TUAP__STEP_EVENT__INIT;

	ev.step = r->step;
	ev.state = TUAP__STEP_STATE__STATE_STARTED;
	if (r->env.emit)
		r->env.emit(r->env.ctx, &ev);
}

int make_start(struct step_run *r, const Tuap__MakeArgs *a, struct tuap_err *err)
{
	const struct stepjournal_rec *rec =
		r->env.journal ? stepjournal_get(r->env.journal, r->job, r->step) : NULL;
	bool rerun = a->has_rerun && a->rerun;
	struct sup_args sa;
	struct make_run *m;
	struct status st;
	char rotated[PATH_MAX + 8], why[160];

	if (a->target && a->target[0] && valid_make_target(a->target, why, sizeof(why)) < 0)
		return err_at(err, NULL, 0, "target", "'%s' is not a make target: %s", a->target,
			      why);
	if (a->pre_make_script && a->pre_make_script[0] && !rel_path_ok(a->pre_make_script))
		return err_at(err, NULL, 0, "pre_make_script",
			      "'%s' must be a relative path inside the tree", a->pre_make_script);
	if (!(m = calloc(1, sizeof(*m))))
		return err_set(err, "out of memory");
	m->logfd = -1;
	r->priv = m;
	r->ops = &make_ops;
	if (make_paths(r, &m->p, err) < 0)
		return -1;

	if ((m->sup = supervisor_alive(&m->p)) > 0) {
		follow_from_sent(m);
		emit_started(r);
		run_log(r, "tuap-agent: reattached to make (supervisor pid %ld)", (long)m->sup);
		return 0;
	}
	if (!rerun && rec && rec->state != TUAP__STEP_STATE__STATE_STARTED) {
		run_finish(r, rec->state, false, rec->has_exit_code ? rec->exit_code : -1,
			   "already %s for this job; not run again (rerun not set)",
			   rec->state == TUAP__STEP_STATE__STATE_DONE	  ? "done"
			   : rec->state == TUAP__STEP_STATE__STATE_FAILED ? "failed"
									  : "interrupted");
		return 0;
	}
	if (!rerun && (rec || read_status(&m->p, &st) == 0)) {
		/* started by an earlier agent: report what became of it */
		follow_from_sent(m);
		emit_started(r);
		settle(r, m);
		return 0;
	}
	if (!fs_exists(m->p.site))
		return err_set(err, "%s: no site tree (the data step puts it there)", m->p.site);
	memset(&sa, 0, sizeof(sa));
	sa.p = &m->p;
	if (a->pre_make_script)
		snprintf(sa.script, sizeof(sa.script), "%s", a->pre_make_script);
	if (a->target)
		snprintf(sa.target, sizeof(sa.target), "%s", a->target);
	sa.deadline_s = r->deadline_s;
	unlink(m->p.status);
	unlink(m->p.sent);
	snprintf(rotated, sizeof(rotated), "%s.1", m->p.log);
	rename(m->p.log, rotated); /* a rerun keeps the previous run's log once */
	if (run_journal(r, TUAP__STEP_STATE__STATE_STARTED, -1, err) < 0)
		return -1;
	emit_started(r);
	if (spawn_supervisor(&sa, &m->sup, err) < 0) {
		run_finish(r, TUAP__STEP_STATE__STATE_FAILED, true, -1, "%s", err->msg);
		return 0;
	}
	return 0;
}
