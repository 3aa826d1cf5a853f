/* Unit tests for common/fsutil.c (and the file hash of common/hash.c). */
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
		cmocka_unit_test(test_fs_and_hash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
