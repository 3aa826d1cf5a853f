/* Unit tests for common/buf.c. */
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

static void test_buf(void **state)
{
	struct buf b = BUF_INIT;
	char *s;
	size_t n;

	buf_adds(&b, "a");
	buf_addf(&b, "%d-%s", 42, "x");
	for (int i = 0; i < 1000; i++)
		buf_add(&b, "y", 1);
	assert_int_equal(b.len, 1005);
	assert_memory_equal(b.s, "a42-xy", 6);
	s = buf_detach(&b, &n);
	assert_int_equal(n, 1005);
	assert_null(b.s);
	free(s);
	s = buf_detach(&b, &n);
	assert_string_equal(s, "");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
