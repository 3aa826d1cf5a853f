/*
 * agent/steps/stepjournal.c: records written and read back, reload, torn and corrupt lines,
 * the records a Hello carries, and the journal's bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_steps_util.h"
#include "fsutil.h"
#include "hash.h"
#include "stepjournal.h"
#include "proc.h"
#include "steps.h"
#include "steps/mail.h"
#include "steps/users.h"

static struct stepjournal *open_journal(const char *dir)
{
	struct stepjournal *j;
	struct tuap_err err;

	if (stepjournal_open(&j, dir, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return NULL;
	}
	return j;
}

static void jrec(struct stepjournal *j, const char *job, Tuap__Step step, Tuap__StepState st,
		 int code)
{
	struct stepjournal_rec r;
	struct tuap_err err;

	memset(&r, 0, sizeof(r));
	snprintf(r.job, sizeof(r.job), "%s", job);
	snprintf(r.domain, sizeof(r.domain), "site.example");
	r.step = step;
	r.state = st;
	r.has_exit_code = code >= 0;
	r.exit_code = code;
	assert_int_equal(stepjournal_append(j, &r, &err), 0);
}

static void test_journal(void **state)
{
	char dir[] = "/tmp/tuap-journal-XXXXXX", path[256];
	const struct stepjournal_rec *r;
	Tuap__StepRecord **recs;
	struct tuap_err err;
	struct stepjournal *j;
	size_t n;
	int fd;

	assert_non_null(mkdtemp(dir));
	assert_non_null(j = open_journal(dir));
	jrec(j, "job1", TUAP__STEP__STEP_USERS, TUAP__STEP_STATE__STATE_STARTED, -1);
	jrec(j, "job1", TUAP__STEP__STEP_USERS, TUAP__STEP_STATE__STATE_DONE, 0);
	jrec(j, "job1", TUAP__STEP__STEP_MAKE, TUAP__STEP_STATE__STATE_STARTED, -1);
	jrec(j, "job2", TUAP__STEP__STEP_DATA, TUAP__STEP_STATE__STATE_FAILED, 3);
	stepjournal_close(j);

	/* a torn last record and a corrupted one in the middle */
	snprintf(path, sizeof(path), "%s/journal", dir);
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(write(fd, "J1 1700000000 job3 - mail done 0 1234", 37) == 37);
	close(fd);
	assert_non_null(j = open_journal(dir));
	assert_int_equal(stepjournal_count(j), 3);
	r = stepjournal_get(j, "job1", TUAP__STEP__STEP_USERS);
	assert_non_null(r);
	assert_int_equal(r->state, TUAP__STEP_STATE__STATE_DONE);
	assert_string_equal(r->domain, "site.example");
	r = stepjournal_get(j, "job1", TUAP__STEP__STEP_MAKE);
	assert_int_equal(r->state, TUAP__STEP_STATE__STATE_STARTED);
	assert_false(r->has_exit_code);
	r = stepjournal_get(j, "job2", TUAP__STEP__STEP_DATA);
	assert_int_equal(r->exit_code, 3);
	assert_null(stepjournal_get(j, "job3", TUAP__STEP__STEP_MAIL));
	/* the next record starts its own line */
	jrec(j, "job3", TUAP__STEP__STEP_MAIL, TUAP__STEP_STATE__STATE_DONE, 0);

	assert_int_equal(stepjournal_records(j, false, &recs, &n, &err), 0);
	assert_int_equal(n, 3); /* users done, data failed, mail done */
	stepjournal_records_free(recs, n);
	assert_int_equal(stepjournal_records(j, true, &recs, &n, &err), 0);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++)
		if (recs[i]->step == TUAP__STEP__STEP_MAKE)
			assert_int_equal(recs[i]->state, TUAP__STEP_STATE__STATE_INTERRUPTED);
	stepjournal_records_free(recs, n);
	stepjournal_close(j);

	/* flip a byte in the first record: its checksum no longer matches */
	fd = open(path, O_RDWR);
	assert_true(pwrite(fd, "X", 1, 16) == 1);
	close(fd);
	assert_non_null(j = open_journal(dir));
	r = stepjournal_get(j, "job1", TUAP__STEP__STEP_USERS);
	assert_non_null(r); /* the DONE record still stands */
	assert_non_null(stepjournal_get(j, "job3", TUAP__STEP__STEP_MAIL));
	assert_int_equal(stepjournal_get(j, "job3", TUAP__STEP__STEP_MAIL)->state,
			 TUAP__STEP_STATE__STATE_DONE);
	stepjournal_close(j);

	rm_rf(dir);
}

static void test_journal_bounded(void **state)
{
	static const char *steps[] = {"users", "packages", "mail", "data", "make"};
	char dir[] = "/tmp/tuap-journal-XXXXXX", path[256], line[256];
	struct stepjournal *j;
	struct stat st;
	FILE *f;

	/* a journal just under STEPJOURNAL_MAX_BYTES, written as the agent writes it */
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal", dir);
	assert_non_null(f = fopen(path, "w"));
	for (int i = 0; ftell(f) < STEPJOURNAL_MAX_BYTES - 40; i++) {
		int n = snprintf(line, sizeof(line), "J1 %d job%d site.example %s %s -",
				 1700000000 + i, i / 5 % 2000, steps[i % 5],
				 i % 2 ? "done" : "started");

		fprintf(f, "%s %08x\n", line, hash_fnv1a(line, (size_t)n));
	}
	fclose(f);
	assert_non_null(j = open_journal(dir));
	assert_int_equal(stepjournal_count(j), STEPJOURNAL_MAX_RECORDS);
	assert_null(stepjournal_get(j, "job1", TUAP__STEP__STEP_USERS)); /* the oldest forgotten */
	jrec(j, "last", TUAP__STEP__STEP_MAKE, TUAP__STEP_STATE__STATE_DONE, 0);
	jrec(j, "last", TUAP__STEP__STEP_DATA, TUAP__STEP_STATE__STATE_DONE, 0);
	stepjournal_close(j);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size < STEPJOURNAL_MAX_BYTES / 2); /* compacted */
	assert_non_null(j = open_journal(dir));
	assert_int_equal(stepjournal_count(j), STEPJOURNAL_MAX_RECORDS);
	assert_non_null(stepjournal_get(j, "last", TUAP__STEP__STEP_MAKE));
	assert_non_null(stepjournal_get(j, "last", TUAP__STEP__STEP_DATA));
	stepjournal_close(j);
	rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_journal),
		cmocka_unit_test(test_journal_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
