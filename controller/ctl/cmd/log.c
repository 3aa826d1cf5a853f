/* tuap-ctl log DOMAIN and tuap-ctl watch DOMAIN: the setup log, and a running job's events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char log_usage[] =
	"usage: tuap-ctl log [-n LINES] DOMAIN\n"
	"\n"
	"Prints the setup log of DOMAIN's last job: the output of every step the agent ran,\n"
	"make's included, each line prefixed by the step ('make| ...'). -n: only the last LINES.\n";

static const char watch_usage[] =
	"usage: tuap-ctl watch [--json] DOMAIN\n"
	"\n"
	"Follows DOMAIN's running job live (as 'tuap-ctl provision' shows it) until it ends.\n"
	"Ctrl-C stops watching; the job goes on.\n";

int cmd_log(int argc, char **argv)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__DomainRequest dr = TUAP__DOMAIN_REQUEST__INIT;
	const char *domain = NULL;
	bool json = false;

	if (cli_wants_help(argc, argv)) {
		fputs(log_usage, stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc) {
			if (cli_lines_arg("log", argv[++i], &dr.lines) != 0)
				return CLI_USAGE;
			dr.has_lines = 1;
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (argv[i][0] == '-' || domain) {
			return cli_usage_error("log", "unexpected '%s'", argv[i]);
		} else {
			domain = cli_domain_name(cli_domain_arg(argv[i]));
		}
	}
	if (!domain)
		return cli_usage_error("log", "which DOMAIN?");
	dr.domain = (char *)domain;
	req.req_case = TUAP__CTL_REQUEST__REQ_LOG;
	req.log = &dr;
	return cli_daemon_request(&req, domain, NULL, json, false);
}

int cmd_watch(int argc, char **argv)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__DomainRequest dr = TUAP__DOMAIN_REQUEST__INIT;
	const char *domain = NULL;
	bool json = false;

	if (cli_wants_help(argc, argv)) {
		fputs(watch_usage, stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (argv[i][0] == '-' || domain)
			return cli_usage_error("watch", "unexpected '%s'", argv[i]);
		else
			domain = cli_domain_name(cli_domain_arg(argv[i]));
	}
	if (!domain)
		return cli_usage_error("watch", "which DOMAIN?");
	dr.domain = (char *)domain;
	req.req_case = TUAP__CTL_REQUEST__REQ_WATCH;
	req.watch = &dr;
	return cli_daemon_request(&req, domain, NULL, json, false);
}
