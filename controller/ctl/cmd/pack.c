/* tuap-ctl pack DOMAIN: builds DOMAIN/data.tar.gz from DOMAIN/site/ and checks the result. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "pack.h"
#include "tarball.h"

int cmd_pack(const struct cli_args *a)
{
	char src[PATH_MAX], out[PATH_MAX];
	struct tarball_info info;
	struct pack_stats st;
	struct tuap_err err;
	struct diags d;
	char *dir = cli_domain_arg(a->operands[0]);
	int rc;

	if (snprintf(src, sizeof(src), "%s/site", dir) >= (int)sizeof(src) ||
	    snprintf(out, sizeof(out), "%s/data.tar.gz", dir) >= (int)sizeof(out))
		return cli_usage_error("pack", "path too long");
	if (pack_tree(src, out, &st, &err) < 0) {
		char buf[1024];

		fprintf(stderr, "tuap-ctl pack: %s\n", err_str(&err, buf, sizeof(buf)));
		return CLI_FAIL;
	}
	diags_init(&d);
	rc = tarball_check(out, &info, &d);
	diags_print(&d, stderr);
	diags_free(&d);
	if (rc < 0)
		return CLI_FAIL;
	printf("%s: %" PRIu64 " entries, %" PRIu64 " bytes of files, %" PRIu64
	       " bytes compressed, sha256 %s\n",
	       out, info.entries, info.total_bytes, info.file_size, info.sha256);
	return CLI_OK;
}
