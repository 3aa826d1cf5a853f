/*
 * What the libFuzzer harnesses that drive a whole side (fuzz_engine: tuapd's dispatch,
 * fuzz_agent: the agent's) share: a scratch directory made once per process on /dev/shm,
 * emptied in-process after every input (a fork per input halves the rate), log lines made and
 * dropped (stderr would be the bottleneck), and the check that whatever the side sends is valid
 * in its direction.
 */
#ifndef TUAP_FUZZ_COMMON_H
#define TUAP_FUZZ_COMMON_H

#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "wire.h"

static inline bool fuzz_drop_line(enum log_level level, const struct log_about *about,
				  const char *msg)
{
	(void)level;
	(void)about;
	(void)msg;
	return true;
}

static inline int fuzz_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Removes path and everything under it (FTW_PHYS: links are removed, never followed). */
static inline void fuzz_rm_tree(const char *path)
{
	nftw(path, fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char fuzz_scratch[64];

static inline void fuzz_rm_scratch(void)
{
	fuzz_rm_tree(fuzz_scratch);
}

/* Once per process: logs dropped, root = a new directory "/dev/shm/tuap-fuzz-NAME-XXXXXX",
 * removed at exit. */
static inline void fuzz_setup(const char *name, char *root, size_t len)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	log_set_writer(fuzz_drop_line);
	snprintf(fuzz_scratch, sizeof(fuzz_scratch), "%s/tuap-fuzz-%s-XXXXXX", base, name);
	if (!mkdtemp(fuzz_scratch))
		abort();
	snprintf(root, len, "%s", fuzz_scratch);
	atexit(fuzz_rm_scratch);
}

/* Aborts when env, sent by `who`, fails the checks its peer applies in direction dir. */
static inline void fuzz_must_encode(const char *who, const Tuap__Envelope *env, enum wire_dir dir)
{
	struct buf b = BUF_INIT;
	struct tuap_err e;

	if (wire_check(env, dir, &e) != WIRE_OK || wire_encode(env, &b, &e) < 0) {
		fprintf(stderr, "%s sent %s that fails its own checks: %s\n", who,
			wire_body_name(env->body_case), e.msg);
		abort();
	}
	buf_free(&b);
}

#endif
