/*
 * tuap-ctl provision DOMAIN (and update-data DOMAIN): validates the domain directory here,
 * then hands provision.conf, users.yaml and data.tar.gz to tuapd and follows the job live.
 * --dry-run stops after validation and prints (or writes) what would be created.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "domain.h"
#include "dryrun.h"
#include "fsutil.h"

static const char usage[] =
	"usage: tuap-ctl provision [OPTIONS] DOMAIN\n"
	"\n"
	"Makes the site in the directory DOMAIN live: tuapd creates its VM (or, with depends_on "
	"or\n"
	"--existing, uses the existing host), its agent creates the users, installs the packages,\n"
	"sets the contact e-mail, restores data.tar.gz and runs make. Progress is shown live;\n"
	"Ctrl-C detaches and the job goes on ('tuap-ctl watch DOMAIN').\n"
	"\n"
	"  --dry-run       validate and show domain.xml, meta-data, network-config and user-data;\n"
	"                  create nothing\n"
	"  --output DIR    with --dry-run: write those files into DIR instead\n"
	"  --existing      the host exists and its agent is enrolled ('tuap-ctl enroll'): create\n"
	"                  no VM, wait for the agent's hello, run the steps\n"
	"  --resume        continue the domain's last failed job where it stopped (or attach to\n"
	"                  the running one)\n"
	"  --rerun-make    with --resume: run make again even though it was started before\n"
	"  --rebuild       snapshot the VM, then recreate it with new keys and instance-id\n"
	"  --detach        start the job and return at once\n"
	"  --json          one JSON object per event on stdout\n";

static const char update_usage[] =
	"usage: tuap-ctl update-data [--json] DOMAIN\n"
	"\n"
	"Sends DOMAIN/data.tar.gz (checked first) to the domain's host, where the agent replaces\n"
	"the site tree (the previous one is kept beside it) and runs make again.\n";

struct opts {
	bool dry_run, existing, resume, rerun_make, rebuild, detach, json;
	const char *output;
	char *dir;
};

static int parse_opts(int argc, char **argv, struct opts *o, bool update)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--json"))
			o->json = true;
		else if (!update && !strcmp(a, "--dry-run"))
			o->dry_run = true;
		else if (!update && !strcmp(a, "--existing"))
			o->existing = true;
		else if (!update && !strcmp(a, "--resume"))
			o->resume = true;
		else if (!update && !strcmp(a, "--rerun-make"))
			o->rerun_make = true;
		else if (!update && !strcmp(a, "--rebuild"))
			o->rebuild = true;
		else if (!update && !strcmp(a, "--detach"))
			o->detach = true;
		else if (!update && !strcmp(a, "--output") && i + 1 < argc)
			o->output = argv[++i];
		else if (a[0] == '-' || o->dir)
			return cli_usage_error(argv[0], "unexpected '%s'", a);
		else
			o->dir = cli_domain_arg(argv[i]);
	}
	if (!o->dir)
		return cli_usage_error(argv[0], "which DOMAIN?");
	if (o->output && !o->dry_run)
		return cli_usage_error(argv[0], "--output goes with --dry-run");
	if (o->rerun_make && !o->resume)
		return cli_usage_error(argv[0], "--rerun-make goes with --resume");
	if (o->resume && o->rebuild)
		return cli_usage_error(argv[0], "--resume and --rebuild exclude each other");
	return 0;
}

/* Reads a domain file's text into b (for the request); 0 with b empty when absent. */
static int read_text(const char *dir, const char *name, ProtobufCBinaryData *b, bool *present)
{
	char path[PATH_MAX];
	struct tuap_err err;
	size_t len;
	char *text;

	*present = false;
	if (fs_path(path, sizeof(path), &err, "%s/%s", dir, name) < 0)
		return -1;
	if (!fs_exists(path))
		return 0;
	if (!(text = fs_read_file(path, 1 << 20, &len, &err))) {
		fprintf(stderr, "tuap-ctl: %s\n", err.msg);
		return -1;
	}
	b->data = (uint8_t *)text;
	b->len = len;
	*present = true;
	return 0;
}

static void sha_bytes(const char *hex, uint8_t out[32])
{
	for (int i = 0; i < 32; i++) {
		unsigned v = 0;

		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

static int submit(const struct opts *o, const struct domain *dom, bool update)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__ProvisionRequest pr = TUAP__PROVISION_REQUEST__INIT;
	char conf_path[PATH_MAX], users_path[PATH_MAX];
	uint8_t sha[32];
	bool present;
	int code = CLI_FAIL;

	pr.domain = (char *)dom->conf.name;
	snprintf(conf_path, sizeof(conf_path), "%s", dom->conf.conf_path);
	pr.conf_path = conf_path;
	if (read_text(o->dir, "provision.conf", &pr.conf_text, &present) < 0 ||
	    read_text(o->dir, "users.yaml", &pr.users_text, &present) < 0)
		goto out;
	if (present) {
		pr.has_users_text = 1;
		snprintf(users_path, sizeof(users_path), "%s/users.yaml", o->dir);
		pr.users_path = users_path;
	}
	if (dom->data.present) {
		sha_bytes(dom->data.sha256, sha);
		pr.data_path = (char *)dom->data.path;
		pr.has_data_size = pr.has_data_sha256 = 1;
		pr.data_size = dom->data.file_size;
		pr.data_sha256.data = sha;
		pr.data_sha256.len = 32;
	} else if (update) {
		fprintf(stderr,
			"tuap-ctl update-data: %s/data.tar.gz does not exist "
			"('tuap-ctl pack %s' builds it)\n",
			o->dir, o->dir);
		goto out;
	}
	pr.has_resume = pr.has_existing = pr.has_rerun_make = pr.has_rebuild = pr.has_detach = 1;
	pr.resume = o->resume;
	pr.existing = o->existing;
	pr.rerun_make = o->rerun_make;
	pr.rebuild = o->rebuild;
	pr.detach = o->detach;
	if (update) {
		req.req_case = TUAP__CTL_REQUEST__REQ_UPDATE_DATA;
		req.update_data = &pr;
	} else {
		req.req_case = TUAP__CTL_REQUEST__REQ_PROVISION;
		req.provision = &pr;
	}
	code = cli_daemon_request(&req, dom->conf.name, dom->data.present ? dom->data.path : NULL,
				  o->json, o->detach);
out:
	free(pr.conf_text.data);
	free(pr.users_text.data);
	return code;
}

static int run(int argc, char **argv, bool update)
{
	struct opts o = {0};
	struct domain dom;
	struct diags d;
	int rc;

	if (cli_wants_help(argc, argv)) {
		fputs(update ? update_usage : usage, stdout);
		return CLI_OK;
	}
	if ((rc = parse_opts(argc, argv, &o, update)))
		return rc;
	/* nothing is sent, let alone created, unless the whole directory is valid */
	diags_init(&d);
	rc = domain_load(o.dir, &dom, &d);
	diags_print(&d, stderr);
	if (rc < 0 || d.errors) {
		fprintf(stderr, "%s: %zu error%s; nothing was done\n", o.dir, d.errors,
			d.errors == 1 ? "" : "s");
		diags_free(&d);
		domain_free(&dom);
		return CLI_FAIL;
	}
	diags_free(&d);
	if (o.dry_run)
		rc = dryrun_show(&dom, o.output);
	else
		rc = submit(&o, &dom, update);
	domain_free(&dom);
	return rc;
}

int cmd_provision(int argc, char **argv)
{
	return run(argc, argv, false);
}

int cmd_update_data(int argc, char **argv)
{
	return run(argc, argv, true);
}
