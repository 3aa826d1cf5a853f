/* tuap-ctl destroy DOMAIN [--purge]: removes a domain's VM (and with --purge all of it). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: tuap-ctl destroy [--purge] [--json] DOMAIN\n"
	"\n"
	"Powers DOMAIN's VM off at once and undefines it; a job running for it is cancelled.\n"
	"Its disks, seeds and console log (storage pool tuap-DOMAIN), its agent key and its\n"
	"journal are kept, unless --purge: then they are deleted too, and tuapd forgets the\n"
	"domain. No confirmation is asked; what was removed is printed. Only VMs that tuap made\n"
	"are touched.\n";

int cmd_destroy(int argc, char **argv)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__DestroyRequest dr = TUAP__DESTROY_REQUEST__INIT;
	const char *domain = NULL;
	bool json = false;

	if (cli_wants_help(argc, argv)) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--purge"))
			dr.has_purge = dr.purge = 1;
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else if (argv[i][0] == '-' || domain)
			return cli_usage_error("destroy", "unexpected '%s'", argv[i]);
		else
			domain = cli_domain_name(cli_domain_arg(argv[i]));
	}
	if (!domain)
		return cli_usage_error("destroy", "which DOMAIN?");
	dr.domain = (char *)domain;
	req.req_case = TUAP__CTL_REQUEST__REQ_DESTROY;
	req.destroy = &dr;
	return cli_daemon_request(&req, domain, NULL, json, false);
}
