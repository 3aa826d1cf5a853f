/* ssh_import_id resolution against a real HTTP server on 127.0.0.1 (python3 http.server). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "settings.h"
#include "sshkeys.h"

static char dir[] = "/tmp/tuap-keys-XXXXXX";
static pid_t server;
static char gh[128], lp[128];

static void write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int start(void **state)
{
	int port = 20000 + (int)(getpid() % 20000);
	FILE *f;
	char *big = malloc(100 << 10);

	assert_non_null(mkdtemp(dir));
	write_file("alice.keys", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOck alice@a\n"
				 "ecdsa-sha2-nistp256 AAAAE2VjZHNh alice@b\n");
	write_file("mallory.keys", "<html>not a key</html>\n");
	write_file("empty.keys", "\n");
	memset(big, 'a', (100 << 10) - 1);
	big[(100 << 10) - 1] = '\0';
	write_file("big.keys", big);
	free(big);
	server = fork();
	assert_true(server >= 0);
	if (server == 0) {
		char p[16];

		snprintf(p, sizeof(p), "%d", port);
		freopen("/dev/null", "w", stderr);
		execlp("python3", "python3", "-m", "http.server", "--bind", "127.0.0.1",
		       "--directory", dir, p, (char *)NULL);
		_exit(127);
	}
	snprintf(gh, sizeof(gh), "http://127.0.0.1:%d/%%s.keys", port);
	snprintf(lp, sizeof(lp), "http://127.0.0.1:%d/lp-%%s.keys", port);
	/* wait (bounded) until the server answers */
	for (int i = 0; i < 100; i++) {
		char cmd[200];

		snprintf(cmd, sizeof(cmd), "curl -sf -o /dev/null http://127.0.0.1:%d/alice.keys",
			 port);
		if (system(cmd) == 0)
			return 0;
		usleep(100 * 1000);
	}
	f = stderr;
	fprintf(f, "http server did not start within 10 s\n");
	return -1;
}

static int stop(void **state)
{
	char cmd[128];

	kill(server, SIGTERM);
	waitpid(server, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static void test_fetch(void **state)
{
	struct settings s;
	struct tuap_err err;
	char *keys = NULL;

	settings_defaults(&s);
	snprintf(s.ssh_key_url_gh, sizeof(s.ssh_key_url_gh), "%s", gh);
	assert_int_equal(sshkeys_fetch(&s, "gh:alice", &keys, &err), 0);
	assert_string_equal(keys, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOck alice@a\n"
				  "ecdsa-sha2-nistp256 AAAAE2VjZHNh alice@b\n");
	free(keys);
}

static void test_refusals(void **state)
{
	struct settings s;
	struct tuap_err err;
	char *keys = NULL;

	settings_defaults(&s);
	snprintf(s.ssh_key_url_gh, sizeof(s.ssh_key_url_gh), "%s", gh);
	snprintf(s.ssh_key_url_lp, sizeof(s.ssh_key_url_lp), "%s", lp);
	assert_int_equal(sshkeys_fetch(&s, "gh:mallory", &keys, &err), -1);
	assert_non_null(strstr(err.msg, "not an SSH public key"));
	assert_int_equal(sshkeys_fetch(&s, "gh:empty", &keys, &err), -1);
	assert_non_null(strstr(err.msg, "lists no keys"));
	assert_int_equal(sshkeys_fetch(&s, "gh:big", &keys, &err), -1);
	assert_non_null(strstr(err.msg, "too large"));
	assert_int_equal(sshkeys_fetch(&s, "gh:nobody", &keys, &err), -1);
	assert_non_null(strstr(err.msg, "HTTP 404"));
	/* a bare name is Launchpad's, as in cloud-init; it goes to the lp template */
	assert_int_equal(sshkeys_fetch(&s, "alice", &keys, &err), -1);
	assert_non_null(strstr(err.msg, "lp-alice.keys"));
	assert_int_equal(sshkeys_fetch(&s, "gh:../../etc/passwd", &keys, &err), -1);
	assert_non_null(strstr(err.msg, "is not an account name"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fetch),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, start, stop);
}
