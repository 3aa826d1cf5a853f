/*
 * Child processes for the agent's steps. Commands are argv arrays run with execve (never a
 * shell), in a sanitized environment (PATH, LANG=C.UTF-8, HOME, DEBIAN_FRONTEND plus what the
 * caller adds), stdin from /dev/null, stdout and stderr merged into one non-blocking pipe the
 * caller reads (or into a descriptor the caller gives), every other signal disposition reset.
 */
#ifndef TUAP_PROC_H
#define TUAP_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

#define PROC_PATH    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define PROC_ENV_MAX 16 /* entries, base environment included */

struct proc {
	pid_t pid; /* -1 when none */
	int out;   /* read end of the output pipe (O_NONBLOCK, O_CLOEXEC); -1 when none */
	bool pgrp; /* the child leads its own process group */
};

struct proc_opts {
	const char *cwd;	/* NULL: the agent's */
	const char *const *env; /* extra "K=V" entries, NULL-terminated; may be NULL */
	int out_fd;		/* >= 0: stdout+stderr go there and no pipe is made */
	bool new_pgrp;		/* own process group, so proc_signal reaches its children */
};

#define PROC_OPTS_INIT                                                                             \
	{                                                                                          \
		NULL, NULL, -1, false                                                              \
	}

/* Finds name in PROC_PATH (a name with a '/' is taken as it is) and writes the executable's
 * path to path. Returns 0, or -1 when there is no such executable. */
int proc_which(const char *name, char *path, size_t len);
/* Fills envp (at most max entries, NULL-terminated) with the base environment plus extra.
 * The strings are static or extra's own. Returns the number of entries. */
size_t proc_env(const char *const *extra, const char **envp, size_t max);
/* Starts argv[0] (looked up with proc_which) with opts (NULL: defaults). */
int proc_spawn(struct proc *p, const char *const argv[], const struct proc_opts *opts,
	       struct tuap_err *err);
/* Reaps the child without blocking: 1 when it has exited (code: its exit status, or 128 +
 * signal number), 0 while it runs, -1 on error (no such child). */
int proc_reap(struct proc *p, int *code);
/* Sends sig to the child (to its process group when it has one). */
void proc_signal(const struct proc *p, int sig);
/* Closes the output pipe. The child, if still running, is not touched. */
void proc_close(struct proc *p);
/* The exit code a wait status stands for: exit status, or 128 + signal. */
int proc_code(int wstatus);

#endif
