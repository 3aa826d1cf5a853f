/* libFuzzer target: tarball_check_memory (gzip+tar headers through libarchive, the entry rule,
 * symlink tracking and chain resolution).
 *
 * Mutating gzip'd bytes rarely yields a valid stream, so the first input byte picks a mode:
 * bit 0 set: the rest is a tar archive, gzip'd here (libarchive's writer) before the check;
 * bit 1 set: tar header checksums are fixed first, so mutated headers reach the entry checks.
 * With bit 0 clear the rest is checked as given (gzip and libarchive's error paths). */
#include <archive.h>
#include <archive_entry.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tarball.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fix_checksums(unsigned char *p, size_t n)
{
	for (size_t off = 0; off + 512 <= n; off += 512) {
		unsigned char *h = p + off;
		unsigned sum = 0;

		if (memcmp(h + 257, "ustar", 5) != 0)
			continue;
		memset(h + 148, ' ', 8);
		for (int i = 0; i < 512; i++)
			sum += h[i];
		snprintf((char *)h + 148, 8, "%06o", sum & 0777777);
	}
}

/* gzip of p (a raw stream through libarchive's writer); NULL on failure. */
static unsigned char *gzip(const unsigned char *p, size_t n, size_t *out_len)
{
	size_t cap = n + n / 2 + 1024, used = 0;
	unsigned char *out = malloc(cap);
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	int ok = 0;

	if (!out || !a || !e)
		goto done;
	archive_entry_set_pathname(e, "x");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_size(e, (la_int64_t)n);
	ok = archive_write_add_filter_gzip(a) == ARCHIVE_OK &&
	     archive_write_set_format_raw(a) == ARCHIVE_OK &&
	     archive_write_set_bytes_in_last_block(a, 1) == ARCHIVE_OK &&
	     archive_write_open_memory(a, out, cap, &used) == ARCHIVE_OK &&
	     archive_write_header(a, e) == ARCHIVE_OK &&
	     (n == 0 || archive_write_data(a, p, n) == (la_ssize_t)n) &&
	     archive_write_close(a) == ARCHIVE_OK;
done:
	archive_entry_free(e);
	if (a)
		archive_write_free(a);
	if (!ok) {
		free(out);
		return NULL;
	}
	*out_len = used;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tarball_info info;
	struct diags d;
	unsigned char *buf = NULL, *input;
	size_t len;
	int rc, mode;

	if (size == 0)
		return 0;
	mode = data[0];
	if (!(buf = malloc(size)))
		return 0;
	memcpy(buf, data + 1, size - 1);
	len = size - 1;
	if (mode & 2)
		fix_checksums(buf, len);
	input = buf;
	if (mode & 1) {
		input = gzip(buf, len, &len);
		free(buf);
		buf = input;
		if (!input)
			return 0;
	}
	diags_init(&d);
	rc = tarball_check_memory("data.tar.gz", input, len, &info, &d);
	/* accepted means no errors and a top-level Makefile */
	if ((rc == 0) != (d.errors == 0) || (rc == 0 && !info.has_makefile))
		abort();
	diags_free(&d);
	free(buf);
	return 0;
}
