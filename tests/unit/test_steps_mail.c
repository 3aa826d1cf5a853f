/*
 * agent/steps/mail.c: the /etc/aliases edit and the mail step in a scratch root.
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
#include "stepjournal.h"
#include "proc.h"
#include "steps.h"
#include "steps/mail.h"
#include "steps/users.h"

static void test_aliases(void **state)
{
	bool changed;
	char *t, *t2;

	t = aliases_set_root("# aliases\npostmaster: root\nroot: bob,\n  carl\nRoot : again\n"
			     "www: root\n",
			     "ops@example.org", &changed);
	assert_true(changed);
	assert_string_equal(t, "# aliases\npostmaster: root\nroot: ops@example.org\nwww: root\n");
	t2 = aliases_set_root(t, "ops@example.org", &changed);
	assert_false(changed);
	free(t2);
	free(t);
	t = aliases_set_root("postmaster: root", "a@b.c", &changed);
	assert_string_equal(t, "postmaster: root\nroot: a@b.c\n");
	free(t);
	t = aliases_set_root(NULL, "a@b.c", &changed);
	assert_string_equal(t, "root: a@b.c\n");
	free(t);
}

static void test_mail_step(void **state)
{
	Tuap__StepRequest req = TUAP__STEP_REQUEST__INIT;
	Tuap__MailArgs mail = TUAP__MAIL_ARGS__INIT;
	struct scratch s;
	struct step_run *run;
	struct tuap_err err;
	char path[256], *text;

	scratch_init(&s, "steps", true);
	snprintf(path, sizeof(path), "%s/etc/aliases", s.root);
	write_text(path, "postmaster: root\nroot: old@example.org\n");
	chmod(path, 0640);
	req.step = TUAP__STEP__STEP_MAIL;
	req.args_case = TUAP__STEP_REQUEST__ARGS_MAIL;
	req.mail = &mail;
	mail.contact_email = "ops@example.org";
	assert_int_equal(step_start(&s.env, "j1", "site.example", &req, &run, &err), 0);
	assert_true(drive(run, 5000));
	assert_int_equal(step_state(run), TUAP__STEP_STATE__STATE_DONE);
	assert_int_equal(s.log.started, 1);
	step_free(run);
	text = fs_read_file(path, 4096, NULL, NULL);
	assert_string_equal(text, "postmaster: root\nroot: ops@example.org\n");
	free(text);
	{
		struct stat st;

		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0640); /* the mode is kept */
	}
	assert_int_equal(stepjournal_get(s.j, "j1", TUAP__STEP__STEP_MAIL)->state,
			 TUAP__STEP_STATE__STATE_DONE);

	/* the same job again: not repeated */
	evlog_free(&s.log);
	assert_int_equal(step_start(&s.env, "j1", "site.example", &req, &run, &err), 0);
	assert_true(step_done(run));
	assert_int_equal(s.log.final, TUAP__STEP_STATE__STATE_DONE);
	assert_string_equal(s.log.msg, "already done");
	assert_int_equal(s.log.started, 0);
	step_free(run);

	/* a bad address fails the step, journaled, file untouched */
	evlog_free(&s.log);
	mail.contact_email = "|/bin/sh -c evil";
	assert_int_equal(step_start(&s.env, "j2", "site.example", &req, &run, &err), 0);
	assert_true(step_done(run));
	assert_int_equal(s.log.final, TUAP__STEP_STATE__STATE_FAILED);
	assert_non_null(strstr(s.log.msg, "contact_email"));
	assert_int_equal(stepjournal_get(s.j, "j2", TUAP__STEP__STEP_MAIL)->state,
			 TUAP__STEP_STATE__STATE_FAILED);
	step_free(run);

	/* wrong arguments for the step, a bad job id */
	evlog_free(&s.log);
	req.step = TUAP__STEP__STEP_USERS;
	assert_int_equal(step_start(&s.env, "j3", "site.example", &req, &run, &err), 0);
	assert_int_equal(s.log.final, TUAP__STEP_STATE__STATE_FAILED);
	step_free(run);
	req.step = TUAP__STEP__STEP_MAIL;
	assert_int_equal(step_start(&s.env, "../../etc", "site.example", &req, &run, &err), 0);
	assert_int_equal(s.log.final, TUAP__STEP_STATE__STATE_FAILED);
	assert_non_null(strstr(s.log.msg, "job id"));
	step_free(run);
	scratch_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aliases),
		cmocka_unit_test(test_mail_step),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
