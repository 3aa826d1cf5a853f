/* libFuzzer target: the agent's tar entry rule (data_entry_check), the last check before an
 * entry of data.tar.gz is written on the site's host. Input: one byte for the entry type, then
 * the path, a NUL, and the link target. Whatever it accepts must be a relative path without a
 * '..' component, and must pass the rule tuap-ctl validate applies (tar_entry_check): the
 * agent may only be stricter. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "steps/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int has_dotdot(const char *p)
{
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return 1;
		p += n;
		p += strspn(p, "/");
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum tar_entry_type type;
	char why[256], *path, *link = NULL;
	size_t plen;

	if (size < 1 || size > 16384)
		return 0;
	type = (enum tar_entry_type)(data[0] % 5);
	if (!(path = malloc(size)))
		abort();
	memcpy(path, data + 1, size - 1);
	path[size - 1] = '\0';
	plen = strlen(path);
	if (plen + 1 < size - 1)
		link = path + plen + 1;
	if (data_entry_check(path, type, link, why, sizeof(why)) == 0) {
		if (path[0] == '/' || has_dotdot(path))
			abort();
		if (tar_entry_check(path, type, link, why, sizeof(why)) != 0)
			abort();
	} else if (!why[0]) {
		abort(); /* a refusal always says why */
	}
	free(path);
	return 0;
}
