/* Shared by the agent step tests: an event collector, a loop that drives a run, temp dirs. */
#ifndef TUAP_TEST_AGENT_STEPS_UTIL_H
#define TUAP_TEST_AGENT_STEPS_UTIL_H

#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsutil.h"
#include "stepjournal.h"
#include "steps.h"

struct evlog {
	int started, progress, logs, finals;
	Tuap__StepState final;
	bool has_code;
	int code;
	char msg[1024];
	char **lines;
	size_t n_lines;
	uint64_t done, total;
	bool progress_monotonic;
};

static inline void evlog_init(struct evlog *l)
{
	memset(l, 0, sizeof(*l));
	l->progress_monotonic = true;
}

static inline void evlog_free(struct evlog *l)
{
	for (size_t i = 0; i < l->n_lines; i++)
		free(l->lines[i]);
	free(l->lines);
	evlog_init(l);
}

static inline void evlog_emit(void *ctx, const Tuap__StepEvent *ev)
{
	struct evlog *l = ctx;

	switch (ev->state) {
	case TUAP__STEP_STATE__STATE_STARTED:
		l->started++;
		break;
	case TUAP__STEP_STATE__STATE_PROGRESS:
		if (ev->done < l->done)
			l->progress_monotonic = false;
		l->progress++;
		l->done = ev->done;
		l->total = ev->total;
		break;
	case TUAP__STEP_STATE__STATE_LOG:
		l->logs++;
		if (ev->n_lines == 0 || ev->n_lines > STEP_LOG_BATCH)
			abort();
		l->lines = realloc(l->lines, (l->n_lines + ev->n_lines) * sizeof(char *));
		for (size_t i = 0; i < ev->n_lines; i++)
			l->lines[l->n_lines++] = strdup(ev->lines[i]);
		break;
	default:
		l->finals++;
		l->final = ev->state;
		l->has_code = ev->has_exit_code;
		l->code = ev->exit_code;
		snprintf(l->msg, sizeof(l->msg), "%s", ev->message ? ev->message : "");
		break;
	}
}

/* Index of the first line containing s at or after from, or -1. */
static inline long evlog_find(const struct evlog *l, const char *s, size_t from)
{
	for (size_t i = from; i < l->n_lines; i++)
		if (strstr(l->lines[i], s))
			return (long)i;
	return -1;
}

static inline void evlog_print(const struct evlog *l)
{
	for (size_t i = 0; i < l->n_lines; i++)
		fprintf(stderr, "  | %s\n", l->lines[i]);
	fprintf(stderr, "  final %d code %d msg '%s'\n", l->final, l->code, l->msg);
}

/* Whether the run ended in state want; when it did not, its events are printed (for the
 * failing assertion's reader). */
static inline bool evlog_final_is(const struct evlog *l, Tuap__StepState want)
{
	if (l->final == want)
		return true;
	evlog_print(l);
	return false;
}

static inline uint64_t test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Services run until it is done or max_ms pass; returns whether it is done. */
static inline bool drive(struct step_run *run, int max_ms)
{
	uint64_t end = test_now_ms() + (uint64_t)max_ms;

	while (!step_done(run) && test_now_ms() < end) {
		struct pollfd fds[8];
		size_t n = step_pollfds(run, fds, 8);
		int t = step_timeout_ms(run);

		if (t < 0 || t > 100)
			t = 100;
		poll(fds, n, t);
		step_service(run);
	}
	return step_done(run);
}

static inline int rm_cb(const char *p, const struct stat *st, int f, struct FTW *w)
{
	(void)st;
	(void)f;
	(void)w;
	remove(p);
	return 0;
}

static inline void rm_rf(const char *path)
{
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		abort();
	fputs(text, f);
	fclose(f);
}

/* A scratch directory for a step: DIR/state (the step journal, opened), DIR/srv (the site
 * root) and, with own_root, DIR/root/etc as the root the step works in (else "/"). Events go
 * to s->log. */
struct scratch {
	char dir[64], root[128], state[128], site[128];
	struct stepjournal *j;
	struct evlog log;
	struct step_env env;
};

static inline void scratch_init(struct scratch *s, const char *name, bool own_root)
{
	struct tuap_err err;
	char etc[200];

	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/tuap-%s-XXXXXX", name);
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->root, sizeof(s->root), "/");
	if (own_root) {
		snprintf(s->root, sizeof(s->root), "%s/root", s->dir);
		snprintf(etc, sizeof(etc), "%s/etc", s->root);
		assert_int_equal(fs_mkdir_p(etc, 0755, NULL), 0);
	}
	snprintf(s->state, sizeof(s->state), "%s/state", s->dir);
	snprintf(s->site, sizeof(s->site), "%s/srv", s->dir);
	if (stepjournal_open(&s->j, s->state, &err) < 0)
		fail_msg("%s", err.msg);
	evlog_init(&s->log);
	s->env.root = s->root;
	s->env.state_dir = s->state;
	s->env.site_root = s->site;
	s->env.journal = s->j;
	s->env.emit = evlog_emit;
	s->env.ctx = &s->log;
}

static inline void scratch_free(struct scratch *s)
{
	stepjournal_close(s->j);
	evlog_free(&s->log);
	rm_rf(s->dir);
}

#endif
