/* tuap-ctl pack DOMAIN: builds DOMAIN/data.tar.gz from DOMAIN/site/ and checks the result. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "pack.h"
#include "tarball.h"

static const char usage[] =
	"usage: tuap-ctl pack DOMAIN\n"
	"\n"
	"Builds DOMAIN/data.tar.gz from the files under DOMAIN/site/ (which must hold the "
	"top-level\n"
	"Makefile whose default target sets the site up), replacing the previous data.tar.gz only\n"
	"when the new one is complete. Entries are sorted and owned by root; only files,\n"
	"directories and symlinks that stay inside site/ are accepted.\n";

int cmd_pack(int argc, char **argv)
{
	char src[PATH_MAX], out[PATH_MAX];
	struct tarball_info info;
	struct pack_stats st;
	struct tuap_err err;
	struct diags d;
	char *dir;
	int rc;

	if (cli_wants_help(argc, argv)) {
		fputs(usage, stdout);
		return CLI_OK;
	}
	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_error("pack", "expected exactly one DOMAIN");
	dir = cli_domain_arg(argv[1]);
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
