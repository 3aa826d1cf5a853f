/*
 * tuap-ctl's command table: every subcommand once, with its operands, options and texts. The
 * table drives the parsing, each command's --help, `tuap-ctl help`, the bash completion and
 * the COMMANDS section of tuap-ctl(1) (tests/integration/test_cli_docs.sh fails when the man
 * page or README lags behind it). Commands that need the daemon talk to tuapd over its
 * control socket; the others (validate, new, pack, provision --dry-run) work on the domain
 * directory alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int cmd_help(const struct cli_args *a);
static int cmd_version(const struct cli_args *a);
static int cmd_completion(const struct cli_args *a);

#define OPT_JSON                                                                                   \
	{                                                                                          \
		"json", 0, NULL, "one JSON object per event on stdout"                             \
	}
#define OPT_LINES                                                                                  \
	{                                                                                          \
		"lines", 'n', "LINES", "only the last LINES lines"                                 \
	}

static const struct cli_opt provision_opts[] = {
	{"dry-run", 0, NULL,
	 "validate and show domain.xml, meta-data, network-config and user-data; create nothing"},
	{"output", 0, "DIR", "with --dry-run: write those files into DIR instead"},
	{"existing", 0, NULL,
	 "the host exists and its agent is enrolled ('tuap-ctl enroll'): create no VM, wait for "
	 "the agent's hello, run the steps"},
	{"resume", 0, NULL,
	 "continue the domain's last failed job where it stopped (or attach to the running one)"},
	{"rerun-make", 0, NULL, "with --resume: run make again even though it was started before"},
	{"rebuild", 0, NULL, "snapshot the VM, then recreate it with new keys and instance-id"},
	{"force-users", 0, NULL,
	 "apply users.yaml also to accounts changed by hand since the last run and to accounts "
	 "that existed before tuap (otherwise reported and left as they are)"},
	{"detach", 0, NULL, "start the job and return at once"},
	OPT_JSON,
	{0},
};
static const struct cli_opt json_opts[] = {OPT_JSON, {0}};
static const struct cli_opt lines_opts[] = {OPT_LINES, OPT_JSON, {0}};
static const struct cli_opt destroy_opts[] = {
	{"purge", 0, NULL, "also delete its disks, seeds, console log, agent key and journal"},
	OPT_JSON,
	{0},
};
static const struct cli_opt snapshot_opts[] = {
	{"list", 0, NULL, "list DOMAIN's snapshots (name, when, state), oldest first"},
	OPT_JSON,
	{0},
};
static const struct cli_opt restore_opts[] = {
	{"latest", 0, NULL, "the newest snapshot (the default)"},
	{"oldest", 0, NULL, "the oldest snapshot"},
	OPT_JSON,
	{0},
};
static const struct cli_opt enroll_opts[] = {
	{"output", 'o', "FILE", "where to write the agent's config (required)"},
	{"rotate", 0, NULL, "replace existing keys; the agent holding the old ones is refused"},
	{"endpoint", 0, "tcp://HOST:PORT",
	 "the address the agent connects to, if not tuapd.conf's public_endpoint"},
	{0},
};
static const struct cli_opt doctor_opts[] = {
	{"config", 0, "PATH", "tuapd.conf (default $TUAP_CONFIG, else /etc/tuap/tuapd.conf)"},
	{"json", 0, NULL, "the checks as one JSON array on stdout"},
	{0},
};
static const struct cli_opt help_opts[] = {
	{"man", 0, NULL, "print the COMMANDS section of tuap-ctl(1) in roff"},
	{0},
};

static const struct cli_cmd commands[] = {
	{"validate", "DOMAIN...", 1, -1, "check a domain directory; report every problem",
	 "Reads DOMAIN/provision.conf, DOMAIN/users.yaml and DOMAIN/data.tar.gz (the last two "
	 "when\n"
	 "present) and reports every problem on stderr as FILE:LINE: key: message. Nothing is\n"
	 "created or changed. Exit status: 0 when every DOMAIN is valid, 1 otherwise.",
	 NULL, cmd_validate, CLI_ANY_OPERAND},
	{"provision", "DOMAIN", 1, 1, "make a domain live (--dry-run: show what it would create)",
	 "Makes the site in the directory DOMAIN live: tuapd creates its VM (or, with depends_on\n"
	 "or --existing, uses the existing host), its agent creates the users, installs the\n"
	 "packages, sets the contact e-mail, restores data.tar.gz and runs make. Progress is "
	 "shown\n"
	 "live; Ctrl-C detaches and the job goes on ('tuap-ctl watch DOMAIN'). bin/provision "
	 "DOMAIN\n"
	 "is the same.",
	 provision_opts, cmd_provision, CLI_ANY_OPERAND},
	{"status", "[DOMAIN]", 0, 1, "show the domains tuapd manages, their jobs and agents",
	 "Shows each domain tuapd knows (or only DOMAIN): those with a job, those enrolled (keys\n"
	 "made by provision or enroll) and the hypervisor's VMs that carry tuap's metadata, with\n"
	 "the VM's state, the last job and the phase it reached, and the agent (version, host,\n"
	 "last seen). The name 'server' is tuapd's own key pair and is refused as a domain.",
	 json_opts, cmd_status, CLI_KNOWN_DOMAIN},
	{"list", "", 0, 0, "list the domains tuapd manages",
	 "Lists the domains tuapd manages, one line each, with the hypervisor each is on.",
	 json_opts, cmd_list, CLI_ANY_OPERAND},
	{"hypervisors", "", 0, 0, "show each hypervisor's capacity, use and reachability",
	 "Shows each hypervisor of tuapd.conf as libvirt reports it now: up or unreachable (and\n"
	 "why), memory committed to its domains (every defined domain's maximum, tuap's or not)\n"
	 "of what guests may have (host memory less reserve_memory), vCPUs committed of (CPUs\n"
	 "less reserve_cpus) x cpu_overcommit, the free space of its tuap-images pool, its\n"
	 "domains and tuap's sites among them, its URI and labels. Placement uses the same\n"
	 "figures.",
	 json_opts, cmd_hypervisors, CLI_ANY_OPERAND},
	{"watch", "DOMAIN", 1, 1, "follow a domain's running job",
	 "Follows DOMAIN's running job live (as 'tuap-ctl provision' shows it) until it ends.\n"
	 "Ctrl-C stops watching; the job goes on.",
	 json_opts, cmd_watch, CLI_KNOWN_DOMAIN},
	{"log", "DOMAIN", 1, 1, "show the setup log (make's output) of a domain's last job",
	 "Prints the setup log of DOMAIN's last job: the output of every step the agent ran,\n"
	 "make's included, each line prefixed by the step ('make| ...').",
	 lines_opts, cmd_log, CLI_KNOWN_DOMAIN},
	{"run", "DOMAIN make [TARGET]", 2, 3, "run make again on a domain's host",
	 "Runs make (the default target, or TARGET) again in DOMAIN's site tree on its host, with\n"
	 "its output shown live and kept as the domain's setup log ('tuap-ctl log DOMAIN').",
	 json_opts, cmd_run, CLI_KNOWN_DOMAIN},
	{"update-data", "DOMAIN", 1, 1, "send a new data.tar.gz and run make again",
	 "Sends DOMAIN/data.tar.gz (checked first) to the domain's host, where the agent replaces\n"
	 "the site tree (the previous one is kept beside it) and runs make again.",
	 json_opts, cmd_update_data, CLI_ANY_OPERAND},
	{"enroll", "DOMAIN -o FILE", 1, 1, "make a domain's agent keys and config for a host",
	 "Makes DOMAIN's agent keys and writes the agent's config to FILE (mode 0600): copy it to\n"
	 "the host as /etc/tuap-agent/agent.conf and start tuap-agent there, then run\n"
	 "'tuap-ctl provision --existing DOMAIN'. tuapd keeps only the public key.",
	 enroll_opts, cmd_enroll, CLI_ANY_OPERAND},
	{"destroy", "DOMAIN", 1, 1, "power a domain's VM off and undefine it (--purge: all of it)",
	 "Powers DOMAIN's VM off at once and undefines it; a job running for it is cancelled.\n"
	 "Its disks, seeds and console log (storage pool tuap-DOMAIN), its agent key and its\n"
	 "journal are kept, unless --purge: then they are deleted too, and tuapd forgets the\n"
	 "domain. No confirmation is asked; what was removed is printed. Only VMs that tuap made\n"
	 "are touched.",
	 destroy_opts, cmd_destroy, CLI_KNOWN_DOMAIN},
	{"snapshot", "DOMAIN [NAME]", 1, 2, "take a snapshot of a domain's VM",
	 "Takes a snapshot of DOMAIN's VM, inside its disk (with the memory when it runs), named\n"
	 "NAME or after the time (tuap-YYYYMMDD-HHMMSS). 'tuap-ctl restore' goes back to it.\n"
	 "With --list, lists the snapshots instead.",
	 snapshot_opts, cmd_snapshot, CLI_KNOWN_DOMAIN},
	{"restore", "DOMAIN [NAME]", 1, 2, "revert a domain's VM to a snapshot",
	 "Reverts DOMAIN's VM to its snapshot NAME, or its newest (--latest, the default) or\n"
	 "oldest one, and makes sure it runs afterwards. Whatever changed since is lost. Refused\n"
	 "while a job runs for the domain.",
	 restore_opts, cmd_restore, CLI_KNOWN_DOMAIN},
	{"console-log", "DOMAIN", 1, 1, "show a domain's VM serial console log",
	 "Prints the serial console log of DOMAIN's VM (kernel, systemd, cloud-init, the seed's\n"
	 "installer), cleaned of terminal escapes. At most the last 512 KiB of the log are read.",
	 lines_opts, cmd_console_log, CLI_KNOWN_DOMAIN},
	{"doctor", "", 0, 0, "check this host before a provision fails half-way",
	 "Checks, with your rights, what a provision needs of this hypervisor: tuapd.conf, tuapd\n"
	 "running (its version), your group (ctl_group) and tuapd's user in libvirt and kvm,\n"
	 "/dev/kvm (or TCG's slowdown), libvirt answering libvirt_uri (through virsh), the\n"
	 "management network and tuap's storage pools as tuapd.conf says, the public bridge, free\n"
	 "space under pool_root against what the domains' disks may still grow by, the catalog's\n"
	 "images cached and their sha256, tuapd listening on agent_endpoint, firewall input rules\n"
	 "dropping the agents' port, and the clock. One line per check: OK, WARN or FAIL, and for\n"
	 "WARN and FAIL the fix. Run it in the network namespace of tuapd and libvirtd. Exit\n"
	 "status: 0 when nothing FAILs, 1 otherwise.",
	 doctor_opts, cmd_doctor, CLI_ANY_OPERAND},
	{"new", "DOMAIN", 1, 1, "create a skeleton domain directory",
	 "Creates the directory DOMAIN/ with a commented provision.conf, a users.yaml and a site/\n"
	 "tree whose Makefile installs a static page. Edit them, run 'tuap-ctl pack DOMAIN' to\n"
	 "build data.tar.gz, 'tuap-ctl validate DOMAIN' to check, then 'tuap-ctl provision\n"
	 "DOMAIN'. DOMAIN must not exist yet.",
	 NULL, cmd_new, CLI_ANY_OPERAND},
	{"pack", "DOMAIN", 1, 1, "build DOMAIN/data.tar.gz from DOMAIN/site/",
	 "Builds DOMAIN/data.tar.gz from the files under DOMAIN/site/ (which must hold the\n"
	 "top-level Makefile whose default target sets the site up), replacing the previous\n"
	 "data.tar.gz only when the new one is complete. Entries are sorted and owned by root;\n"
	 "only files, directories and symlinks that stay inside site/ are accepted.",
	 NULL, cmd_pack, CLI_ANY_OPERAND},
	{"help", "[COMMAND]", 0, 1, "show the commands, or one command's help",
	 "Lists the commands, or shows COMMAND's help (as 'tuap-ctl COMMAND --help').", help_opts,
	 cmd_help, CLI_ANY_OPERAND},
	{"completion", "bash", 1, 1, "print a bash completion script",
	 "Prints the bash completion of tuap-ctl, e.g. for 'source <(tuap-ctl completion bash)'.\n"
	 "The package installs it where bash-completion finds it.",
	 NULL, cmd_completion, CLI_ANY_OPERAND},
	{"version", "", 0, 0, "show tuap-ctl's version", "Prints tuap-ctl's version.", NULL,
	 cmd_version, CLI_ANY_OPERAND},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct cli_cmd *find(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (!strcmp(name, commands[i].name))
			return &commands[i];
	return NULL;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: tuap-ctl COMMAND [OPTIONS] [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'tuap-ctl COMMAND --help' describes a command.\n");
}

static int cmd_help(const struct cli_args *a)
{
	const struct cli_cmd *c;

	if (cli_flag(a, "man")) {
		cli_print_man(commands, N_COMMANDS, stdout);
		return CLI_OK;
	}
	if (a->n_operands == 0) {
		usage(stdout);
		return CLI_OK;
	}
	if (!(c = find(a->operands[0])))
		return cli_usage_error("help", "'%s' is not a command", a->operands[0]);
	cli_print_help(c, stdout);
	return CLI_OK;
}

static int cmd_completion(const struct cli_args *a)
{
	if (strcmp(a->operands[0], "bash"))
		return cli_usage_error("completion", "only bash is known, not '%s'",
				       a->operands[0]);
	cli_print_bash_completion(commands, N_COMMANDS, stdout);
	return CLI_OK;
}

static int cmd_version(const struct cli_args *a)
{
	(void)a;
	printf("tuap-ctl %s\n", TUAP_VERSION);
	return CLI_OK;
}

int cli_run(int argc, char **argv)
{
	const struct cli_cmd *c;
	struct cli_args a;
	bool help;
	int rc;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (!strcmp(argv[1], "--version"))
		return cmd_version(NULL);
	if (!(c = find(argv[1]))) {
		fprintf(stderr, "tuap-ctl: '%s' is not a command (see 'tuap-ctl help')\n", argv[1]);
		return CLI_USAGE;
	}
	rc = cli_parse(c, argc - 1, argv + 1, &a, &help);
	if (rc == CLI_OK && help)
		cli_print_help(c, stdout);
	else if (rc == CLI_OK)
		rc = c->fn(&a);
	free(a.operands);
	return rc;
}
