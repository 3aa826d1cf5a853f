/* tuap-ctl console-log DOMAIN [-n N]: what DOMAIN's VM wrote to its serial console. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_console_log(const struct cli_args *a)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__DomainRequest dr = TUAP__DOMAIN_REQUEST__INIT;
	const char *domain = cli_domain_name(cli_domain_arg(a->operands[0]));

	if (cli_opt(a, "lines")) {
		if (cli_lines_arg("console-log", cli_opt(a, "lines"), &dr.lines) != 0)
			return CLI_USAGE;
		dr.has_lines = 1;
	}
	dr.domain = (char *)domain;
	req.req_case = TUAP__CTL_REQUEST__REQ_CONSOLE_LOG;
	req.console_log = &dr;
	return cli_daemon_request(&req, domain, NULL, cli_flag(a, "json"), false);
}
