/*
 * tuap-ctl's command table and the helpers its subcommands share. Each subcommand lives in its
 * own cmd_NAME.c (git's builtin/ layout) and is listed once in ctl_main.c.
 */
#ifndef TUAP_CLI_H
#define TUAP_CLI_H

#include <stdbool.h>

struct cli_cmd {
	const char *name;
	int (*fn)(int argc, char **argv); /* argv[0] is the command name */
	const char *summary;
};

/* Exit codes of tuap-ctl: 0 ok, 1 the request failed (invalid domain, failed job),
 * 2 usage error, 3 cannot reach tuapd. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_NO_DAEMON = 3 };

/* True if argv holds -h or --help (before any "--"). */
bool cli_wants_help(int argc, char **argv);
/* Prints "tuap-ctl CMD: msg" and a hint to use --help; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Strips trailing slashes from a DOMAIN argument in place, so "example.test/" works. */
char *cli_domain_arg(char *arg);

#endif
