/* tuap-ctl snapshot DOMAIN [NAME|--list] and tuap-ctl restore DOMAIN [NAME|--latest|--oldest]. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int run(const struct cli_args *a, bool restore)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__SnapshotRequest sr = TUAP__SNAPSHOT_REQUEST__INIT;
	const char *cmd = restore ? "restore" : "snapshot";
	const char *domain = cli_domain_name(cli_domain_arg(a->operands[0]));

	if (a->n_operands > 1)
		sr.name = a->operands[1];
	if (restore && cli_flag(a, "latest"))
		sr.has_latest = sr.latest = 1;
	if (restore && cli_flag(a, "oldest"))
		sr.has_oldest = sr.oldest = 1;
	if (!restore && cli_flag(a, "list")) {
		if (sr.name)
			return cli_usage_error(cmd, "--list takes no NAME");
		sr.has_list = sr.list = 1;
	}
	if ((sr.latest ? 1 : 0) + (sr.oldest ? 1 : 0) + (sr.name ? 1 : 0) > 1)
		return cli_usage_error(cmd, "give one of NAME, --latest, --oldest");
	sr.domain = (char *)domain;
	if (restore) {
		req.req_case = TUAP__CTL_REQUEST__REQ_RESTORE;
		req.restore = &sr;
	} else {
		req.req_case = TUAP__CTL_REQUEST__REQ_SNAPSHOT;
		req.snapshot = &sr;
	}
	return cli_daemon_request(&req, domain, NULL, cli_flag(a, "json"), false);
}

int cmd_snapshot(const struct cli_args *a)
{
	return run(a, false);
}

int cmd_restore(const struct cli_args *a)
{
	return run(a, true);
}
