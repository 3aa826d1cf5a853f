/* Unit tests for common/keys (key files) and common/agentconf (the agent's config file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentconf.h"
#include "fsutil.h"
#include "keys.h"
#include "wire.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/tuap-keys-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *path_of(const char *name)
{
	static char p[4][128];
	static int i;

	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
	return p[i];
}

static unsigned mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	struct tuap_err e;

	unlink(path);
	assert_int_equal(fs_write_atomic(path, text, strlen(text), mode, &e), 0);
}

static void test_generate(void **state)
{
	char pub[KEYS_Z85_SIZE], pub2[KEYS_Z85_SIZE], sec[KEYS_Z85_SIZE], derived[KEYS_Z85_SIZE];
	char *before, *after;
	struct tuap_err e;
	mode_t old = umask(0); /* the module must not depend on the caller's umask */
	size_t n;

	assert_int_equal(keys_generate(dir, "www.example.org", pub, &e), 0);
	umask(old);
	assert_int_equal(mode_of(path_of("www.example.org.key")), 0600);
	assert_int_equal(mode_of(path_of("www.example.org.pub")), 0644);
	assert_true(keys_valid(pub));
	assert_int_equal(keys_load_public(path_of("www.example.org.pub"), pub2, &e), 0);
	assert_string_equal(pub, pub2);
	assert_int_equal(keys_load_secret(path_of("www.example.org.key"), sec, &e), 0);
	assert_int_equal(keys_public_of(sec, derived, &e), 0);
	assert_string_equal(derived, pub);
	assert_string_not_equal(sec, pub);
	before = fs_read_file(path_of("www.example.org.key"), 100, &n, &e);
	assert_int_equal(n, KEYS_Z85_LEN + 1);
	assert_int_equal(before[KEYS_Z85_LEN], '\n');
	keys_wipe(sec, sizeof(sec));
	assert_int_equal(sec[0], 0);

	/* Never overwritten: the second generate fails and both files stay as they were. */
	assert_int_equal(keys_generate(dir, "www.example.org", NULL, &e), -1);
	assert_non_null(strstr(e.msg, "never overwritten"));
	after = fs_read_file(path_of("www.example.org.key"), 100, &n, &e);
	assert_string_equal(before, after);
	assert_int_equal(keys_load_public(path_of("www.example.org.pub"), pub2, &e), 0);
	assert_string_equal(pub, pub2);
	free(before);
	free(after);

	/* A stale .pub alone also blocks (and no .key is left behind). */
	write_file(path_of("stale.pub"), "x\n", 0644);
	assert_int_equal(keys_generate(dir, "stale", NULL, &e), -1);
	assert_false(fs_exists(path_of("stale.key")));

	/* A symlink planted where the secret goes is not followed. */
	assert_int_equal(symlink("/tmp/tuap-keys-victim", path_of("planted.key")), 0);
	assert_int_equal(keys_generate(dir, "planted", NULL, &e), -1);
	assert_false(fs_exists("/tmp/tuap-keys-victim"));
	assert_false(fs_exists(path_of("planted.pub")));

	/* Names that would escape the directory or hide the file. */
	assert_int_equal(keys_generate(dir, "../evil", NULL, &e), -1);
	assert_non_null(strstr(e.msg, "not a usable key name"));
	assert_int_equal(keys_generate(dir, ".hidden", NULL, &e), -1);
	assert_int_equal(keys_generate(dir, "", NULL, &e), -1);

	/* The server keypair is the same kind of thing. */
	assert_int_equal(keys_generate(dir, "server", NULL, &e), 0);
	assert_int_equal(keys_load_secret(path_of("server.key"), sec, &e), 0);
	keys_wipe(sec, sizeof(sec));
}

static void test_load_checks(void **state)
{
	char pub[KEYS_Z85_SIZE], sec[KEYS_Z85_SIZE];
	struct tuap_err e;

	assert_int_equal(keys_keypair(pub, sec, &e), 0);

	/* A readable secret is refused, naming the fix. */
	write_file(path_of("open.key"), sec, 0644);
	assert_int_equal(keys_load_secret(path_of("open.key"), sec, &e), -1);
	assert_non_null(strstr(e.msg, "mode 0644"));
	assert_non_null(strstr(e.msg, "chmod 600"));
	write_file(path_of("group.key"), sec, 0640);
	assert_int_equal(keys_load_secret(path_of("group.key"), sec, &e), -1);

	/* Through a symlink: refused. */
	write_file(path_of("real.key"), sec, 0600);
	assert_int_equal(symlink(path_of("real.key"), path_of("link.key")), 0);
	assert_int_equal(keys_load_secret(path_of("real.key"), sec, &e), 0);
	assert_int_equal(keys_load_secret(path_of("link.key"), sec, &e), -1);
	assert_non_null(strstr(e.msg, "symlink"));

	/* Malformed keys. */
	write_file(path_of("short.pub"), "abc\n", 0644);
	assert_int_equal(keys_load_public(path_of("short.pub"), pub, &e), -1);
	assert_non_null(strstr(e.msg, "40-character"));
	write_file(path_of("bad.pub"), "\"123456789012345678901234567890123456789\n", 0644);
	assert_int_equal(keys_load_public(path_of("bad.pub"), pub, &e), -1);
	assert_non_null(strstr(e.msg, "not a valid Z85 key"));
	write_file(path_of("two.pub"), "  ", 0644);
	assert_int_equal(keys_load_public(path_of("two.pub"), pub, &e), -1);
	assert_int_equal(keys_load_public(path_of("missing.pub"), pub, &e), -1);
	assert_false(keys_valid("0123456789012345678901234567890123456789x"));
	assert_false(keys_valid(NULL));
	keys_wipe(sec, sizeof(sec));
}

/* A valid config text with fresh keys; returns it in a static buffer. */
static const char *good_conf(struct agentconf *want)
{
	static char text[1024];
	char spub[KEYS_Z85_SIZE], ssec[KEYS_Z85_SIZE];

	agentconf_init(want);
	assert_int_equal(keys_keypair(spub, ssec, NULL), 0);
	assert_int_equal(keys_keypair(want->public_key, want->secret_key, NULL), 0);
	strcpy(want->server_public_key, spub);
	strcpy(want->endpoint, "tcp://127.0.0.1:7787");
	strcpy(want->domain, "www.example.org");
	strcpy(want->state_dir, "/var/lib/tuap-agent");
	snprintf(text, sizeof(text),
		 "# comment\n"
		 "\n"
		 "endpoint = tcp://127.0.0.1:7787\n"
		 "  server_public_key=%s\r\n"
		 "public_key = %s\n"
		 "secret_key\t=\t%s  \n"
		 "domain = www.example.org\n"
		 "state_dir = /var/lib/tuap-agent",
		 spub, want->public_key, want->secret_key);
	return text;
}

static void expect_error(const char *text, const char *want)
{
	struct agentconf c;
	struct tuap_err e;
	char msg[1024];

	assert_int_equal(agentconf_parse(&c, "agent.conf", text, strlen(text), &e), -1);
	err_str(&e, msg, sizeof(msg));
	if (!strstr(msg, want))
		fail_msg("got '%s', want '%s'", msg, want);
	/* Nothing of a rejected config is kept. */
	assert_int_equal(c.secret_key[0], 0);
}

static void test_agentconf_parse(void **state)
{
	struct agentconf want, c;
	struct tuap_err e;
	const char *text = good_conf(&want);
	char buf[2048];

	assert_int_equal(agentconf_parse(&c, "agent.conf", text, strlen(text), &e), 0);
	assert_memory_equal(&c, &want, sizeof(c));
	assert_int_equal(c.max_message, WIRE_MAX_MESSAGE);

	snprintf(buf, sizeof(buf), "%s\nmax_message = 512K\n", text);
	assert_int_equal(agentconf_parse(&c, "agent.conf", buf, strlen(buf), &e), 0);
	assert_int_equal(c.max_message, 512 * 1024);

	/* Each problem is reported at its line, with its key. */
	snprintf(buf, sizeof(buf), "%s\nbogus = 1\n", text);
	expect_error(buf, "agent.conf:9: bogus: unknown key");
	snprintf(buf, sizeof(buf), "%s\nendpoint = tcp://127.0.0.1:1\n", text);
	expect_error(buf, "agent.conf:9: endpoint: given twice (first on line 3)");
	snprintf(buf, sizeof(buf), "%s\njust words\n", text);
	expect_error(buf, "agent.conf:9: expected 'key = value'");
	snprintf(buf, sizeof(buf), "%s\nmax_message = 10\n", text);
	expect_error(buf, "agent.conf:9: max_message: 10 is outside");
	snprintf(buf, sizeof(buf), "%s\nmax_message = 1G\n", text);
	expect_error(buf, "agent.conf:9: max_message:");
	snprintf(buf, sizeof(buf), "%s\nmax_message =\n", text);
	expect_error(buf, "agent.conf:9: max_message: empty value");

	expect_error("endpoint = http://x:1\n", "agent.conf:1: endpoint: 'http://x:1' is not tcp");
	expect_error("endpoint = tcp://x:0\n",
		     "agent.conf:1: endpoint: 'tcp://x:0': the port must be");
	expect_error("endpoint = tcp://x:99999\n", "the port must be a number from 1 to 65535");
	expect_error("endpoint = tcp://x y:80\n", "the host holds a space");
	expect_error("\n\ndomain = Bad_Name\n", "agent.conf:3: domain:");
	expect_error("domain = a..b\n", "empty label");
	expect_error("state_dir = relative\n",
		     "agent.conf:1: state_dir: 'relative': it is not an absolute path");
	expect_error("secret_key = nope\n", "agent.conf:1: secret_key: not a 40-character");
	expect_error("# only a comment\n", "agent.conf: endpoint: missing (required)");

	/* A public key that is not the secret's. */
	{
		char other[KEYS_Z85_SIZE], osec[KEYS_Z85_SIZE];
		char *p;

		assert_int_equal(keys_keypair(other, osec, NULL), 0);
		snprintf(buf, sizeof(buf), "%s", text);
		p = strstr(buf, want.public_key);
		memcpy(p, other, KEYS_Z85_LEN);
		expect_error(buf, "agent.conf:5: public_key: does not belong to secret_key");
	}

	/* Bounded: a long line and a NUL byte. */
	memset(buf, 'a', 1500);
	buf[1500] = '\0';
	expect_error(buf, "agent.conf:1: line longer than");
	assert_int_equal(agentconf_parse(&c, "agent.conf", "a\0b", 3, &e), -1);
	assert_non_null(strstr(e.msg, "NUL"));
}

static void test_agentconf_write(void **state)
{
	struct agentconf want, c;
	struct tuap_err e;
	struct buf b = BUF_INIT;

	good_conf(&want);
	want.max_message = 300000;
	assert_int_equal(agentconf_write(&want, path_of("agent.conf"), &e), 0);
	assert_int_equal(mode_of(path_of("agent.conf")), 0600);
	assert_int_equal(agentconf_load(&c, path_of("agent.conf"), &e), 0);
	assert_memory_equal(&c, &want, sizeof(c));
	agentconf_wipe(&c);
	assert_int_equal(c.secret_key[0], 0);

	/* Loosened permissions: the agent refuses to start with it. */
	assert_int_equal(chmod(path_of("agent.conf"), 0644), 0);
	assert_int_equal(agentconf_load(&c, path_of("agent.conf"), &e), -1);
	assert_non_null(strstr(e.msg, "chmod 600"));

	/* Invalid values are not written. */
	strcpy(want.endpoint, "tcp://host");
	assert_int_equal(agentconf_write(&want, path_of("bad.conf"), &e), -1);
	assert_false(fs_exists(path_of("bad.conf")));
	/* Nor is a value that would smuggle in a second key. */
	good_conf(&want);
	strcpy(want.state_dir, "/x\nmax_message = 300000");
	assert_int_equal(agentconf_format(&want, &b, &e), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate),
		cmocka_unit_test(test_load_checks),
		cmocka_unit_test(test_agentconf_parse),
		cmocka_unit_test(test_agentconf_write),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
