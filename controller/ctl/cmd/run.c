/* tuap-ctl run DOMAIN make [TARGET]: re-runs the site's make on its host, live. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: tuap-ctl run [--json] DOMAIN make [TARGET]\n"
	"\n"
	"Runs make (the default target, or TARGET) again in DOMAIN's site tree on its host, with\n"
	"its output shown live and kept as the domain's setup log ('tuap-ctl log DOMAIN').\n";

int cmd_run(int argc, char **argv)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__RunRequest rr = TUAP__RUN_REQUEST__INIT;
	const char *domain = NULL, *target = NULL;
	bool json = false;
	int pos = 0;

	if (cli_wants_help(argc, argv)) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (argv[i][0] == '-') {
			return cli_usage_error("run", "unknown option '%s'", argv[i]);
		} else if (pos == 0) {
			domain = cli_domain_name(cli_domain_arg(argv[i]));
			pos++;
		} else if (pos == 1) {
			if (strcmp(argv[i], "make"))
				return cli_usage_error("run", "only 'make' can be run, not '%s'",
						       argv[i]);
			pos++;
		} else if (pos == 2) {
			target = argv[i];
			pos++;
		} else {
			return cli_usage_error("run", "unexpected '%s'", argv[i]);
		}
	}
	if (pos < 2)
		return cli_usage_error("run", "expected DOMAIN make [TARGET]");
	if (target && (!*target || target[0] == '-' || strpbrk(target, " \t\n=")))
		return cli_usage_error("run", "'%s' is not a make target", target);
	rr.domain = (char *)domain;
	rr.target = (char *)target;
	req.req_case = TUAP__CTL_REQUEST__REQ_RUN;
	req.run = &rr;
	return cli_daemon_request(&req, domain, NULL, json, false);
}
