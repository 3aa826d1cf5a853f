/*
 * The agent's own journal, STATE_DIR/journal: one text line per step boundary (started, done,
 * failed, interrupted) of a job, appended and fsync'd before the agent acts on it. Read at
 * start-up, it answers which steps of which job are finished (Hello.steps) so that a restarted
 * agent never repeats a finished step nor starts a job's make twice.
 *
 * Line: "J1 UNIX JOB DOMAIN STEP STATE EXIT SUM\n" (DOMAIN and EXIT "-" when absent, SUM the
 * FNV-1a hash of what precedes it). A line that does not parse or whose sum is wrong (a torn
 * write, a flipped byte) is ignored; a torn tail is cut off before the next append. The file is
 * bounded: past JOURNAL_MAX_BYTES it is rewritten atomically with only the latest record of each
 * (job, step); at most JOURNAL_MAX_RECORDS are kept, the least recently updated forgotten first.
 */
#ifndef TUAP_AGENT_JOURNAL_H
#define TUAP_AGENT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "tuap.pb-c.h"

#define JOURNAL_JOB_MAX	    64
#define JOURNAL_DOMAIN_MAX  253
#define JOURNAL_MAX_BYTES   (1024 * 1024)
#define JOURNAL_MAX_RECORDS 1280 /* 256 jobs of 5 steps */

struct journal_rec {
	char job[JOURNAL_JOB_MAX + 1];
	char domain[JOURNAL_DOMAIN_MAX + 1]; /* "" when not known */
	Tuap__Step step;
	Tuap__StepState state; /* STARTED, DONE, FAILED or INTERRUPTED */
	bool has_exit_code;
	int exit_code;
	uint64_t unix_time; /* 0 in journal_append: now */
};

struct journal;

/* Opens (creating STATE_DIR and the file, 0700/0600) and loads the journal. Free with
 * journal_close. */
int journal_open(struct journal **jp, const char *state_dir, struct tuap_err *err);
void journal_close(struct journal *j);
/* Appends rec and fsyncs it; the in-memory view is updated only when that succeeded. */
int journal_append(struct journal *j, const struct journal_rec *rec, struct tuap_err *err);
/* The latest record of a job's step, or NULL. Valid until the next append or close. */
const struct journal_rec *journal_get(const struct journal *j, const char *job, Tuap__Step step);
/* The latest record of every (job, step), in no particular order:
 * journal_at(j, 0..journal_count-1). */
size_t journal_count(const struct journal *j);
const struct journal_rec *journal_at(const struct journal *j, size_t i);
/* Builds Hello.steps: every latest record whose step has ended (DONE, FAILED, INTERRUPTED),
 * plus STARTED ones reported as INTERRUPTED when interrupted_started is set (what a freshly
 * started agent says about steps it is not running). Caller frees with journal_records_free. */
int journal_records(const struct journal *j, bool interrupted_started, Tuap__StepRecord ***out,
		    size_t *n, struct tuap_err *err);
void journal_records_free(Tuap__StepRecord **recs, size_t n);

/* 1 when s is an acceptable job id: 1..JOURNAL_JOB_MAX of [A-Za-z0-9._-], not starting with
 * '.' or '-' (it becomes a file name). */
int journal_job_ok(const char *s);
const char *journal_step_name(Tuap__Step step);
const char *journal_state_name(Tuap__StepState state);

#endif
