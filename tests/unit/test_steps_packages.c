/*
 * agent/steps/packages.c: the checks of what tuapd sends before apt-get is run.
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

static void test_packages_args(void **state)
{
	Tuap__StepRequest req = TUAP__STEP_REQUEST__INIT;
	Tuap__PackagesArgs pk = TUAP__PACKAGES_ARGS__INIT;
	char *pkgs[] = {"nginx", "-oAPT::Get::Whatever=1"};
	struct scratch s;
	struct step_run *run;
	struct tuap_err err;

	scratch_init(&s, "steps", true);
	req.step = TUAP__STEP__STEP_PACKAGES;
	req.args_case = TUAP__STEP_REQUEST__ARGS_PACKAGES;
	req.packages = &pk;
	pk.packages = pkgs;
	pk.n_packages = 2;
	assert_int_equal(step_start(&s.env, "j1", "site.example", &req, &run, &err), 0);
	assert_int_equal(s.log.final, TUAP__STEP_STATE__STATE_FAILED);
	assert_non_null(strstr(s.log.msg, "not a package name: it must start with a letter"));
	step_free(run);
	/* the rule tuap-ctl validate applies (common/valid.c), not a looser one of its own */
	pkgs[1] = "nginx/bookworm-backports";
	evlog_free(&s.log);
	assert_int_equal(step_start(&s.env, "j1b", "site.example", &req, &run, &err), 0);
	assert_int_equal(s.log.final, TUAP__STEP_STATE__STATE_FAILED);
	assert_non_null(strstr(s.log.msg,
			       "'nginx/bookworm-backports' is not a package name: it holds '/'"));
	step_free(run);
	evlog_free(&s.log);
	pk.n_packages = 0;
	assert_int_equal(step_start(&s.env, "j2", "site.example", &req, &run, &err), 0);
	assert_true(drive(run, 5000));
	assert_int_equal(s.log.final, TUAP__STEP_STATE__STATE_DONE);
	assert_true(evlog_find(&s.log, "no packages", 0) >= 0);
	step_free(run);
	assert_non_null(step_pkg_manager()); /* this machine has apt-get */
	scratch_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_packages_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
