/*
 * seed: the cidata ISO, checked with independent readers: isoinfo (volume id, Joliet, Rock
 * Ridge), xorriso (tree, modes, owners, extracted contents). Determinism: two writes in this
 * process and one in a fresh process under another time zone give the same bytes.
 */
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
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "hash.h"
#include "seed.h"

static char dir[64];
static const char *self;

#define META	"instance-id: i-0123\nlocal-hostname: web1\n"
#define NETCONF "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n"
#define USER	"#cloud-config\nruncmd:\n  - [/bin/sh, /mnt/tuap/install]\n"

static char agent_path[128], conf_path[128], install_path[128], unit_path[128];
static unsigned char agent[70000]; /* spans several 2 KiB blocks */

/* Runs argv, returns its stdout (caller frees) and fills *status. stderr goes to ours. */
static char *run(char *const argv[], int *status)
{
	int p[2];
	pid_t pid;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	char chunk[4096];
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	while ((n = read(p[0], chunk, sizeof(chunk))) > 0)
		fwrite(chunk, 1, (size_t)n, f);
	close(p[0]);
	fclose(f);
	assert_int_equal(waitpid(pid, status, 0), pid);
	return out;
}

static int have(const char *tool)
{
	char *argv[] = {"sh", "-c", "command -v \"$0\" >/dev/null", (char *)tool, NULL};
	int st;

	free(run(argv, &st));
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	struct tuap_err err;

	if (fs_write_atomic(path, data, len, mode, &err) < 0)
		fail_msg("%s", err.msg);
}

static size_t fill_files(struct seed_file *f, const char *user)
{
	size_t n = 0;

	f[n++] = (struct seed_file){"meta-data", META, strlen(META), NULL, 0644};
	f[n++] = (struct seed_file){"network-config", NETCONF, strlen(NETCONF), NULL, 0644};
	f[n++] = (struct seed_file){"user-data", user, strlen(user), NULL, 0644};
	f[n++] = (struct seed_file){"tuap/tuap-agent", NULL, 0, agent_path, 0755};
	f[n++] = (struct seed_file){"tuap/agent.conf", NULL, 0, conf_path, 0600};
	f[n++] = (struct seed_file){"tuap/install", NULL, 0, install_path, 0755};
	f[n++] = (struct seed_file){"tuap/tuap-agent.service", NULL, 0, unit_path, 0644};
	return n;
}

static void write_seed(const char *out, char sha[SHA256_HEX_LEN])
{
	struct seed_file f[8];
	struct tuap_err err;
	size_t n = fill_files(f, USER);

	if (seed_write(f, n, out, sha, &err) < 0)
		fail_msg("seed_write: %s", err.msg);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/tuap-seed-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	for (size_t i = 0; i < sizeof(agent); i++)
		agent[i] = (unsigned char)(i * 131 + i / 7);
	snprintf(agent_path, sizeof(agent_path), "%s/tuap-agent", dir);
	snprintf(conf_path, sizeof(conf_path), "%s/agent.conf", dir);
	snprintf(install_path, sizeof(install_path), "%s/install", dir);
	snprintf(unit_path, sizeof(unit_path), "%s/tuap-agent.service", dir);
	write_file(agent_path, agent, sizeof(agent), 0644); /* the mode comes from seed_file */
	write_file(conf_path, "endpoint = tcp://10.77.77.1:7447\n", 33, 0600);
	write_file(install_path, "#!/bin/sh\nset -eu\n", 18, 0755);
	write_file(unit_path, "[Service]\nExecStart=/usr/local/sbin/tuap-agent\n", 47, 0644);
	return 0;
}

static int teardown(void **state)
{
	char *argv[] = {"rm", "-rf", dir, NULL};
	int st;

	free(run(argv, &st));
	return 0;
}

static void test_deterministic(void **state)
{
	char a[128], b[128], c[128], sha_a[SHA256_HEX_LEN], sha_b[SHA256_HEX_LEN];
	char file_sha[SHA256_HEX_LEN], other[SHA256_HEX_LEN];
	struct tuap_err err;
	size_t la, lb, lc;
	int st;

	snprintf(a, sizeof(a), "%s/a.iso", dir);
	snprintf(b, sizeof(b), "%s/b.iso", dir);
	snprintf(c, sizeof(c), "%s/c.iso", dir);
	write_seed(a, sha_a);
	assert_int_equal(sha256_file_hex(a, file_sha, NULL, &err), 0);
	assert_string_equal(sha_a, file_sha);
	/* the sources' own times must not matter */
	struct timespec ts[2] = {{.tv_sec = 12345}, {.tv_sec = 12345}};
	assert_int_equal(utimensat(AT_FDCWD, agent_path, ts, 0), 0);
	write_seed(b, sha_b);
	assert_string_equal(sha_a, sha_b);

	/* a fresh process in another time zone */
	char *argv[] = {(char *)self, "--write", c, NULL};
	setenv("TZ", "America/New_York", 1);
	free(run(argv, &st));
	unsetenv("TZ");
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	char *da = fs_read_file(a, 1 << 24, &la, &err), *db = fs_read_file(b, 1 << 24, &lb, &err);
	char *dc = fs_read_file(c, 1 << 24, &lc, &err);
	assert_non_null(da);
	assert_non_null(db);
	assert_non_null(dc);
	assert_int_equal(la, lb);
	assert_int_equal(la, lc);
	assert_memory_equal(da, db, la);
	assert_memory_equal(da, dc, la);
	assert_true(la % 2048 == 0 && la > sizeof(agent));
	free(da);
	free(db);
	free(dc);

	/* one byte more in user-data: another image */
	struct seed_file f[8];
	size_t n = fill_files(f, USER "#");
	assert_int_equal(seed_write(f, n, b, other, &err), 0);
	assert_string_not_equal(other, sha_a);

	char name[64];
	assert_int_equal(seed_name(sha_a, name, sizeof(name), &err), 0);
	assert_int_equal(strlen(name), strlen("seed-0123456789abcdef.iso"));
	assert_int_equal(strncmp(name + 5, sha_a, 16), 0);
	assert_int_equal(seed_name("xyz", name, sizeof(name), &err), -1);
	assert_int_equal(seed_name(sha_a, name, 10, &err), -1);
}

static void test_isoinfo(void **state)
{
	char iso[128], sha[SHA256_HEX_LEN];
	int st;

	if (!have("isoinfo")) {
		fprintf(stderr, "isoinfo not installed (Debian package genisoimage): skipped\n");
		skip();
	}
	snprintf(iso, sizeof(iso), "%s/i.iso", dir);
	write_seed(iso, sha);
	char *argv[] = {"isoinfo", "-d", "-i", iso, NULL};
	char *out = run(argv, &st);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "Volume id: cidata\n"));
	assert_non_null(strstr(out, "Joliet with UCS level 3 found"));
	assert_non_null(strstr(out, "Rock Ridge signatures version 1 found"));
	free(out);

	/* cloud-init finds the seed by blkid's label */
	if (have("blkid")) {
		char *bargv[] = {"blkid", "-p", "-o", "value", "-s", "LABEL", iso, NULL};
		out = run(bargv, &st);
		assert_int_equal(st, 0);
		assert_string_equal(out, "cidata\n");
		free(out);
	}

	/* the Joliet tree carries the real names too */
	char *jargv[] = {"isoinfo", "-J", "-f", "-i", iso, NULL};
	out = run(jargv, &st);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "/meta-data\n"));
	assert_non_null(strstr(out, "/network-config\n"));
	assert_non_null(strstr(out, "/tuap/tuap-agent.service\n"));
	free(out);
}

static void expect_lsl(const char *out, const char *mode, const char *name)
{
	/* xorriso -lsl: "-rwxr-xr-x    1 0        0           70000 Jan  1  2000 'tuap-agent'" */
	const char *line = strstr(out, name);

	assert_non_null(line);
	while (line > out && line[-1] != '\n')
		line--;
	if (strncmp(line, mode, strlen(mode)) != 0)
		fail_msg("%s: expected mode %s in: %.80s", name, mode, line);
	assert_non_null(strstr(line, " 0        0 "));
}

static void test_xorriso(void **state)
{
	char iso[128], sha[SHA256_HEX_LEN], x[128], p[160];
	struct tuap_err err;
	size_t len;
	int st;

	snprintf(iso, sizeof(iso), "%s/x.iso", dir);
	write_seed(iso, sha);

	char *fargv[] = {"xorriso", "-report_about", "FAILURE", "-indev", iso, "-find", "/", NULL};
	char *out = run(fargv, &st);
	assert_int_equal(st, 0);
	const char *want[] = {"'/meta-data'\n",	      "'/network-config'\n",
			      "'/user-data'\n",	      "'/tuap'\n",
			      "'/tuap/tuap-agent'\n", "'/tuap/agent.conf'\n",
			      "'/tuap/install'\n",    "'/tuap/tuap-agent.service'\n"};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(out, want[i]))
			fail_msg("%s missing from: %s", want[i], out);
	free(out);

	char *largv[] = {"xorriso", "-report_about", "FAILURE", "-indev", iso, "-lsl",
			 "/",	    "/tuap",	     NULL};
	out = run(largv, &st);
	assert_int_equal(st, 0);
	expect_lsl(out, "-rw-r--r--", "'meta-data'");
	expect_lsl(out, "-rwxr-xr-x", "'tuap-agent'");
	expect_lsl(out, "-rw-------", "'agent.conf'");
	expect_lsl(out, "-rwxr-xr-x", "'install'");
	expect_lsl(out, "-rw-r--r--", "'tuap-agent.service'");
	expect_lsl(out, "drwxr-xr-x", "'tuap'");
	free(out);

	snprintf(x, sizeof(x), "%s/extract", dir);
	char *xargv[] = {"xorriso", "-report_about", "FAILURE", "-osirrox", "on", "-indev",
			 iso,	    "-extract",	     "/",	x,	    NULL};
	free(run(xargv, &st));
	assert_int_equal(st, 0);
	snprintf(p, sizeof(p), "%s/meta-data", x);
	char *d = fs_read_file(p, 1 << 20, &len, &err);
	assert_non_null(d);
	assert_string_equal(d, META);
	free(d);
	snprintf(p, sizeof(p), "%s/user-data", x);
	d = fs_read_file(p, 1 << 20, &len, &err);
	assert_non_null(d);
	assert_string_equal(d, USER);
	free(d);
	snprintf(p, sizeof(p), "%s/tuap/tuap-agent", x);
	d = fs_read_file(p, 1 << 20, &len, &err);
	assert_non_null(d);
	assert_int_equal(len, sizeof(agent));
	assert_memory_equal(d, agent, len);
	free(d);
	struct stat sb;
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0755);
	snprintf(p, sizeof(p), "%s/tuap/agent.conf", x);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
}

static void test_errors(void **state)
{
	char iso[128], sha[SHA256_HEX_LEN];
	struct tuap_err err;
	struct seed_file f[3];

	snprintf(iso, sizeof(iso), "%s/e.iso", dir);
	const char *bad[] = {"", "../x", "a//b", "a b", "/meta-data", "x/", ".", "a/../b", "é"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f[0] = (struct seed_file){bad[i], "x", 1, NULL, 0644};
		assert_int_equal(seed_write(f, 1, iso, sha, &err), -1);
		assert_non_null(strstr(err.msg, "is not a valid seed file name"));
	}
	f[0] = (struct seed_file){"meta-data", "x", 1, NULL, 0644};
	f[1] = (struct seed_file){"meta-data", "y", 1, NULL, 0644};
	assert_int_equal(seed_write(f, 2, iso, sha, &err), -1);
	assert_string_equal(err.msg, "seed: meta-data is given twice");

	f[1] = (struct seed_file){"tuap/agent", NULL, 0, "/nonexistent/agent", 0755};
	assert_int_equal(seed_write(f, 2, iso, sha, &err), -1);
	assert_string_equal(err.msg,
			    "seed: tuap/agent: /nonexistent/agent: No such file or directory");

	f[1] = (struct seed_file){"tuap", "file", 4, NULL, 0644};
	f[2] = (struct seed_file){"tuap/x", "x", 1, NULL, 0644};
	assert_int_equal(seed_write(f, 3, iso, sha, &err), -1);
	assert_string_equal(err.msg, "seed: tuap/x: tuap is a file, not a directory");

	f[1] = (struct seed_file){"none", NULL, 0, NULL, 0644};
	assert_int_equal(seed_write(f, 2, iso, sha, &err), -1);
	assert_string_equal(err.msg, "seed: none: neither data nor a source file");

	assert_int_equal(seed_write(f, 0, iso, sha, &err), -1);
	assert_int_equal(fs_exists(iso), 0); /* nothing written on failure */

	/* an empty file is fine */
	f[1] = (struct seed_file){"empty", "", 0, NULL, 0644};
	assert_int_equal(seed_write(f, 2, iso, sha, &err), 0);
	assert_int_equal(fs_exists(iso), 1);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_isoinfo),
		cmocka_unit_test(test_xorriso),
		cmocka_unit_test(test_errors),
	};

	self = argv[0];
	if (argc == 3 && !strcmp(argv[1], "--write")) {
		/* child of test_deterministic: same inputs, fresh process */
		char sha[SHA256_HEX_LEN];
		struct seed_file f[8];
		struct tuap_err err;
		const char *d = strrchr(argv[2], '/');
		snprintf(dir, sizeof(dir), "%.*s", (int)(d - argv[2]), argv[2]);
		snprintf(agent_path, sizeof(agent_path), "%s/tuap-agent", dir);
		snprintf(conf_path, sizeof(conf_path), "%s/agent.conf", dir);
		snprintf(install_path, sizeof(install_path), "%s/install", dir);
		snprintf(unit_path, sizeof(unit_path), "%s/tuap-agent.service", dir);
		size_t n = fill_files(f, USER);
		if (seed_write(f, n, argv[2], sha, &err) < 0) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		return 0;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
