/*
 * tuap-ctl enroll DOMAIN -o FILE: asks tuapd for a fresh agent keypair for DOMAIN and writes
 * the agent's config (endpoint, tuapd's public key, the agent's keypair) to FILE, mode 0600,
 * for a host whose agent is installed by other means (a baked image, a test). tuapd keeps only
 * the public key.
 */
#include <stdio.h>
#include <string.h>

#include "agentconf.h"
#include "buf.h"
#include "cli.h"
#include "ctlclient.h"
#include "fsutil.h"
#include "keys.h"

static const char usage[] =
	"usage: tuap-ctl enroll [--rotate] [--endpoint tcp://HOST:PORT] DOMAIN -o FILE\n"
	"\n"
	"Makes DOMAIN's agent keys and writes the agent's config to FILE (mode 0600): copy it to\n"
	"the host as /etc/tuap-agent/agent.conf and start tuap-agent there, then run\n"
	"'tuap-ctl provision --existing DOMAIN'. --rotate replaces existing keys (the agent that\n"
	"holds the old ones is refused from then on). --endpoint: the address the agent connects\n"
	"to, if not tuapd.conf's public_endpoint.\n";

int cmd_enroll(int argc, char **argv)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__EnrollRequest er = TUAP__ENROLL_REQUEST__INIT;
	const char *domain = NULL, *out = NULL;
	struct buf text = BUF_INIT;
	struct ctlclient c;
	struct agentconf ac;
	struct tuap_err err;
	char path[4096];
	int rc = CLI_FAIL;

	if (cli_wants_help(argc, argv)) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--endpoint") && i + 1 < argc)
			er.endpoint = argv[++i];
		else if (!strcmp(argv[i], "--rotate"))
			er.has_rotate = er.rotate = 1;
		else if (argv[i][0] == '-' || domain)
			return cli_usage_error("enroll", "unexpected '%s'", argv[i]);
		else
			domain = cli_domain_name(cli_domain_arg(argv[i]));
	}
	if (!domain || !out)
		return cli_usage_error("enroll", "expected DOMAIN -o FILE");
	if (fs_exists(out) && !er.rotate) {
		fprintf(stderr, "tuap-ctl enroll: %s exists; not overwritten\n", out);
		return CLI_FAIL;
	}
	er.domain = (char *)domain;
	req.req_case = TUAP__CTL_REQUEST__REQ_ENROLL;
	req.enroll = &er;
	ctlclient_socket_path(path, sizeof(path));
	if (ctlclient_open(&c, path, &err) < 0) {
		fprintf(stderr, "tuap-ctl: %s\n", err.msg);
		return CLI_NO_DAEMON;
	}
	if (ctlclient_send(&c, &req, &err) < 0 || ctlclient_collect(&c, &text, 30000, &err) < 0 ||
	    agentconf_parse(&ac, "(tuapd's answer)", text.s, text.len, &err) < 0 ||
	    agentconf_write(&ac, out, &err) < 0)
		fprintf(stderr, "tuap-ctl enroll: %s\n", err.msg);
	else
		rc = CLI_OK;
	if (rc == CLI_OK)
		printf("%s: agent config written to %s (mode 0600; it holds the agent's secret "
		       "key)\n",
		       domain, out);
	agentconf_wipe(&ac);
	if (text.s)
		keys_wipe(text.s, text.cap);
	buf_free(&text);
	ctlclient_close(&c);
	return rc;
}
