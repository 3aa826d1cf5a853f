/* Unit tests for data.tar.gz checks (common/tarball.c): the entry rule as a table, and
 * tarball_check on the tarballs tests/data/make-tarballs writes at test time, each against the
 * first error line its expect.txt names; good tarballs' counts against Python's account and
 * their sha256 against sha256sum(1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "tarball.h"

extern char **environ;

struct entry_case {
	const char *path;
	enum tar_entry_type type;
	const char *link;
	const char *why; /* NULL: accepted */
};

static void test_entry_rule(void **state)
{
	static char long_name[TARBALL_MAX_PATH + 2];
	static char max_name[TARBALL_MAX_PATH + 1];
	const struct entry_case cases[] = {
		{"Makefile", TAR_FILE, NULL, NULL},
		{"./Makefile", TAR_FILE, NULL, NULL},
		{"./", TAR_DIR, NULL, NULL},
		{".", TAR_DIR, NULL, NULL},
		{"a//b/./c", TAR_FILE, NULL, NULL},
		{"a/b/", TAR_DIR, NULL, NULL},
		{"..a/b..", TAR_FILE, NULL, NULL},
		{max_name, TAR_FILE, NULL, NULL},
		{"", TAR_FILE, NULL, "empty name"},
		{long_name, TAR_FILE, NULL, "name longer than 4096 bytes"},
		{"/etc/passwd", TAR_FILE, NULL, "absolute path"},
		{"/", TAR_DIR, NULL, "absolute path"},
		{"..", TAR_DIR, NULL, "'..' component"},
		{"../x", TAR_FILE, NULL, "'..' component"},
		{"a/../../x", TAR_FILE, NULL, "'..' component"},
		{"a/..", TAR_DIR, NULL, "'..' component"},
		{"a/b/../c", TAR_FILE, NULL, "'..' component"},
		{"a\nb", TAR_FILE, NULL, "control character in name"},
		{".", TAR_FILE, NULL, "names the top directory but is not a directory"},
		{"dev/null", TAR_OTHER, NULL, "device, fifo or socket"},
		/* symlinks: resolved lexically from the link's directory */
		{"l", TAR_SYMLINK, "target", NULL},
		{"l", TAR_SYMLINK, ".", NULL},
		{"a/b/l", TAR_SYMLINK, "../../x", NULL},
		{"a/b/l", TAR_SYMLINK, "../c/../../d", NULL},
		{"a/l", TAR_SYMLINK, "./../b/./c", NULL},
		{"l", TAR_SYMLINK, "..", "symlink escapes the tree ('..')"},
		{"a/b/l", TAR_SYMLINK, "../../../x", "symlink escapes the tree ('../../../x')"},
		{"a/l", TAR_SYMLINK, "b/../../../x", "symlink escapes the tree ('b/../../../x')"},
		{"./l", TAR_SYMLINK, "./..", "symlink escapes the tree ('./..')"},
		{"etc", TAR_SYMLINK, "/etc", "symlink to absolute path '/etc'"},
		{"l", TAR_SYMLINK, "", "symlink with an empty target"},
		{"l", TAR_SYMLINK, NULL, "symlink with an empty target"},
		{"l", TAR_SYMLINK, long_name, "symlink target longer than 4096 bytes"},
		/* hardlinks: relative to the top, no '..' at all */
		{"h", TAR_HARDLINK, "a/b", NULL},
		{"h", TAR_HARDLINK, "/etc/shadow", "hardlink to absolute path '/etc/shadow'"},
		{"a/h", TAR_HARDLINK, "a/../b", "hardlink target has a '..' component ('a/../b')"},
		{"h", TAR_HARDLINK, "", "hardlink with an empty target"},
		{"h", TAR_HARDLINK, "./", "hardlink to the top directory"},
		{"l", TAR_SYMLINK, "a\rb", "control character in link target"},
		/* the name is checked before the link */
		{"../l", TAR_SYMLINK, "x", "'..' component"},
	};
	char why[512];

	memset(long_name, 'x', TARBALL_MAX_PATH + 1);
	memset(max_name, 'y', TARBALL_MAX_PATH);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct entry_case *c = &cases[i];
		int rc;

		strcpy(why, "untouched");
		rc = tar_entry_check(c->path, c->type, c->link, why, sizeof(why));
		if (!c->why && rc != 0)
			fail_msg("case %zu '%.40s': refused: %s", i, c->path, why);
		if (c->why && (rc != -1 || strcmp(why, c->why) != 0))
			fail_msg("case %zu '%.40s': rc %d, why '%s', want '%s'", i, c->path, rc,
				 why, c->why);
	}
	/* a long symlink target is shown shortened */
	long_name[300] = '\0';
	assert_int_equal(tar_entry_check("l", TAR_SYMLINK, long_name + 1, why, sizeof(why)), 0);
	long_name[0] = '/';
	assert_int_equal(tar_entry_check("l", TAR_SYMLINK, long_name, why, sizeof(why)), -1);
	assert_int_equal(strlen(why), strlen("symlink to absolute path ''") + 200 + 3);
}

/* Runs argv with stdout to out_path (when not NULL); returns the exit status. */
static int run(char *const argv[], const char *out_path)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status;

	assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
	if (out_path)
		assert_int_equal(posix_spawn_file_actions_addopen(
					 &fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600),
				 0);
	assert_int_equal(posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

struct fixture {
	char dir[64];
	int oldcwd;
};

/* Generates the tarballs into a fresh directory and makes it the working directory, so that
 * paths are passed as expect.txt names them. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *src = getenv("TUAP_SRC");
	struct buf script = BUF_INIT;
	int rc = -1;

	if (!f || !src)
		goto out;
	strcpy(f->dir, "/tmp/tuap-test-tarball-XXXXXX");
	if (!mkdtemp(f->dir))
		goto out;
	buf_addf(&script, "%s/tests/data/make-tarballs", src);
	{
		char *argv[] = {"python3", script.s, f->dir, NULL};

		if (run(argv, NULL) != 0)
			goto out;
	}
	f->oldcwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->oldcwd < 0 || chdir(f->dir) < 0)
		goto out;
	*state = f;
	f = NULL;
	rc = 0;
out:
	buf_free(&script);
	free(f);
	return rc;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = 0;

	if (fchdir(f->oldcwd) < 0 || nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		rc = -1;
	close(f->oldcwd);
	free(f);
	return rc;
}

/* Each tarball's first error line is the one expect.txt gives (or none for OK). */
static void test_generated(void **state)
{
	struct tuap_err err;
	size_t len;
	char *text = fs_read_file("expect.txt", 1 << 20, &len, &err);
	char *line, *save = NULL;
	int bad = 0, good = 0;

	assert_non_null(text);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(line, '\t'), first[1024];
		struct tarball_info info;
		struct diags d;
		int rc;

		assert_non_null(tab);
		*tab = '\0';
		diags_init(&d);
		rc = tarball_check(line, &info, &d);
		if (strcmp(tab + 1, "OK") == 0) {
			if (rc != 0 || d.n != 0)
				fail_msg("%s: want OK, got %s", line,
					 d.n ? err_str(&d.v[0].e, first, sizeof(first)) : "rc -1");
			assert_true(info.has_makefile);
			good++;
		} else {
			if (rc != -1 || d.n == 0)
				fail_msg("%s: accepted, want %s", line, tab + 1);
			err_str(&d.v[0].e, first, sizeof(first));
			if (strcmp(first, tab + 1) != 0)
				fail_msg("%s:\nwant %s\ngot  %s", line, tab + 1, first);
			bad++;
		}
		assert_true(info.present);
		assert_string_equal(info.path, line);
		diags_free(&d);
	}
	free(text);
	assert_true(bad >= 12);
	assert_true(good >= 2);
}

/* What the first entry alone cannot show: the file written through the refused link. */
static void test_write_through_symlink(void **state)
{
	struct tarball_info info;
	struct diags d;
	char line[1024];

	diags_init(&d);
	assert_int_equal(tarball_check("symlink-then-file.tar.gz", &info, &d), -1);
	assert_int_equal(d.n, 2);
	assert_string_equal(err_str(&d.v[0].e, line, sizeof(line)),
			    "symlink-then-file.tar.gz: entry 'd': symlink to absolute path '/tmp'");
	assert_string_equal(err_str(&d.v[1].e, line, sizeof(line)),
			    "symlink-then-file.tar.gz: entry 'd/x': path goes through symlink 'd' "
			    "of the archive");
	diags_free(&d);

	/* and every entry alone passes the per-entry rule */
	assert_int_equal(tar_entry_check("d/x", TAR_FILE, NULL, line, sizeof(line)), 0);
	assert_int_equal(tar_entry_check("d", TAR_SYMLINK, "sub", line, sizeof(line)), 0);
	assert_int_equal(tar_entry_check("e", TAR_SYMLINK, "d/x/../..", line, sizeof(line)), 0);
}

static void sha256sum(const char *file, char hex[65])
{
	char *argv[] = {"sha256sum", (char *)file, NULL};
	struct tuap_err err;
	size_t len;
	char *out;

	assert_int_equal(run(argv, "sha256sum.out"), 0);
	out = fs_read_file("sha256sum.out", 4096, &len, &err);
	assert_non_null(out);
	assert_true(len > 64 && out[64] == ' ');
	memcpy(hex, out, 64);
	hex[64] = '\0';
	free(out);
	unlink("sha256sum.out");
}

/* Good tarballs: entries and bytes as Python's tarfile wrote them, size as stat(2) sees it,
 * sha256 as sha256sum(1) computes it; the in-memory check agrees with the file check. */
static void test_good_counts_and_hash(void **state)
{
	struct tuap_err err;
	size_t len;
	char *text = fs_read_file("counts.txt", 1 << 20, &len, &err);
	char *line, *save = NULL;
	int n = 0;

	assert_non_null(text);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char file[256], hex[65];
		unsigned long long entries, bytes;
		struct tarball_info info, minfo;
		struct diags d;
		struct stat st;
		char *data;
		size_t dlen;

		assert_int_equal(sscanf(line, "%255[^\t]\t%llu\t%llu", file, &entries, &bytes), 3);
		diags_init(&d);
		assert_int_equal(tarball_check(file, &info, &d), 0);
		assert_int_equal(info.entries, entries);
		assert_int_equal(info.total_bytes, bytes);
		assert_true(info.has_makefile);
		assert_int_equal(stat(file, &st), 0);
		assert_int_equal(info.file_size, (uint64_t)st.st_size);
		sha256sum(file, hex);
		assert_string_equal(info.sha256, hex);

		data = fs_read_file(file, 1 << 24, &dlen, &err);
		assert_non_null(data);
		assert_int_equal(tarball_check_memory(file, data, dlen, &minfo, &d), 0);
		assert_int_equal(minfo.entries, entries);
		assert_int_equal(minfo.total_bytes, bytes);
		assert_string_equal(minfo.sha256, hex);
		assert_int_equal(d.n, 0);
		free(data);
		diags_free(&d);
		n++;
	}
	free(text);
	assert_true(n >= 2);
}

/* Broken files are hashed too (the controller names what it refused), and a path that is not
 * a regular file is refused. */
static void test_odd_inputs(void **state)
{
	struct tarball_info info;
	struct diags d;
	char hex[65], line[1024];

	diags_init(&d);
	assert_int_equal(tarball_check("truncated.tar.gz", &info, &d), -1);
	sha256sum("truncated.tar.gz", hex);
	assert_string_equal(info.sha256, hex);
	diags_free(&d);

	diags_init(&d);
	assert_int_equal(tarball_check(".", &info, &d), -1);
	assert_string_equal(err_str(&d.v[0].e, line, sizeof(line)), ".: not a regular file");
	diags_free(&d);

	/* a fifo is refused without waiting for a writer */
	assert_int_equal(mkfifo("named-pipe", 0600), 0);
	diags_init(&d);
	assert_int_equal(tarball_check("named-pipe", &info, &d), -1);
	assert_string_equal(err_str(&d.v[0].e, line, sizeof(line)),
			    "named-pipe: not a regular file");
	diags_free(&d);
	unlink("named-pipe");

	diags_init(&d);
	assert_int_equal(tarball_check("missing.tar.gz", &info, &d), -1);
	assert_string_equal(err_str(&d.v[0].e, line, sizeof(line)),
			    "missing.tar.gz: No such file or directory");
	diags_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entry_rule),
		cmocka_unit_test(test_generated),
		cmocka_unit_test(test_write_through_symlink),
		cmocka_unit_test(test_good_counts_and_hash),
		cmocka_unit_test(test_odd_inputs),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
