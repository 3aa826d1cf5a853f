/* push: the ssh command line, remote-command quoting and ssh's error messages (push.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "push.h"

void push_shell_quote(struct buf *out, const char *arg)
{
	buf_adds(out, "'");
	for (const char *p = arg; *p; p++) {
		if (*p == '\'')
			buf_adds(out, "'\\''");
		else
			buf_add(out, p, 1);
	}
	buf_adds(out, "'");
}

void push_remote_command(struct buf *out, const char *const *argv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_adds(out, " ");
		push_shell_quote(out, argv[i]);
	}
}

void push_argv_add(struct push_argv *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		a->cap = a->cap ? a->cap * 2 : 32;
		a->v = realloc(a->v, a->cap * sizeof(*a->v));
		if (!a->v)
			abort();
	}
	if (!(a->v[a->n] = strdup(s)))
		abort();
	a->v[++a->n] = NULL;
}

static void argv_addf(struct push_argv *a, const char *fmt, ...) TUAP_PRINTF(2, 3);

static void argv_addf(struct push_argv *a, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	push_argv_add(a, s);
	free(s);
}

void push_argv_free(struct push_argv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

int push_ssh_dir_ok(const char *dir, struct tuap_err *err)
{
	/* ssh splits option values at blanks and expands % and ~ in file names */
	if (dir[0] != '/' || strpbrk(dir, " \t\n\"'\\%~"))
		return err_set(err,
			       "ssh.dir '%s' must be an absolute path without blanks, quotes, "
			       "backslashes, %% or ~ (ssh would misread it)",
			       dir);
	return 0;
}

void push_ssh_argv(const struct push_conf *c, const char *user, const char *host,
		   const char *remote, bool verbose, struct push_argv *out)
{
	char config[4096];
	FILE *f;

	push_argv_add(out, c->ssh_client);
	/* the operator's ssh_config in SSH_DIR/config (Port, ProxyJump); never ~/.ssh/config or
	 * /etc/ssh/ssh_config, which belong to someone else. Options given here win over it. */
	snprintf(config, sizeof(config), "%s/config", c->ssh_dir);
	push_argv_add(out, "-F");
	if ((f = fopen(config, "r"))) {
		fclose(f);
		push_argv_add(out, config);
	} else {
		push_argv_add(out, "none");
	}
	push_argv_add(out, "-T"); /* no tty: the remote command reads our payload */
	push_argv_add(out, "-x");
	push_argv_add(out, "-a");
	push_argv_add(out, "-l");
	push_argv_add(out, user);
	push_argv_add(out, "-i");
	argv_addf(out, "%s/id_ed25519", c->ssh_dir);
	static const char *const fixed[] = {
		"BatchMode=yes", /* never a password or passphrase prompt */
		"StrictHostKeyChecking=yes",
		"GlobalKnownHostsFile=/dev/null",
		"UpdateHostKeys=no",
		"CheckHostIP=no",
		"IdentitiesOnly=yes",
		"IdentityAgent=none",
		"PasswordAuthentication=no",
		"KbdInteractiveAuthentication=no",
		"PreferredAuthentications=publickey",
		"ClearAllForwardings=yes",
		"ForwardAgent=no",
		"ForwardX11=no",
		"PermitLocalCommand=no",
		"ControlMaster=no",
		"ControlPath=none",
		"ServerAliveInterval=15",
		"ServerAliveCountMax=4",
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		push_argv_add(out, "-o");
		push_argv_add(out, fixed[i]);
	}
	push_argv_add(out, "-o");
	argv_addf(out, "UserKnownHostsFile=%s/known_hosts", c->ssh_dir);
	push_argv_add(out, "-o");
	argv_addf(out, "ConnectTimeout=%u", c->connect_timeout_s ? c->connect_timeout_s : 15);
	push_argv_add(out, "-o");
	push_argv_add(out, verbose ? "LogLevel=DEBUG1" : "LogLevel=ERROR");
	push_argv_add(out, "--");
	push_argv_add(out, host);
	push_argv_add(out, remote);
}

static bool has(const char *line, const char *what)
{
	return strstr(line, what) != NULL;
}

enum push_ssh_problem push_ssh_diagnose(char *const *lines, size_t n)
{
	enum push_ssh_problem p = PUSH_SSH_NONE;

	for (size_t i = 0; i < n; i++) {
		const char *l = lines[i];

		if (has(l, "REMOTE HOST IDENTIFICATION HAS CHANGED") ||
		    has(l, "has changed and you have requested strict"))
			return PUSH_SSH_HOSTKEY_CHANGED;
		if ((has(l, "host key is known for") && has(l, "No ")) ||
		    has(l, "Host key verification failed"))
			p = PUSH_SSH_HOSTKEY_UNKNOWN;
		else if (p != PUSH_SSH_HOSTKEY_UNKNOWN) {
			if (has(l, "Permission denied (") || has(l, "Too many authentication"))
				p = PUSH_SSH_AUTH;
			else if (has(l, "Could not resolve hostname"))
				p = PUSH_SSH_RESOLVE;
			else if (has(l, "ssh: connect to host") || has(l, "Connection timed out") ||
				 has(l, "Connection refused") || has(l, "No route to host") ||
				 has(l, "Network is unreachable") ||
				 has(l, "Connection closed by") || has(l, "Connection reset by"))
				p = PUSH_SSH_CONNECT;
			else if (has(l, "Load key") || has(l, "no such identity") ||
				 has(l, "Bad owner or permissions") ||
				 has(l, "UNPROTECTED PRIVATE KEY FILE") ||
				 has(l, "Bad configuration option") ||
				 has(l, "Can't open user config file") ||
				 has(l, "bad configuration option"))
				p = PUSH_SSH_LOCAL;
		}
	}
	return p;
}
