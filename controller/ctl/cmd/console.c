/* tuap-ctl console-log DOMAIN [-n N]: what DOMAIN's VM wrote to its serial console. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: tuap-ctl console-log [-n LINES] [--json] DOMAIN\n"
	"\n"
	"Prints the serial console log of DOMAIN's VM (kernel, systemd, cloud-init, the seed's\n"
	"installer), cleaned of terminal escapes; -n: only the last LINES. At most the last\n"
	"512 KiB of the log are read.\n";

int cmd_console_log(int argc, char **argv)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__DomainRequest dr = TUAP__DOMAIN_REQUEST__INIT;
	const char *domain = NULL;
	bool json = false;

	if (cli_wants_help(argc, argv)) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc) {
			if (cli_lines_arg("console-log", argv[++i], &dr.lines) != 0)
				return CLI_USAGE;
			dr.has_lines = 1;
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (argv[i][0] == '-' || domain) {
			return cli_usage_error("console-log", "unexpected '%s'", argv[i]);
		} else {
			domain = cli_domain_name(cli_domain_arg(argv[i]));
		}
	}
	if (!domain)
		return cli_usage_error("console-log", "which DOMAIN?");
	dr.domain = (char *)domain;
	req.req_case = TUAP__CTL_REQUEST__REQ_CONSOLE_LOG;
	req.console_log = &dr;
	return cli_daemon_request(&req, domain, NULL, json, false);
}
