/*
 * tuap-ctl's command table and the helpers its subcommands share. Each subcommand lives in its
 * own file in cmd/ (git's builtin/ layout) and is declared once, with its operands and
 * options, in cmd/commands.c.
 */
#ifndef TUAP_CLI_H
#define TUAP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tuap.pb-c.h"

/* One option of a subcommand: --NAME (and -LETTER when letter is set), taking a value named
 * arg, or a flag when arg is NULL. */
struct cli_args;

struct cli_opt {
	const char *name;
	char letter;
	const char *arg;
	const char *help;
};

#define CLI_OPTS_MAX 12

/* A subcommand, declared once in cmd/commands.c: the table drives parsing, --help, `tuap-ctl
 * help`, bash completion (`tuap-ctl completion bash`) and the COMMANDS section of
 * tuap-ctl(1) (`tuap-ctl help --man`). */
/* The first operand, for the completion: a file or directory (a DOMAIN/ directory), or a
 * domain tuapd knows ('tuap-ctl list'). */
enum cli_operand { CLI_ANY_OPERAND, CLI_KNOWN_DOMAIN };

struct cli_cmd {
	const char *name;
	const char *operands;	    /* "DOMAIN", "DOMAIN make [TARGET]", ... ("" for none) */
	int min_operands;	    /* fewer: a usage error */
	int max_operands;	    /* more: a usage error; -1 for any number */
	const char *summary;	    /* one line, for `tuap-ctl help` */
	const char *description;    /* paragraphs for --help and the man page, '\n'-separated */
	const struct cli_opt *opts; /* ends with {0}; NULL for none */
	int (*fn)(const struct cli_args *a);
	enum cli_operand operand; /* what the bash completion offers for the first operand */
};

/* What the parser found on the command line for cmd. */
struct cli_args {
	const struct cli_cmd *cmd;
	const char *val[CLI_OPTS_MAX]; /* per cmd->opts entry: the value, "" for a flag given */
	char **operands;	       /* the rest, in order (point into argv) */
	int n_operands;
};

/* The value of option name (NULL when not given), and whether a flag was given. Asking for an
 * option the command does not declare is a bug: it aborts. */
const char *cli_opt(const struct cli_args *a, const char *name);
bool cli_flag(const struct cli_args *a, const char *name);

/* Exit codes of tuap-ctl: 0 ok, 1 the request failed (invalid domain, failed job),
 * 2 usage error, 3 cannot reach tuapd. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_NO_DAEMON = 3 };

/* The subcommands, one per file in cmd/, called with their parsed arguments. */
int cmd_validate(const struct cli_args *a);
int cmd_pack(const struct cli_args *a);
int cmd_new(const struct cli_args *a);
int cmd_provision(const struct cli_args *a);
int cmd_update_data(const struct cli_args *a);
int cmd_status(const struct cli_args *a);
int cmd_list(const struct cli_args *a);
int cmd_hypervisors(const struct cli_args *a);
int cmd_log(const struct cli_args *a);
int cmd_watch(const struct cli_args *a);
int cmd_run(const struct cli_args *a);
int cmd_enroll(const struct cli_args *a);
int cmd_destroy(const struct cli_args *a);
int cmd_snapshot(const struct cli_args *a);
int cmd_restore(const struct cli_args *a);
int cmd_console_log(const struct cli_args *a);
int cmd_doctor(const struct cli_args *a);

/* Runs the subcommand argv[1] (the table in cmd/commands.c); returns tuap-ctl's exit code. */
int cli_run(int argc, char **argv);

/* The table's machinery (cli.c), for cmd/commands.c. */
/* Parses argv (argv[0] is the command name) for cmd into a (a->operands is malloc'd: free
 * it); -h/--help gives CLI_OK with *help set. Usage errors are printed: CLI_USAGE. */
int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, struct cli_args *a, bool *help);
/* `tuap-ctl CMD --help`. */
void cli_print_help(const struct cli_cmd *cmd, FILE *out);
/* The COMMANDS section of tuap-ctl(1), in roff. */
void cli_print_man(const struct cli_cmd *cmds, size_t n, FILE *out);
/* A bash completion script for tuap-ctl. */
void cli_print_bash_completion(const struct cli_cmd *cmds, size_t n, FILE *out);

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
