/* tuap-ctl status [DOMAIN] and tuap-ctl list: what tuapd knows of its domains. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int run(const struct cli_args *a, bool list)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__DomainRequest dr = TUAP__DOMAIN_REQUEST__INIT;
	Tuap__ListRequest lr = TUAP__LIST_REQUEST__INIT;
	const char *domain = a->n_operands ? cli_domain_name(cli_domain_arg(a->operands[0])) : NULL;

	if (list) {
		req.req_case = TUAP__CTL_REQUEST__REQ_LIST;
		req.list = &lr;
	} else {
		dr.domain = (char *)(domain ? domain : "");
		req.req_case = TUAP__CTL_REQUEST__REQ_STATUS;
		req.status = &dr;
	}
	return cli_daemon_request(&req, domain, NULL, cli_flag(a, "json"), false);
}

int cmd_status(const struct cli_args *a)
{
	return run(a, false);
}

int cmd_list(const struct cli_args *a)
{
	return run(a, true);
}
