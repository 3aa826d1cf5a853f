/* libFuzzer harness for the image catalog parser (images.conf, libconfig + our checks). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* libconfig 1.5 (Debian 12) leaks scanner strings when a parse error follows them (a lone
 * "" at top level is enough); not ours to fix, and tuapd does not go on with a catalog that
 * fails to parse. Leaks from anywhere else still count. */
const char *__lsan_default_suppressions(void)
{
	return "leak:libconfig.so\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct image_catalog cat;
	struct diags d;
	char *text;

	if (size > 65536)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	diags_init(&d);
	if (image_catalog_parse(text, "fuzz.conf", &cat, &d) == 0) {
		struct image_entry e;
		struct tuap_err err;
		for (size_t i = 0; i < cat.n; i++)
			if (cat.v[i].url[0])
				image_resolve(&cat, "/nonexistent-tuap-fuzz", cat.v[i].url, &e,
					      &err);
		image_catalog_free(&cat);
	}
	diags_free(&d);
	free(text);
	return 0;
}
