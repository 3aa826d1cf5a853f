/* Programs run with a deadline for tuap-ctl doctor; see subproc.h. */
#include "subproc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool subproc_have(const char *name)
{
	const char *path = getenv("PATH");
	char full[4096];

	if (strchr(name, '/'))
		return access(name, X_OK) == 0;
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
	while (*path) {
		size_t n = strcspn(path, ":");

		if (n > 0 &&
		    snprintf(full, sizeof(full), "%.*s/%s", (int)n, path, name) <
			    (int)sizeof(full) &&
		    access(full, X_OK) == 0)
			return true;
		path += n;
		path += *path == ':';
	}
	return false;
}

static void child(const char *const argv[], int out, int err)
{
	int null = open("/dev/null", O_RDONLY);

	setpgid(0, 0);
	if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		_exit(127);
	setenv("LC_ALL", "C", 1);
	execvp(argv[0], (char *const *)argv);
	fprintf(stderr, "%s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Reads what is there of fd into b (kept up to SUBPROC_OUT_MAX); false at end of file. */
static bool drain(int fd, struct buf *b)
{
	char chunk[8192];
	ssize_t n = read(fd, chunk, sizeof(chunk));

	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return false;
	if (b->len < SUBPROC_OUT_MAX)
		buf_add(b, chunk,
			(size_t)n < SUBPROC_OUT_MAX - b->len ? (size_t)n
							     : SUBPROC_OUT_MAX - b->len);
	return true;
}

/* Waits for pid until deadline (ms, monotonic); kills its group after it. */
static int reap(pid_t pid, long long deadline, struct subproc *r)
{
	int st;

	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			return -1;
		if (now_ms() >= deadline && !r->timed_out) {
			r->timed_out = true;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			deadline = now_ms() + 5000;
		} else if (now_ms() >= deadline) {
			return -1; /* not even SIGKILL ended it: leave it */
		}
		usleep(10000);
	}
	r->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
}

int subproc_run(const char *const argv[], int timeout_ms, struct subproc *r)
{
	long long deadline = now_ms() + timeout_ms;
	int out[2] = {-1, -1}, err[2] = {-1, -1};
	bool open_out = true, open_err = true;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	r->code = -1;
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		buf_addf(&r->err, "pipe: %s", strerror(errno));
		goto out;
	}
	if ((pid = fork()) < 0) {
		buf_addf(&r->err, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child(argv, out[1], err[1]);
	setpgid(pid, pid); /* also here, so the kill below reaches the group in any case */
	close(out[1]);
	close(err[1]);
	out[1] = err[1] = -1;
	while ((open_out || open_err) && now_ms() < deadline) {
		struct pollfd p[2] = {{open_out ? out[0] : -1, POLLIN, 0},
				      {open_err ? err[0] : -1, POLLIN, 0}};
		int n = poll(p, 2, (int)(deadline - now_ms()));

		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (p[0].revents)
			open_out = drain(out[0], &r->out);
		if (p[1].revents)
			open_err = drain(err[0], &r->err);
	}
	if (reap(pid, (open_out || open_err) ? 0 : deadline, r) < 0)
		buf_addf(&r->err, "%s: could not be reaped", argv[0]);
out:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	return r->code == 0 && !r->timed_out ? 0 : -1;
}

void subproc_free(struct subproc *r)
{
	buf_free(&r->out);
	buf_free(&r->err);
}
