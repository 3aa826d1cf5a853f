/*
 * The make step with real make in scratch directories: output streamed in order with the exit
 * code, pre_make_script (plain file via sh, and executable), never twice for a job, reattaching
 * to a live supervisor after the agent side is freed, INTERRUPTED when the supervisor is gone,
 * rerun, deadline and cancel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_steps_util.h"
#include "fsutil.h"
#include "stepjournal.h"
#include "steps.h"

#define DOMAIN "site.example"

struct t {
	struct scratch sc;
	char tree[192];
};

static const char *MAKEFILE = "all:\n"
			      "\t@i=1; while [ $$i -le 300 ]; do echo line $$i; i=$$((i+1)); done\n"
			      "\t@echo to-stderr >&2\n"
			      "\t@echo x >> count\n"
			      "bad:\n"
			      "\t@echo failing\n"
			      "\t@false\n"
			      "slow:\n"
			      "\t@echo begin; echo x >> count\n"
			      "\t@echo $$$$ > shell.pid; test -f fast || sleep 30\n"
			      "\t@echo end\n";

static void t_init(struct t *t)
{
	char path[300];

	memset(t, 0, sizeof(*t));
	scratch_init(&t->sc, "make", false);
	snprintf(t->tree, sizeof(t->tree), "%s/" DOMAIN, t->sc.site);
	assert_int_equal(fs_mkdir_p(t->tree, 0755, NULL), 0);
	snprintf(path, sizeof(path), "%s/Makefile", t->tree);
	write_text(path, MAKEFILE);
}

static void t_free(struct t *t)
{
	scratch_free(&t->sc);
}

static struct step_run *t_start(struct t *t, const char *job, const char *target,
				const char *script, bool rerun, uint32_t deadline)
{
	Tuap__StepRequest req = TUAP__STEP_REQUEST__INIT;
	Tuap__MakeArgs ma = TUAP__MAKE_ARGS__INIT;
	struct step_run *run;
	struct tuap_err err;

	req.step = TUAP__STEP__STEP_MAKE;
	req.args_case = TUAP__STEP_REQUEST__ARGS_MAKE;
	req.make = &ma;
	req.has_deadline_s = deadline > 0;
	req.deadline_s = deadline;
	ma.target = (char *)target;
	ma.pre_make_script = (char *)script;
	ma.has_rerun = rerun;
	ma.rerun = rerun;
	assert_int_equal(step_start(&t->sc.env, job, DOMAIN, &req, &run, &err), 0);
	return run;
}

static int count_runs(struct t *t)
{
	char path[300], *text;
	int n = 0;

	snprintf(path, sizeof(path), "%s/count", t->tree);
	if (!(text = fs_read_file(path, 4096, NULL, NULL)))
		return 0;
	for (char *p = text; *p; p++)
		n += *p == '\n';
	free(text);
	return n;
}

/* Drives run until a line containing s was emitted. */
static bool drive_until_line(struct t *t, struct step_run *run, const char *s, int max_ms)
{
	uint64_t end = test_now_ms() + (uint64_t)max_ms;

	while (evlog_find(&t->sc.log, s, 0) < 0 && !step_done(run) && test_now_ms() < end)
		drive(run, 50);
	return evlog_find(&t->sc.log, s, 0) >= 0;
}

static void test_make_streams(void **state)
{
	struct t t;
	struct step_run *run;
	char path[300];
	long at;

	t_init(&t);
	run = t_start(&t, "job1", NULL, NULL, false, 0);
	assert_int_equal(t.sc.log.started, 1);
	assert_true(drive(run, 20000));
	assert_true(evlog_final_is(&t.sc.log, TUAP__STEP_STATE__STATE_DONE));
	assert_true(t.sc.log.has_code);
	assert_int_equal(t.sc.log.code, 0);
	/* every line, in order, batched */
	at = 0;
	for (int i = 1; i <= 300; i++) {
		char want[32];

		snprintf(want, sizeof(want), "line %d", i);
		at = evlog_find(&t.sc.log, want, (size_t)at);
		assert_true(at >= 0);
		assert_string_equal(t.sc.log.lines[at], want);
	}
	assert_true(evlog_find(&t.sc.log, "to-stderr", (size_t)at) > at);
	assert_true(t.sc.log.logs >= 300 / STEP_LOG_BATCH);
	step_free(run);
	assert_int_equal(stepjournal_get(t.sc.j, "job1", TUAP__STEP__STEP_MAKE)->state,
			 TUAP__STEP_STATE__STATE_DONE);
	snprintf(path, sizeof(path), "%s/jobs/job1/make.status", t.sc.state);
	assert_true(fs_exists(path));
	assert_int_equal(count_runs(&t), 1);

	/* never twice for the job */
	evlog_free(&t.sc.log);
	run = t_start(&t, "job1", NULL, NULL, false, 0);
	assert_true(step_done(run));
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_DONE);
	assert_non_null(strstr(t.sc.log.msg, "already done"));
	step_free(run);
	usleep(200000);
	assert_int_equal(count_runs(&t), 1);

	/* a failing target: FAILED with make's exit code */
	evlog_free(&t.sc.log);
	run = t_start(&t, "job2", "bad", NULL, false, 0);
	assert_true(drive(run, 20000));
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_FAILED);
	assert_int_equal(t.sc.log.code, 2);
	assert_non_null(strstr(t.sc.log.msg, "make exited with code 2"));
	assert_true(evlog_find(&t.sc.log, "failing", 0) >= 0);
	step_free(run);
	/* and a failed make is not run again either */
	evlog_free(&t.sc.log);
	run = t_start(&t, "job2", "bad", NULL, false, 0);
	assert_true(step_done(run));
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_FAILED);
	assert_int_equal(t.sc.log.code, 2);
	step_free(run);
	t_free(&t);
}

static void test_make_pre_script(void **state)
{
	struct t t;
	struct step_run *run;
	char path[300];

	t_init(&t);
	snprintf(path, sizeof(path), "%s/setup.sh", t.tree);
	write_text(path, "echo pre via sh; echo $0\n"); /* not executable: run with sh */
	run = t_start(&t, "job1", NULL, "setup.sh", false, 0);
	assert_true(drive(run, 20000));
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_DONE);
	assert_int_equal(evlog_find(&t.sc.log, "pre via sh", 0), 0);
	assert_true(evlog_find(&t.sc.log, "line 1", 0) > 0);
	step_free(run);

	evlog_free(&t.sc.log);
	snprintf(path, sizeof(path), "%s/bin", t.tree);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/bin/pre", t.tree);
	write_text(path, "#!/bin/sh\necho executable pre\nexit 4\n");
	chmod(path, 0755);
	run = t_start(&t, "job2", NULL, "bin/pre", false, 0);
	assert_true(drive(run, 20000));
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_FAILED);
	assert_int_equal(t.sc.log.code, 4);
	assert_non_null(strstr(t.sc.log.msg, "pre_make_script exited with code 4"));
	assert_true(evlog_find(&t.sc.log, "executable pre", 0) >= 0);
	assert_true(evlog_find(&t.sc.log, "line 1", 0) < 0); /* make did not run */
	step_free(run);

	/* a script path leaving the tree is refused before anything runs */
	evlog_free(&t.sc.log);
	run = t_start(&t, "job3", NULL, "../../etc/evil", false, 0);
	assert_true(step_done(run));
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_FAILED);
	assert_non_null(strstr(t.sc.log.msg, "pre_make_script"));
	step_free(run);
	run = t_start(&t, "job4", "-f/etc/passwd", NULL, false, 0);
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_FAILED);
	step_free(run);
	t_free(&t);
}

static pid_t read_pid(const char *path)
{
	char *text = NULL;
	pid_t pid = 0;

	for (int i = 0; i < 100 && !(text = fs_read_file(path, 100, NULL, NULL)); i++)
		usleep(20000);
	if (text)
		pid = (pid_t)atol(text);
	free(text);
	return pid;
}

/* Signals the process group of pid (a recipe's shell, in make's group); never anything else. A
 * shell that is gone already (its make went with a killed supervisor) needs no signal. */
static void kill_group_of(pid_t pid, int sig)
{
	pid_t pg;

	assert_true(pid > 1);
	pg = getpgid(pid);
	if (pg < 0 && errno == ESRCH)
		return;
	assert_true(pg > 1);
	assert_int_not_equal(pg, getpgrp());
	kill(-pg, sig);
}

static void test_make_reattach(void **state)
{
	struct t t;
	struct step_run *run;
	char path[300];

	t_init(&t);
	run = t_start(&t, "job1", "slow", NULL, false, 0);
	assert_true(drive_until_line(&t, run, "begin", 10000));
	step_free(run); /* the agent goes away; make goes on */

	/* a new agent finds it in the journal: reattaches, does not resend "begin", sees the end */
	evlog_free(&t.sc.log);
	{
		struct stepjournal *j;
		struct tuap_err err;

		stepjournal_close(t.sc.j);
		assert_int_equal(stepjournal_open(&j, t.sc.state, &err), 0);
		t.sc.j = t.sc.env.journal = j;
		assert_int_equal(step_recover(&t.sc.env, &run, &err), 1);
	}
	assert_string_equal(step_job(run), "job1");
	assert_int_equal(step_which(run), TUAP__STEP__STEP_MAKE);
	assert_false(step_done(run));
	assert_true(evlog_find(&t.sc.log, "reattached", 0) >= 0);
	snprintf(path, sizeof(path), "%s/fast", t.tree);
	write_text(path, "");
	/* the running sleep 30 still has to go: stop the shell's group */
	snprintf(path, sizeof(path), "%s/shell.pid", t.tree);
	kill_group_of(read_pid(path), SIGTERM);
	assert_true(drive(run, 20000));
	assert_true(evlog_find(&t.sc.log, "begin", 0) < 0);
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_FAILED); /* sleep was killed */
	step_free(run);
	assert_int_equal(count_runs(&t), 1);
	{
		struct tuap_err err;

		assert_int_equal(step_recover(&t.sc.env, &run, &err),
				 0); /* nothing left to recover */
		assert_null(run);
	}

	/* rerun: runs again, now quickly */
	evlog_free(&t.sc.log);
	run = t_start(&t, "job1", "slow", NULL, true, 0);
	assert_true(drive(run, 20000));
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_DONE);
	assert_true(evlog_find(&t.sc.log, "end", 0) >= 0);
	step_free(run);
	assert_int_equal(count_runs(&t), 2);
	snprintf(path, sizeof(path), "%s/jobs/job1/make.log.1", t.sc.state);
	assert_true(fs_exists(path)); /* the first run's log */
	t_free(&t);
}

static void test_make_supervisor_gone(void **state)
{
	struct t t;
	struct step_run *run;
	char path[300];
	pid_t sup, shell;

	t_init(&t);
	run = t_start(&t, "job1", "slow", NULL, false, 0);
	assert_true(drive_until_line(&t, run, "begin", 10000));
	step_free(run);
	/* the supervisor dies (OOM killer, kill -9), and make and its recipe with it */
	snprintf(path, sizeof(path), "%s/jobs/job1/make.pid", t.sc.state);
	sup = read_pid(path);
	assert_true(sup > 1);
	snprintf(path, sizeof(path), "%s/shell.pid", t.tree);
	shell = read_pid(path);
	/* supervisor first: killed the other way round, it may see make die and record that
	 * (FAILED) before it is killed itself */
	assert_int_equal(kill(sup, SIGKILL), 0);
	kill_group_of(shell, SIGKILL);
	for (int i = 0; i < 100 && kill(sup, 0) == 0; i++) {
		char stat[64], *text;

		/* a zombie (no reaper in this container) counts as gone */
		snprintf(stat, sizeof(stat), "/proc/%d/stat", sup);
		text = fs_read_file(stat, 4096, NULL, NULL);
		if (text && strstr(text, ") Z "))
			i = 100;
		free(text);
		usleep(20000);
	}

	evlog_free(&t.sc.log);
	run = t_start(&t, "job1", "slow", NULL, false, 0);
	assert_true(drive(run, 10000));
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_INTERRUPTED);
	assert_non_null(strstr(t.sc.log.msg, "interrupted"));
	step_free(run);
	assert_int_equal(stepjournal_get(t.sc.j, "job1", TUAP__STEP__STEP_MAKE)->state,
			 TUAP__STEP_STATE__STATE_INTERRUPTED);
	/* and it stays so: not restarted */
	evlog_free(&t.sc.log);
	run = t_start(&t, "job1", "slow", NULL, false, 0);
	assert_true(step_done(run));
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_INTERRUPTED);
	step_free(run);
	usleep(200000);
	assert_int_equal(count_runs(&t), 1);
	t_free(&t);
}

static void test_make_deadline_and_cancel(void **state)
{
	struct t t;
	struct step_run *run;
	uint64_t t0;

	t_init(&t);
	t0 = test_now_ms();
	run = t_start(&t, "job1", "slow", NULL, false, 1);
	assert_true(drive(run, 20000));
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_FAILED);
	assert_non_null(strstr(t.sc.log.msg, "deadline"));
	assert_true(test_now_ms() - t0 < 8000);
	step_free(run);

	evlog_free(&t.sc.log);
	run = t_start(&t, "job2", "slow", NULL, false, 0);
	assert_true(drive_until_line(&t, run, "begin", 10000));
	step_cancel(run, "operator asked");
	assert_true(drive(run, 20000));
	assert_int_equal(t.sc.log.final, TUAP__STEP_STATE__STATE_FAILED);
	assert_non_null(strstr(t.sc.log.msg, "cancelled: operator asked"));
	step_free(run);
	t_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_make_streams),
		cmocka_unit_test(test_make_pre_script),
		cmocka_unit_test(test_make_reattach),
		cmocka_unit_test(test_make_supervisor_gone),
		cmocka_unit_test(test_make_deadline_and_cancel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
