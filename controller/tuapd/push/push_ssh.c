/* push: the ssh side: children, tuapd's key, the command line, remote-command quoting and
 * ssh's error messages (push.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "push.h"

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
		   const char *remote, bool verbose, struct strlist *out)
{
	char config[4096];
	FILE *f;

	strlist_add(out, c->ssh_client);
	/* the operator's ssh_config in SSH_DIR/config (Port, ProxyJump); never ~/.ssh/config or
	 * /etc/ssh/ssh_config, which belong to someone else. Options given here win over it. */
	snprintf(config, sizeof(config), "%s/config", c->ssh_dir);
	strlist_add(out, "-F");
	if ((f = fopen(config, "r"))) {
		fclose(f);
		strlist_add(out, config);
	} else {
		strlist_add(out, "none");
	}
	strlist_add(out, "-T"); /* no tty: the remote command reads our payload */
	strlist_add(out, "-x");
	strlist_add(out, "-a");
	strlist_add(out, "-l");
	strlist_add(out, user);
	strlist_add(out, "-i");
	strlist_addf(out, "%s/id_ed25519", c->ssh_dir);
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
		strlist_add(out, "-o");
		strlist_add(out, fixed[i]);
	}
	strlist_add(out, "-o");
	strlist_addf(out, "UserKnownHostsFile=%s/known_hosts", c->ssh_dir);
	strlist_add(out, "-o");
	strlist_addf(out, "ConnectTimeout=%u", c->connect_timeout_s ? c->connect_timeout_s : 15);
	strlist_add(out, "-o");
	strlist_add(out, verbose ? "LogLevel=DEBUG1" : "LogLevel=ERROR");
	strlist_add(out, "--");
	strlist_add(out, host);
	strlist_add(out, remote);
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

pid_t push_spawn(char *const *argv, int in_fd, int *out_fd, struct tuap_err *err)
{
	static char *const envp[] = {"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL=C", NULL};
	int p[2], devnull = -1;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return err_set(err, "pipe: %s", strerror(errno));
	if (in_fd < 0 && (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		close(p[0]);
		close(p[1]);
		return err_set(err, "/dev/null: %s", strerror(errno));
	}
	pid = fork();
	if (pid == 0) {
		/* async-signal-safe calls only: tuapd has threads (ZeroMQ's) */
		struct sigaction dfl = {.sa_handler = SIG_DFL};
		sigset_t none;

		prctl(PR_SET_PDEATHSIG, SIGTERM); /* tuapd gone: so is its ssh */
		sigaction(SIGPIPE, &dfl, NULL);
		sigaction(SIGTERM, &dfl, NULL);
		sigaction(SIGINT, &dfl, NULL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(in_fd >= 0 ? in_fd : devnull, 0) < 0 || dup2(p[1], 1) < 0 ||
		    dup2(p[1], 2) < 0)
			_exit(127);
		close_range(3, ~0U, 0);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	if (devnull >= 0)
		close(devnull);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return err_set(err, "fork: %s", strerror(errno));
	}
	fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
	*out_fd = p[0];
	return pid;
}

/* Runs argv to its end (ssh-keygen: instant), bounded by a few seconds. */
static int run_sync(char *const *argv, struct tuap_err *err)
{
	char out[512];
	size_t len = 0;
	int fd, status = 0;
	pid_t pid = push_spawn(argv, -1, &fd, err);
	int64_t end = mono_ms() + 10000;

	if (pid < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, out + len, sizeof(out) - 1 - len);

		if (n > 0 && (len += (size_t)n) < sizeof(out) - 1)
			continue;
		if (n == 0 || len == sizeof(out) - 1)
			break;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			break;
		if (mono_ms() > end) {
			kill(pid, SIGKILL);
			break;
		}
		usleep(10000);
	}
	close(fd);
	out[len] = '\0';
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return err_set(err, "%s failed: %s", argv[0], *out ? out : "(no output)");
	return 0;
}

int push_ssh_setup(const struct push_conf *c, struct tuap_err *err)
{
	static const char *const keygen_args[] = {"-q", "-t", "ed25519", "-N", "", "-C"};
	static const char kh_text[] =
		"# The SSH host keys tuapd accepts (tuapd.conf(5), ssh.dir). Add a host's key\n"
		"# after checking its fingerprint, e.g. ssh-keyscan -t ed25519 HOST >> this "
		"file.\n";
	char key[PATH_MAX + 16], kh[PATH_MAX + 16], keygen[PATH_MAX + 16], comment[300],
		host[256] = "tuapd";
	struct strlist av = {0};
	char *slash;
	int rc;

	/* the operators (tuapd's group) read the public key and add host keys; the private key
	 * itself is 0600 */
	if (push_ssh_dir_ok(c->ssh_dir, err) < 0 || fs_mkdir_p(c->ssh_dir, 0750, err) < 0)
		return -1;
	snprintf(kh, sizeof(kh), "%s/known_hosts", c->ssh_dir);
	if (!fs_exists(kh)) {
		if (fs_write_atomic(kh, kh_text, strlen(kh_text), 0664, err) < 0)
			return -1;
		chmod(kh, 0664);
	}
	snprintf(key, sizeof(key), "%s/id_ed25519", c->ssh_dir);
	if (fs_exists(key))
		return 0;
	snprintf(keygen, sizeof(keygen), "%s", c->ssh_client);
	slash = strrchr(keygen, '/');
	snprintf(slash + 1, sizeof(keygen) - (size_t)(slash + 1 - keygen), "ssh-keygen");
	gethostname(host, sizeof(host) - 1);
	snprintf(comment, sizeof(comment), "tuapd@%s", host);
	strlist_add(&av, keygen);
	for (size_t i = 0; i < sizeof(keygen_args) / sizeof(keygen_args[0]); i++)
		strlist_add(&av, keygen_args[i]);
	strlist_add(&av, comment);
	strlist_add(&av, "-f");
	strlist_add(&av, key);
	rc = run_sync(av.v, err);
	strlist_free(&av);
	if (rc == 0)
		log_info("made tuapd's SSH key %s.pub: authorize it for admin_user on existing "
			 "hosts",
			 key);
	return rc;
}
