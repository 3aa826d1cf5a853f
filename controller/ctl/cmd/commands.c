/*
 * tuap-ctl's command table: dispatches to one function per subcommand; commands
 * that need the daemon talk to tuapd over its control socket, the others (validate, new, pack,
 * provision --dry-run) work on the domain directory alone.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const struct cli_cmd commands[] = {
	{"validate", cmd_validate, "check a domain directory; report every problem"},
	{"provision", cmd_provision, "make a domain live (--dry-run: show what it would create)"},
	{"status", cmd_status, "show the domains tuapd manages, their jobs and agents"},
	{"list", cmd_list, "list the domains tuapd manages"},
	{"watch", cmd_watch, "follow a domain's running job"},
	{"log", cmd_log, "show the setup log (make's output) of a domain's last job"},
	{"run", cmd_run, "run make again on a domain's host"},
	{"update-data", cmd_update_data, "send a new data.tar.gz and run make again"},
	{"enroll", cmd_enroll, "make a domain's agent keys and config for a host"},
	{"destroy", cmd_destroy, "power a domain's VM off and undefine it (--purge: all of it)"},
	{"snapshot", cmd_snapshot, "take a snapshot of a domain's VM"},
	{"restore", cmd_restore, "revert a domain's VM to a snapshot"},
	{"console-log", cmd_console_log, "show a domain's VM serial console log"},
	{"new", cmd_new, "create a skeleton domain directory"},
	{"pack", cmd_pack, "build DOMAIN/data.tar.gz from DOMAIN/site/"},
	{"help", cmd_help, "show the commands"},
	{"version", cmd_version, "show tuap-ctl's version"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: tuap-ctl COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'tuap-ctl COMMAND --help' describes a command.\n");
}

static int cmd_help(int argc, char **argv)
{
	usage(stdout);
	return CLI_OK;
}

static int cmd_version(int argc, char **argv)
{
	printf("tuap-ctl %s\n", TUAP_VERSION);
	return CLI_OK;
}

int cli_run(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "tuap-ctl: '%s' is not a command (see 'tuap-ctl help')\n", argv[1]);
	return CLI_USAGE;
}
