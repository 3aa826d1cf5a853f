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

int cmd_enroll(const struct cli_args *a)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__EnrollRequest er = TUAP__ENROLL_REQUEST__INIT;
	const char *domain = cli_domain_name(cli_domain_arg(a->operands[0]));
	const char *out = cli_opt(a, "output");
	struct buf text = BUF_INIT;
	struct ctlclient c;
	struct agentconf ac;
	struct tuap_err err;
	char path[4096];
	int rc = CLI_FAIL;

	if (!out)
		return cli_usage_error("enroll", "where to? (-o FILE)");
	er.endpoint = (char *)cli_opt(a, "endpoint");
	if (cli_flag(a, "rotate"))
		er.has_rotate = er.rotate = 1;
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
