/* Unit tests for common/err.c: error formatting and diagnostics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "fsutil.h"
#include "hash.h"

static void test_err_format(void **state)
{
	struct tuap_err e;
	char buf[1024];

	assert_int_equal(err_at(&e, "a/provision.conf", 3, "ips", "bad '%s'", "x"), -1);
	assert_string_equal(err_str(&e, buf, sizeof(buf)), "a/provision.conf:3: ips: bad 'x'");
	err_set(&e, "plain");
	assert_string_equal(err_str(&e, buf, sizeof(buf)), "plain");
	err_at(&e, "f", 0, "", "no line");
	assert_string_equal(err_str(&e, buf, sizeof(buf)), "f: no line");
}

static void test_diags(void **state)
{
	struct diags d;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	diags_init(&d);
	diag_error(&d, "p.conf", 1, "size", "too small");
	diag_warn(&d, "p.conf", 2, "pkey_loc", "obsolete");
	for (int i = 0; i < DIAGS_MAX + 5; i++)
		diag_error(&d, "p.conf", 9, "k", "e%d", i);
	assert_int_equal(d.errors, DIAGS_MAX + 6);
	assert_int_equal(d.warnings, 1);
	assert_int_equal(d.n, DIAGS_MAX);
	diags_print(&d, f);
	fclose(f);
	assert_non_null(strstr(out, "p.conf:1: size: too small\n"));
	assert_non_null(strstr(out, "p.conf:2: pkey_loc: warning: obsolete\n"));
	assert_non_null(strstr(out, "(7 more diagnostics not shown)"));
	free(out);
	diags_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_format),
		cmocka_unit_test(test_diags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
