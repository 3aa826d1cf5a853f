/* tuap-ctl destroy DOMAIN [--purge]: removes a domain's VM (and with --purge all of it). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_destroy(const struct cli_args *a)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__DestroyRequest dr = TUAP__DESTROY_REQUEST__INIT;
	const char *domain = cli_domain_name(cli_domain_arg(a->operands[0]));

	if (cli_flag(a, "purge"))
		dr.has_purge = dr.purge = 1;
	dr.domain = (char *)domain;
	req.req_case = TUAP__CTL_REQUEST__REQ_DESTROY;
	req.destroy = &dr;
	return cli_daemon_request(&req, domain, NULL, cli_flag(a, "json"), false);
}
