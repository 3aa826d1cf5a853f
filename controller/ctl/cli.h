/*
 * tuap-ctl's command table and the helpers its subcommands share. Each subcommand lives in its
 * own cmd_NAME.c (git's builtin/ layout) and is listed once in ctl_main.c.
 */
#ifndef TUAP_CLI_H
#define TUAP_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "tuap.pb-c.h"

struct cli_cmd {
	const char *name;
	int (*fn)(int argc, char **argv); /* argv[0] is the command name */
	const char *summary;
};

/* Exit codes of tuap-ctl: 0 ok, 1 the request failed (invalid domain, failed job),
 * 2 usage error, 3 cannot reach tuapd. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_NO_DAEMON = 3 };

/* The subcommands, one per cmd_NAME.c; argv[0] is the command name. */
int cmd_validate(int argc, char **argv);
int cmd_pack(int argc, char **argv);
int cmd_new(int argc, char **argv);
int cmd_provision(int argc, char **argv);
int cmd_update_data(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_log(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_enroll(int argc, char **argv);
int cmd_destroy(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_console_log(int argc, char **argv);

/* Runs the subcommand argv[1] (the table in cmd/commands.c); returns tuap-ctl's exit code. */
int cli_run(int argc, char **argv);

/* True if argv holds -h or --help (before any "--"). */
bool cli_wants_help(int argc, char **argv);
/* Prints "tuap-ctl CMD: msg" and a hint to use --help; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends req to tuapd and follows its events until the final one; returns the exit code.
 * data_path: data.tar.gz to upload if tuapd asks; json: --json output. */
int cli_daemon_request(Tuap__CtlRequest *req, const char *domain, const char *data_path, bool json,
		       bool detach);
/* The base name of a DOMAIN directory argument (the domain's name). */
const char *cli_domain_name(const char *dir);

/* Strips trailing slashes from a DOMAIN argument in place, so "example.test/" works. */
char *cli_domain_arg(char *arg);

#define CLI_LINES_MAX 1000000
/* The value of -n LINES: 0 with *lines set, else CLI_USAGE (the error is printed for cmd). */
int cli_lines_arg(const char *cmd, const char *text, uint32_t *lines);

#endif
