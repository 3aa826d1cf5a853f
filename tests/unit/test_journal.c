/* Unit tests for common/journal: escaping, durability rules, torn records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"

struct seen {
	int n;
	char last[3][256];
	size_t last_n;
};

static int collect(void *ctx, char **fields, size_t n, int lineno)
{
	struct seen *s = ctx;

	s->n++;
	s->last_n = n;
	for (size_t i = 0; i < n && i < 3; i++)
		snprintf(s->last[i], sizeof(s->last[i]), "%s", fields[i]);
	return 0;
}

static void tmp_path(char *out, size_t len)
{
	char dir[] = "/tmp/tuap-journal-XXXXXX";

	assert_non_null(mkdtemp(dir));
	snprintf(out, len, "%s/journal", dir);
}

static void cleanup(const char *path)
{
	char dir[256];

	unlink(path);
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	rmdir(dir);
}

static void test_roundtrip_escaping(void **state)
{
	const char *rec[] = {"job-1", "make", "a\tb\nc%d\r", ""};
	struct journal j;
	struct tuap_err e;
	struct seen s = {0};
	char path[256];

	tmp_path(path, sizeof(path));
	assert_int_equal(journal_open(&j, path, &e), 0);
	assert_int_equal(journal_append(&j, rec, 4, true, &e), 0);
	assert_int_equal(journal_append(&j, rec, 2, false, &e), 0);
	journal_close(&j);
	assert_int_equal(journal_replay(path, collect, &s, &e), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.last_n, 2);
	assert_string_equal(s.last[0], "job-1");
	assert_string_equal(s.last[1], "make");
	{
		/* the bytes on disk: tabs, newlines and % escaped, empty last field kept */
		char *data = NULL;
		size_t cap = 0;
		FILE *f = fopen(path, "r");

		assert_non_null(f);
		assert_true(getline(&data, &cap, f) > 0);
		fclose(f);
		assert_string_equal(data, "job-1\tmake\ta%09b%0Ac%25d%0D\t\n");
		free(data);
	}
	cleanup(path);
}

static void test_empty_fields_kept(void **state)
{
	const char *rec[] = {"", "x", ""};
	struct journal j;
	struct tuap_err e;
	struct seen s = {0};
	char path[256];

	tmp_path(path, sizeof(path));
	assert_int_equal(journal_open(&j, path, &e), 0);
	assert_int_equal(journal_append(&j, rec, 3, true, &e), 0);
	journal_close(&j);
	assert_int_equal(journal_replay(path, collect, &s, &e), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.last_n, 3);
	assert_string_equal(s.last[1], "x");
	assert_string_equal(s.last[2], "");
	cleanup(path);
}

static void test_torn_record(void **state)
{
	const char *rec[] = {"job-2", "data", "done"};
	struct journal j;
	struct tuap_err e;
	struct seen s = {0};
	char path[256];
	int fd;

	tmp_path(path, sizeof(path));
	assert_int_equal(journal_open(&j, path, &e), 0);
	assert_int_equal(journal_append(&j, rec, 3, true, &e), 0);
	journal_close(&j);
	/* a crash mid-write leaves half a record */
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "job-2\tma", 8), 8);
	close(fd);
	assert_int_equal(journal_replay(path, collect, &s, &e), 0);
	assert_int_equal(s.n, 1);
	/* reopening cuts the torn tail so the next record stands alone */
	assert_int_equal(journal_open(&j, path, &e), 0);
	assert_int_equal(journal_append(&j, rec, 3, true, &e), 0);
	journal_close(&j);
	s.n = 0;
	assert_int_equal(journal_replay(path, collect, &s, &e), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.last[0], "job-2");
	assert_string_equal(s.last[2], "done");
	cleanup(path);
}

static void test_malformed_and_missing(void **state)
{
	struct tuap_err e;
	struct seen s = {0};
	char path[256];
	FILE *f;

	tmp_path(path, sizeof(path));
	assert_int_equal(journal_replay(path, collect, &s, &e), 0);
	assert_int_equal(s.n, 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("bad%zz\tx\nok\ty\n", f);
	fclose(f);
	assert_int_equal(journal_replay(path, collect, &s, &e), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.last[0], "ok");
	cleanup(path);
}

static void test_limits(void **state)
{
	const char *many[JOURNAL_MAX_FIELDS + 1];
	char *big = malloc(JOURNAL_MAX_LINE + 10);
	struct journal j;
	struct tuap_err e;
	char path[256];

	for (size_t i = 0; i < JOURNAL_MAX_FIELDS + 1; i++)
		many[i] = "f";
	memset(big, 'x', JOURNAL_MAX_LINE + 9);
	big[JOURNAL_MAX_LINE + 9] = '\0';
	tmp_path(path, sizeof(path));
	assert_int_equal(journal_open(&j, path, &e), 0);
	assert_int_equal(journal_append(&j, many, JOURNAL_MAX_FIELDS + 1, false, &e), -1);
	assert_int_equal(journal_append(&j, (const char *const *)&big, 1, false, &e), -1);
	assert_non_null(strstr(e.msg, "too long"));
	journal_close(&j);
	free(big);
	cleanup(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_escaping),
		cmocka_unit_test(test_empty_fields_kept),
		cmocka_unit_test(test_torn_record),
		cmocka_unit_test(test_malformed_and_missing),
		cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
