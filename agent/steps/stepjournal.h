/*
 * The agent's own journal, STATE_DIR/journal: one text line per step boundary (started, done,
 * failed, interrupted) of a job, appended and fsync'd before the agent acts on it. Read at
 * start-up, it answers which steps of which job are finished (Hello.steps) so that a restarted
 * agent never repeats a finished step nor starts a job's make twice.
 *
 * Line: "J1 UNIX JOB DOMAIN STEP STATE EXIT SUM\n" (DOMAIN and EXIT "-" when absent, SUM the
 * FNV-1a hash of what precedes it). A line that does not parse or whose sum is wrong (a torn
 * write, a flipped byte) is ignored; a torn tail is cut off before the next append. The file is
 * bounded: past STEPJOURNAL_MAX_BYTES it is rewritten atomically with only the latest record of
 * each (job, step); at most STEPJOURNAL_MAX_RECORDS are kept, the least recently updated forgotten
 * first.
 */
#ifndef TUAP_STEPJOURNAL_H
#define TUAP_STEPJOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "tuap.pb-c.h"
#include "valid.h"

#define STEPJOURNAL_JOB_MAX	VALID_JOB_MAX
#define STEPJOURNAL_DOMAIN_MAX	VALID_DOMAIN_MAX
#define STEPJOURNAL_MAX_BYTES	(1024 * 1024)
#define STEPJOURNAL_MAX_RECORDS 1280 /* 256 jobs of 5 steps */

struct stepjournal_rec {
	char job[STEPJOURNAL_JOB_MAX + 1];
	char domain[STEPJOURNAL_DOMAIN_MAX + 1]; /* "" when not known */
	Tuap__Step step;
	Tuap__StepState state; /* STARTED, DONE, FAILED or INTERRUPTED */
	bool has_exit_code;
	int exit_code;
	uint64_t unix_time; /* 0 in stepjournal_append: now */
};

struct stepjournal;

/* Opens (creating STATE_DIR and the file, 0700/0600) and loads the journal. Free with
 * stepjournal_close. */
int stepjournal_open(struct stepjournal **jp, const char *state_dir, struct tuap_err *err);
void stepjournal_close(struct stepjournal *j);
/* Appends rec and fsyncs it; the in-memory view is updated only when that succeeded. */
int stepjournal_append(struct stepjournal *j, const struct stepjournal_rec *rec,
		       struct tuap_err *err);
/* The latest record of a job's step, or NULL. Valid until the next append or close. */
const struct stepjournal_rec *stepjournal_get(const struct stepjournal *j, const char *job,
					      Tuap__Step step);
/* The latest record of every (job, step), in no particular order:
 * stepjournal_at(j, 0..stepjournal_count-1). */
size_t stepjournal_count(const struct stepjournal *j);
const struct stepjournal_rec *stepjournal_at(const struct stepjournal *j, size_t i);
/* Builds Hello.steps: every latest record whose step has ended (DONE, FAILED, INTERRUPTED),
 * plus STARTED ones reported as INTERRUPTED when interrupted_started is set (what a freshly
 * started agent says about steps it is not running). Caller frees with stepjournal_records_free. */
int stepjournal_records(const struct stepjournal *j, bool interrupted_started,
			Tuap__StepRecord ***out, size_t *n, struct tuap_err *err);
void stepjournal_records_free(Tuap__StepRecord **recs, size_t n);

#endif
