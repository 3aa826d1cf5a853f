/* Unit tests for the small common modules: err/diags, buf, fsutil, hash. */
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

static void test_fs_and_hash(void **state)
{
	char dir[] = "/tmp/tuap-test-XXXXXX", path[300], sub[256], hex[SHA256_HEX_LEN];
	struct tuap_err e;
	struct stat st;
	uint64_t size;
	size_t len;
	char *data;

	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
	assert_int_equal(fs_mkdir_p(sub, 0700, &e), 0);
	assert_int_equal(fs_mkdir_p(sub, 0700, &e), 0);
	snprintf(path, sizeof(path), "%s/f", sub);
	assert_int_equal(fs_write_atomic(path, "abc", 3, 0600, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	data = fs_read_file(path, 3, &len, &e);
	assert_non_null(data);
	assert_string_equal(data, "abc");
	free(data);
	assert_null(fs_read_file(path, 2, &len, &e));
	assert_non_null(strstr(e.msg, "larger than 2 bytes"));
	assert_int_equal(sha256_file_hex(path, hex, &size, &e), 0);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(size, 3);
	sha256_hex("", 0, hex);
	assert_string_equal(hex,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(sha256_file_hex("/nonexistent/x", hex, NULL, &e), -1);
	unlink(path);
	for (int i = 0; i < 3; i++) {
		rmdir(sub);
		*strrchr(sub, '/') = '\0';
	}
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_format),
		cmocka_unit_test(test_diags),
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_fs_and_hash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
