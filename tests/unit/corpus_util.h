/* Shared by the bad-input corpus tests (test_domain, test_users): a directory under
 * tests/data/bad holds each case as NAME.EXT (the input) beside NAME.expect (what it must give).
 * Include after cmocka.h. */
#ifndef TUAP_TEST_CORPUS_UTIL_H
#define TUAP_TEST_CORPUS_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fsutil.h"

/* Whether NAME is a case's input: a non-empty stem followed by EXT. */
static inline bool corpus_is_input(const char *name, const char *ext)
{
	size_t n = strlen(name), e = strlen(ext);

	return n > e && strcmp(name + n - e, ext) == 0;
}

/* The text of the file of case NAME (an input's name) with extension EXT, from DIR; its
 * length in *len when len is not NULL. The test fails when it cannot be read. */
static inline char *corpus_read(const char *dir, const char *name, const char *ext, size_t *len)
{
	const char *dot = strrchr(name, '.');
	int stem = dot ? (int)(dot - name) : (int)strlen(name);
	char path[4096];
	struct tuap_err e;
	size_t n;
	char *text;

	if (snprintf(path, sizeof(path), "%s/%.*s%s", dir, stem, name, ext) >= (int)sizeof(path))
		fail_msg("%s/%s: path too long", dir, name);
	text = fs_read_file(path, 1 << 20, len ? len : &n, &e);
	if (!text)
		fail_msg("%s", e.msg);
	return text;
}

#endif
