/* Helpers shared by tuap-ctl's subcommands; see cli.h. */
#include "cli.h"

#include "ctlclient.h"
#include "progress.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	}
	return false;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tuap-ctl %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see 'tuap-ctl %s --help')\n", cmd);
	return CLI_USAGE;
}

int cli_lines_arg(const char *cmd, const char *text, uint32_t *lines)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(text, &end, 10);
	if (errno || end == text || *end || n <= 0 || n > CLI_LINES_MAX)
		return cli_usage_error(cmd, "-n wants a number of lines (1-%d)", CLI_LINES_MAX);
	*lines = (uint32_t)n;
	return 0;
}

char *cli_domain_arg(char *arg)
{
	size_t n = strlen(arg);

	while (n > 1 && arg[n - 1] == '/')
		arg[--n] = '\0';
	return arg;
}

const char *cli_domain_name(const char *dir)
{
	const char *slash = strrchr(dir, '/');

	return slash ? slash + 1 : dir;
}

int cli_daemon_request(Tuap__CtlRequest *req, const char *domain, const char *data_path, bool json,
		       bool detach)
{
	struct ctlclient c;
	struct progress p;
	struct tuap_err err;
	char path[4096];
	int code;

	ctlclient_socket_path(path, sizeof(path));
	if (ctlclient_open(&c, path, &err) < 0) {
		fprintf(stderr, "tuap-ctl: %s\n", err.msg);
		return CLI_NO_DAEMON;
	}
	if (ctlclient_send(&c, req, &err) < 0) {
		fprintf(stderr, "tuap-ctl: %s\n", err.msg);
		ctlclient_close(&c);
		return CLI_NO_DAEMON;
	}
	progress_init(&p, stdout, json);
	code = ctlclient_follow(&c, &p, domain, data_path, 30000, detach);
	ctlclient_close(&c);
	return code;
}
