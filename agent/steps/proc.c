/* Child processes with argv arrays and merged output; see proc.h. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const base_env[] = {
	"PATH=" PROC_PATH, "LANG=C.UTF-8", "HOME=/root", "DEBIAN_FRONTEND=noninteractive", NULL,
};

static int is_exec(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) &&
	       access(path, X_OK) == 0;
}

int proc_which(const char *name, char *path, size_t len)
{
	const char *dirs = PROC_PATH;

	if (!name || !*name)
		return -1;
	if (strchr(name, '/')) {
		if ((size_t)snprintf(path, len, "%s", name) >= len)
			return -1;
		return is_exec(path) ? 0 : -1;
	}
	while (*dirs) {
		size_t n = strcspn(dirs, ":");

		if ((size_t)snprintf(path, len, "%.*s/%s", (int)n, dirs, name) < len &&
		    is_exec(path))
			return 0;
		dirs += n;
		if (*dirs == ':')
			dirs++;
	}
	return -1;
}

size_t proc_env(const char *const *extra, const char **envp, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; base_env[i] && n + 1 < max; i++) {
		int overridden = 0;
		size_t klen = strcspn(base_env[i], "=") + 1;

		for (size_t j = 0; extra && extra[j]; j++)
			if (strncmp(extra[j], base_env[i], klen) == 0)
				overridden = 1;
		if (!overridden)
			envp[n++] = base_env[i];
	}
	for (size_t j = 0; extra && extra[j] && n + 1 < max; j++)
		envp[n++] = extra[j];
	envp[n] = NULL;
	return n;
}

int proc_spawn(struct proc *p, const char *const argv[], const struct proc_opts *opts,
	       struct tuap_err *err)
{
	static const struct proc_opts defaults = PROC_OPTS_INIT;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	const char *envp[PROC_ENV_MAX + 1];
	char path[4096];
	int pfd[2] = {-1, -1}, out, rc = -1, e;
	sigset_t none, all;
	short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;

	p->pid = -1;
	p->out = -1;
	p->pgrp = false;
	if (!opts)
		opts = &defaults;
	if (proc_which(argv[0], path, sizeof(path)) < 0)
		return err_set(err, "%s: command not found (PATH=%s)", argv[0], PROC_PATH);
	proc_env(opts->env, envp, PROC_ENV_MAX + 1);
	out = opts->out_fd;
	if (out < 0) {
		if (pipe2(pfd, O_CLOEXEC) < 0)
			return err_set(err, "pipe: %s", strerror(errno));
		out = pfd[1];
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	if (opts->new_pgrp) {
		flags |= POSIX_SPAWN_SETPGROUP;
		posix_spawnattr_setpgroup(&attr, 0);
	}
	posix_spawnattr_setflags(&attr, flags);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out, 1);
	posix_spawn_file_actions_adddup2(&fa, out, 2);
	if (opts->cwd)
		posix_spawn_file_actions_addchdir_np(&fa, opts->cwd);
	e = posix_spawn(&p->pid, path, &fa, &attr, (char *const *)argv, (char *const *)envp);
	if (e != 0) {
		p->pid = -1;
		err_set(err, "%s: cannot run: %s", argv[0], strerror(e));
		goto out;
	}
	p->pgrp = opts->new_pgrp;
	if (pfd[0] >= 0) {
		fcntl(pfd[0], F_SETFL, fcntl(pfd[0], F_GETFL) | O_NONBLOCK);
		p->out = pfd[0];
		pfd[0] = -1;
	}
	rc = 0;
out:
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	return rc;
}

int proc_code(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return -1;
}

int proc_reap(struct proc *p, int *code)
{
	int st;
	pid_t r;

	if (p->pid <= 0)
		return -1;
	do
		r = waitpid(p->pid, &st, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	if (r == 0)
		return 0;
	*code = proc_code(st);
	p->pid = -1;
	return 1;
}

void proc_signal(const struct proc *p, int sig)
{
	if (p->pid <= 0)
		return;
	if (p->pgrp)
		kill(-p->pid, sig);
	else
		kill(p->pid, sig);
}

void proc_close(struct proc *p)
{
	if (p->out >= 0)
		close(p->out);
	p->out = -1;
}
