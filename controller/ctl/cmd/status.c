/* tuap-ctl status [DOMAIN] and tuap-ctl list: what tuapd knows of its domains. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char status_usage[] =
	"usage: tuap-ctl status [--json] [DOMAIN]\n"
	"\n"
	"Shows each domain tuapd manages (or only DOMAIN): whether it is a VM or an existing\n"
	"host, its last job and the phase it reached, and its agent (version, host, last seen).\n";

static const char list_usage[] = "usage: tuap-ctl list [--json]\n"
				 "\n"
				 "Lists the domains tuapd manages, one line each.\n";

static int run(int argc, char **argv, bool list)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__DomainRequest dr = TUAP__DOMAIN_REQUEST__INIT;
	Tuap__ListRequest lr = TUAP__LIST_REQUEST__INIT;
	const char *domain = NULL;
	bool json = false;

	if (cli_wants_help(argc, argv)) {
		fputs(list ? list_usage : status_usage, stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (argv[i][0] == '-' || domain || list)
			return cli_usage_error(argv[0], "unexpected '%s'", argv[i]);
		else
			domain = cli_domain_name(cli_domain_arg(argv[i]));
	}
	if (list) {
		req.req_case = TUAP__CTL_REQUEST__REQ_LIST;
		req.list = &lr;
	} else {
		dr.domain = (char *)(domain ? domain : "");
		req.req_case = TUAP__CTL_REQUEST__REQ_STATUS;
		req.status = &dr;
	}
	return cli_daemon_request(&req, domain, NULL, json, false);
}

int cmd_status(int argc, char **argv)
{
	return run(argc, argv, false);
}

int cmd_list(int argc, char **argv)
{
	return run(argc, argv, true);
}
