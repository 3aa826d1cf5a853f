/* tuap-ctl snapshot DOMAIN [NAME] and tuap-ctl restore DOMAIN [NAME|--latest|--oldest]. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char snapshot_usage[] =
	"usage: tuap-ctl snapshot [--json] DOMAIN [NAME]\n"
	"\n"
	"Takes a snapshot of DOMAIN's VM, inside its disk (with the memory when it runs), named\n"
	"NAME or after the time (tuap-YYYYMMDD-HHMMSS). 'tuap-ctl restore' goes back to it.\n";

static const char restore_usage[] =
	"usage: tuap-ctl restore [--json] DOMAIN [NAME | --latest | --oldest]\n"
	"\n"
	"Reverts DOMAIN's VM to its snapshot NAME, or its newest (--latest, the default) or\n"
	"oldest one, and makes sure it runs afterwards. Whatever changed since is lost. Refused\n"
	"while a job runs for the domain.\n";

static int run(int argc, char **argv, bool restore)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__SnapshotRequest sr = TUAP__SNAPSHOT_REQUEST__INIT;
	const char *cmd = restore ? "restore" : "snapshot", *domain = NULL;
	bool json = false;

	if (cli_wants_help(argc, argv)) {
		fputs(restore ? restore_usage : snapshot_usage, stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--json"))
			json = true;
		else if (restore && !strcmp(a, "--latest"))
			sr.has_latest = sr.latest = 1;
		else if (restore && !strcmp(a, "--oldest"))
			sr.has_oldest = sr.oldest = 1;
		else if (a[0] == '-')
			return cli_usage_error(cmd, "unexpected '%s'", a);
		else if (!domain)
			domain = cli_domain_name(cli_domain_arg(argv[i]));
		else if (!sr.name)
			sr.name = argv[i];
		else
			return cli_usage_error(cmd, "unexpected '%s'", a);
	}
	if (!domain)
		return cli_usage_error(cmd, "which DOMAIN?");
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
	return cli_daemon_request(&req, domain, NULL, json, false);
}

int cmd_snapshot(int argc, char **argv)
{
	return run(argc, argv, false);
}

int cmd_restore(int argc, char **argv)
{
	return run(argc, argv, true);
}
