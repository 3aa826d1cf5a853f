/* Helpers shared by tuap-ctl's subcommands; see cli.h. */
#include "cli.h"

#include "ctlclient.h"
#include "fsutil.h"
#include "progress.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the command table's machinery ---- */

static int opt_index(const struct cli_cmd *cmd, const char *name)
{
	for (int i = 0; cmd->opts && cmd->opts[i].name; i++)
		if (!strcmp(cmd->opts[i].name, name))
			return i;
	return -1;
}

const char *cli_opt(const struct cli_args *a, const char *name)
{
	int i = opt_index(a->cmd, name);

	if (i < 0) {
		fprintf(stderr, "tuap-ctl %s: bug: no option --%s in the table\n", a->cmd->name,
			name);
		abort();
	}
	return a->val[i];
}

bool cli_flag(const struct cli_args *a, const char *name)
{
	return cli_opt(a, name) != NULL;
}

/* The option argv[*i] names (--name, --name=value, -L, -Lvalue), its value taken from the
 * same or the next word. -1 with the error printed. */
static int take_opt(const struct cli_cmd *cmd, int argc, char **argv, int *i, struct cli_args *a)
{
	const char *w = argv[*i], *eq = NULL, *val = NULL;
	int k = -1;

	if (w[1] == '-') {
		size_t n;

		eq = strchr(w + 2, '=');
		n = eq ? (size_t)(eq - w - 2) : strlen(w + 2);
		for (int j = 0; cmd->opts && cmd->opts[j].name; j++)
			if (strlen(cmd->opts[j].name) == n && !strncmp(cmd->opts[j].name, w + 2, n))
				k = j;
		if (eq)
			val = eq + 1;
	} else {
		for (int j = 0; cmd->opts && cmd->opts[j].name; j++)
			if (cmd->opts[j].letter && cmd->opts[j].letter == w[1])
				k = j;
		if (k >= 0 && w[2])
			val = w + 2;
	}
	if (k < 0)
		return cli_usage_error(cmd->name, "unknown option '%s'", w), -1;
	if (!cmd->opts[k].arg) {
		if (val)
			return cli_usage_error(cmd->name, "--%s takes no value", cmd->opts[k].name),
			       -1;
		a->val[k] = "";
		return 0;
	}
	if (!val) {
		if (*i + 1 >= argc)
			return cli_usage_error(cmd->name, "%s wants %s", w, cmd->opts[k].arg), -1;
		val = argv[++*i];
	}
	a->val[k] = val;
	return 0;
}

int cli_parse(const struct cli_cmd *cmd, int argc, char **argv, struct cli_args *a, bool *help)
{
	bool only_operands = false;

	memset(a, 0, sizeof(*a));
	*help = false;
	a->cmd = cmd;
	if (!(a->operands = calloc((size_t)argc + 1, sizeof(*a->operands))))
		abort();
	for (int i = 1; i < argc; i++) {
		const char *w = argv[i];

		if (!only_operands && (!strcmp(w, "-h") || !strcmp(w, "--help"))) {
			*help = true;
			return CLI_OK;
		}
		if (!only_operands && !strcmp(w, "--")) {
			only_operands = true;
			continue;
		}
		if (!only_operands && w[0] == '-' && w[1]) {
			if (take_opt(cmd, argc, argv, &i, a) < 0)
				return CLI_USAGE;
			continue;
		}
		if (cmd->max_operands >= 0 && a->n_operands >= cmd->max_operands)
			return cli_usage_error(cmd->name, "unexpected '%s'", w);
		a->operands[a->n_operands++] = argv[i];
	}
	if (a->n_operands < cmd->min_operands) {
		if (a->n_operands == 0 && !strncmp(cmd->operands, "DOMAIN", 6))
			return cli_usage_error(cmd->name, "which DOMAIN?");
		return cli_usage_error(cmd->name, "expected %s", cmd->operands);
	}
	return CLI_OK;
}

/* "--name ARG" or "-L, --name ARG" */
static void opt_form(const struct cli_opt *o, char *out, size_t len)
{
	char letter[8] = "";

	if (o->letter)
		snprintf(letter, sizeof(letter), "-%c, ", o->letter);
	snprintf(out, len, "%s--%s%s%s", letter, o->name, o->arg ? " " : "", o->arg ? o->arg : "");
}

/* text from column indent (the cursor is there) to width, words kept whole */
static void wrap(FILE *out, const char *text, int indent, int width)
{
	int col = indent;

	while (*text) {
		size_t n = strcspn(text, " ");

		if (col > indent && col + 1 + (int)n > width) {
			fprintf(out, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', out);
			col++;
		}
		fwrite(text, 1, n, out);
		col += (int)n;
		text += n;
		text += strspn(text, " ");
	}
	fputc('\n', out);
}

static void usage_line(const struct cli_cmd *cmd, FILE *out)
{
	fprintf(out, "usage: tuap-ctl %s", cmd->name);
	if (cmd->opts && cmd->opts[0].name)
		fprintf(out, " [OPTIONS]");
	if (cmd->operands[0])
		fprintf(out, " %s", cmd->operands);
	fputc('\n', out);
}

void cli_print_help(const struct cli_cmd *cmd, FILE *out)
{
	char form[64];

	usage_line(cmd, out);
	fprintf(out, "\n%s\n", cmd->description);
	if (!cmd->opts || !cmd->opts[0].name)
		return;
	fputc('\n', out);
	for (const struct cli_opt *o = cmd->opts; o->name; o++) {
		opt_form(o, form, sizeof(form));
		if (strlen(form) < 20)
			fprintf(out, "  %-20s ", form);
		else
			fprintf(out, "  %s\n%23s", form, "");
		wrap(out, o->help, 23, 92);
	}
}

/* Text for roff: '-' and '\' escaped, a line starting with '.' or '\'' protected. */
static void roff(FILE *out, const char *s)
{
	bool bol = true;

	for (; *s; s++) {
		if (bol && (*s == '.' || *s == '\''))
			fputs("\\&", out);
		if (*s == '-')
			fputs("\\-", out);
		else if (*s == '\\')
			fputs("\\e", out);
		else
			fputc(*s, out);
		bol = *s == '\n';
	}
}

void cli_print_man(const struct cli_cmd *cmds, size_t n, FILE *out)
{
	for (size_t i = 0; i < n; i++) {
		const struct cli_cmd *c = &cmds[i];

		fputs(".TP\n.B \"", out);
		roff(out, c->name);
		if (c->opts && c->opts[0].name)
			fputs(" [OPTIONS]", out);
		if (c->operands[0]) {
			fputc(' ', out);
			roff(out, c->operands);
		}
		fputs("\"\n", out);
		roff(out, c->description);
		fputc('\n', out);
		if (!c->opts || !c->opts[0].name)
			continue;
		fputs(".RS\n", out);
		for (const struct cli_opt *o = c->opts; o->name; o++) {
			fputs(".TP\n.B \"", out);
			if (o->letter)
				fprintf(out, "\\-%c, ", o->letter);
			fputs("\\-\\-", out);
			roff(out, o->name);
			if (o->arg) {
				fputc(' ', out);
				roff(out, o->arg);
			}
			fputs("\"\n", out);
			roff(out, o->help);
			fputc('\n', out);
		}
		fputs(".RE\n", out);
	}
}

void cli_print_bash_completion(const struct cli_cmd *cmds, size_t n, FILE *out)
{
	fputs("# bash completion for tuap-ctl, made by 'tuap-ctl completion bash'\n"
	      "# the domains tuapd knows, and a domain's snapshots (each asked of tuapd, bounded)\n"
	      "_tuap_ctl_domains() {\n"
	      "\ttimeout 2 \"$1\" list 2>/dev/null | awk 'NR > 1 && $1 != \"steps:\" { print $1 "
	      "}'\n"
	      "}\n"
	      "_tuap_ctl_snapshots() {\n"
	      "\ttimeout 5 \"$1\" snapshot \"$2\" --list 2>/dev/null |\n"
	      "\t\tawk '$2 ~ /^[0-9][0-9][0-9][0-9]-/ { print $1 }'\n"
	      "}\n"
	      "_tuap_ctl() {\n"
	      "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
	      "\tlocal opts='' args='' known=0 i n=0 first=''\n"
	      "\tif [ \"$COMP_CWORD\" -eq 1 ]; then\n"
	      "\t\tCOMPREPLY=($(compgen -W '",
	      out);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s%s", i ? " " : "", cmds[i].name);
	fputs("' -- \"$cur\"))\n\t\treturn\n\tfi\n\tcase ${COMP_WORDS[1]} in\n", out);
	for (size_t i = 0; i < n; i++) {
		const struct cli_cmd *c = &cmds[i];

		fprintf(out, "\t%s)\n\t\topts='--help", c->name);
		for (const struct cli_opt *o = c->opts; o && o->name; o++)
			fprintf(out, " --%s", o->name);
		fputs("'\n\t\targs='", out);
		bool first = true;
		for (const struct cli_opt *o = c->opts; o && o->name; o++) {
			if (!o->arg)
				continue;
			fprintf(out, "%s--%s", first ? "" : "|", o->name);
			if (o->letter)
				fprintf(out, "|-%c", o->letter);
			first = false;
		}
		fprintf(out, "' known=%d ;;\n", c->operand == CLI_KNOWN_DOMAIN);
	}
	fputs("\tesac\n"
	      "\t# an option's value: a file or directory name\n"
	      "\tif [ -n \"$args\" ] && [[ \"|$args|\" == *\"|$prev|\"* ]]; then\n"
	      "\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n"
	      "\t\treturn\n"
	      "\tfi\n"
	      "\t# the operands before this word (an option's value is none)\n"
	      "\tfor ((i = 2; i < COMP_CWORD; i++)); do\n"
	      "\t\t[[ ${COMP_WORDS[i]} == -* ]] && continue\n"
	      "\t\t[ -n \"$args\" ] && [[ \"|$args|\" == *\"|${COMP_WORDS[i-1]}|\"* ]] && "
	      "continue\n"
	      "\t\tn=$((n + 1))\n"
	      "\t\t[ -n \"$first\" ] || first=${COMP_WORDS[i]}\n"
	      "\tdone\n"
	      "\tif [[ $cur == -* ]]; then\n"
	      "\t\tCOMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
	      "\telif [ \"$known\" = 1 ] && [ \"$n\" = 0 ]; then\n"
	      "\t\tCOMPREPLY=($(compgen -W \"$(_tuap_ctl_domains \"${COMP_WORDS[0]}\")\" -- "
	      "\"$cur\"))\n"
	      "\telif [ \"${COMP_WORDS[1]}\" = restore ] && [ \"$n\" = 1 ]; then\n"
	      "\t\tCOMPREPLY=($(compgen -W \"$(_tuap_ctl_snapshots \"${COMP_WORDS[0]}\" "
	      "\"$first\")\" -- \"$cur\"))\n"
	      "\telse\n"
	      "\t\tCOMPREPLY=($(compgen -d -- \"$cur\"))\n"
	      "\tfi\n"
	      "}\n"
	      "complete -o filenames -F _tuap_ctl tuap-ctl\n",
	      out);
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
	return fs_strip_slashes(arg);
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
