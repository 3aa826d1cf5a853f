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
#include "ctlclient.h"
#include "dryrun.h"
#include "progress.h"
#include "fsutil.h"

struct opts {
	bool dry_run, existing, resume, rerun_make, rebuild, detach, json, force_users;
	const char *output;
	char *dir;
};

static int parse_opts(const struct cli_args *a, struct opts *o, bool update)
{
	const char *cmd = a->cmd->name;

	o->json = cli_flag(a, "json");
	o->dir = cli_domain_arg(a->operands[0]);
	if (update)
		return 0;
	o->dry_run = cli_flag(a, "dry-run");
	o->existing = cli_flag(a, "existing");
	o->resume = cli_flag(a, "resume");
	o->rerun_make = cli_flag(a, "rerun-make");
	o->rebuild = cli_flag(a, "rebuild");
	o->force_users = cli_flag(a, "force-users");
	o->detach = cli_flag(a, "detach");
	o->output = cli_opt(a, "output");
	if (o->output && !o->dry_run)
		return cli_usage_error(cmd, "--output goes with --dry-run");
	if (o->rerun_make && !o->resume)
		return cli_usage_error(cmd, "--rerun-make goes with --resume");
	if (o->resume && o->rebuild)
		return cli_usage_error(cmd, "--resume and --rebuild exclude each other");
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
	pr.has_force_users = 1;
	pr.force_users = o->force_users;
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

/* provision --dry-run: asks tuapd where the site would go (it alone sees the hypervisors); a
 * tuapd that does not answer is said, and is no error of the dry run. */
static int ask_place(const struct opts *o, const struct domain *dom)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__ProvisionRequest pr = TUAP__PROVISION_REQUEST__INIT;
	char path[4096], conf_path[PATH_MAX];
	struct ctlclient c;
	struct progress p;
	struct tuap_err err;
	bool present;
	int code;

	fflush(stdout);
	ctlclient_socket_path(path, sizeof(path));
	if (ctlclient_open(&c, path, &err) < 0) {
		printf("hypervisor: not asked (%s)\n", err.msg);
		return 0;
	}
	pr.domain = (char *)dom->conf.name;
	snprintf(conf_path, sizeof(conf_path), "%s", dom->conf.conf_path);
	pr.conf_path = conf_path;
	if (read_text(o->dir, "provision.conf", &pr.conf_text, &present) < 0) {
		ctlclient_close(&c);
		return CLI_FAIL;
	}
	req.req_case = TUAP__CTL_REQUEST__REQ_PLACE;
	req.place = &pr;
	if (ctlclient_send(&c, &req, &err) < 0) {
		printf("hypervisor: not asked (%s)\n", err.msg);
		code = 0;
	} else {
		progress_init(&p, stdout, o->json);
		code = ctlclient_follow(&c, &p, dom->conf.name, NULL, 30000, false);
	}
	ctlclient_close(&c);
	free(pr.conf_text.data);
	return code;
}

static int run(const struct cli_args *a, bool update)
{
	struct opts o = {0};
	struct domain dom;
	struct diags d;
	int rc;

	if ((rc = parse_opts(a, &o, update)))
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
	if (o.dry_run) {
		rc = dryrun_show(&dom, o.output);
		if (rc == 0 && !update && !dom.conf.depends_on[0] && !o.existing)
			rc = ask_place(&o, &dom);
	} else
		rc = submit(&o, &dom, update);
	domain_free(&dom);
	return rc;
}

int cmd_provision(const struct cli_args *a)
{
	return run(a, false);
}

int cmd_update_data(const struct cli_args *a)
{
	return run(a, true);
}
