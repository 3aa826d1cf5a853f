/*
 * Running a program for tuap-ctl doctor: argv through execvp (never a shell), stdin from
 * /dev/null, LC_ALL=C (so its output can be parsed), stdout and stderr read apart up to a bound,
 * and a deadline: a program still running when it passes is killed (its whole process group)
 * and reported as timed out.
 */
#ifndef TUAP_SUBPROC_H
#define TUAP_SUBPROC_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define SUBPROC_OUT_MAX (4u << 20) /* bytes kept of stdout and of stderr each */

struct subproc {
	int code;	/* exit status, or 128 + signal; -1 when it could not be started */
	bool timed_out; /* killed at the deadline */
	struct buf out, err;
};

/* Whether name is an executable in $PATH (or, with a '/', at that path). */
bool subproc_have(const char *name);

/* Runs argv[0] with a deadline of timeout_ms; r is filled in any case (free with
 * subproc_free). Returns 0 when it ran and exited 0, else -1. */
int subproc_run(const char *const argv[], int timeout_ms, struct subproc *r);
void subproc_free(struct subproc *r);

#endif
