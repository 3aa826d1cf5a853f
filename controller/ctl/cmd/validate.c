/* tuap-ctl validate DOMAIN...: reads each domain directory and reports every problem. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "domain.h"

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

int cmd_validate(const struct cli_args *a)
{
	int rc = CLI_OK;

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
