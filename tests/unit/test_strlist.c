/* Unit tests for common/strlist.c: the one string-list type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "strlist.h"

static void test_add_and_argv(void **state)
{
	struct strlist l = {0};

	(void)state;
	strlist_add(&l, "ssh");
	strlist_addn(&l, "-lroot", 2);
	strlist_addf(&l, "%s/id_%d", "/var/lib/tuap/ssh", 25519);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0], "ssh");
	assert_string_equal(l.v[1], "-l");
	assert_string_equal(l.v[2], "/var/lib/tuap/ssh/id_25519");
	assert_null(l.v[3]); /* an argv for execv as it stands */
	for (int i = 0; i < 100; i++)
		strlist_addf(&l, "x%d", i);
	assert_int_equal(l.n, 103);
	assert_string_equal(l.v[102], "x99");
	assert_null(l.v[103]);
	strlist_free(&l);
	assert_null(l.v);
	assert_int_equal(l.n, 0);
	strlist_free(&l); /* twice is harmless */
}

static void test_sort(void **state)
{
	struct strlist l = {0};
	const char *in[] = {"site.test", "a.test", "site.test", "b.test", "a.test"};

	(void)state;
	strlist_sort(&l, true); /* empty */
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		strlist_add(&l, in[i]);
	strlist_sort(&l, false);
	assert_int_equal(l.n, 5);
	assert_string_equal(l.v[0], "a.test");
	assert_string_equal(l.v[1], "a.test");
	strlist_sort(&l, true);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0], "a.test");
	assert_string_equal(l.v[1], "b.test");
	assert_string_equal(l.v[2], "site.test");
	assert_null(l.v[3]);
	strlist_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_and_argv),
		cmocka_unit_test(test_sort),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
