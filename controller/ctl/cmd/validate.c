/* tuap-ctl validate DOMAIN...: reads each domain directory and reports every problem. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <stdlib.h>

#include "cli.h"
#include "domain.h"
#include "schemadrift.h"

static void summary(const struct domain *dom)
{
	const struct domain_conf *c = &dom->conf;

	printf("%s: valid: %zu address%s, %u MiB, %u cpus, image %s", c->name, c->n_ips,
	       c->n_ips == 1 ? "" : "es", c->memory_mib, c->cpus,
	       c->image[0] ? c->image : "(catalog default)");
	if (c->depends_on[0])
		printf(", on %s as %s", c->depends_on, c->admin_user);
	printf(", %zu user%s", dom->users.n, dom->users.n == 1 ? "" : "s");
	if (dom->data.present)
		printf(", data.tar.gz %" PRIu64 " entries, %" PRIu64 " bytes", dom->data.entries,
		       dom->data.total_bytes);
	else
		printf(", no data.tar.gz");
	printf("\n");
}

/* The installed cloud-init's users schema against what tuap knows (TUAP_CLOUDINIT_SCHEMA
 * names another file; empty: no check). Only warnings: validate still decides on the site. */
static void check_schema_drift(void)
{
	const char *env = getenv("TUAP_CLOUDINIT_SCHEMA"), *path = env ? env : CLOUDINIT_SCHEMA;
	struct strlist unknown = {0};
	struct tuap_err err;

	if (!path[0] || (!env && access(path, F_OK) != 0))
		return; /* no cloud-init here */
	if (schema_drift(path, &unknown, &err) < 0) {
		fprintf(stderr, "tuap-ctl: warning: cloud-init's users schema not checked: %s\n",
			err.msg);
		return;
	}
	if (unknown.n) {
		fprintf(stderr,
			"tuap-ctl: warning: %s: the installed cloud-init's users schema has %zu "
			"key%s tuap does not know:",
			path, unknown.n, unknown.n == 1 ? "" : "s");
		for (size_t i = 0; i < unknown.n; i++)
			fprintf(stderr, "%s %s", i ? "," : "", unknown.v[i]);
		fprintf(stderr, " (users.yaml refuses %s)\n", unknown.n == 1 ? "it" : "them");
	}
	strlist_free(&unknown);
}

int cmd_validate(const struct cli_args *a)
{
	int rc = CLI_OK;

	check_schema_drift();
	for (int i = 0; i < a->n_operands; i++) {
		char **argv = a->operands;
		struct domain dom;
		struct diags d;

		diags_init(&d);
		if (domain_load(cli_domain_arg(argv[i]), &dom, &d) < 0 || d.errors) {
			diags_print(&d, stderr);
			fprintf(stderr, "%s: %zu error%s\n", argv[i], d.errors,
				d.errors == 1 ? "" : "s");
			rc = CLI_FAIL;
		} else {
			diags_print(&d, stderr);
			summary(&dom);
		}
		domain_free(&dom);
		diags_free(&d);
	}
	return rc;
}
