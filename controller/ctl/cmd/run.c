/* tuap-ctl run DOMAIN make [TARGET]: re-runs the site's make on its host, live. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "valid.h"

int cmd_run(const struct cli_args *a)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__RunRequest rr = TUAP__RUN_REQUEST__INIT;
	const char *domain = cli_domain_name(cli_domain_arg(a->operands[0]));
	const char *target = a->n_operands > 2 ? a->operands[2] : NULL;

	if (strcmp(a->operands[1], "make"))
		return cli_usage_error("run", "only 'make' can be run, not '%s'", a->operands[1]);
	char why[160];

	if (target && valid_make_target(target, why, sizeof(why)) < 0)
		return cli_usage_error("run", "'%s' is not a make target: %s", target, why);
	rr.domain = (char *)domain;
	rr.target = (char *)target;
	req.req_case = TUAP__CTL_REQUEST__REQ_RUN;
	req.run = &rr;
	return cli_daemon_request(&req, domain, NULL, cli_flag(a, "json"), false);
}
