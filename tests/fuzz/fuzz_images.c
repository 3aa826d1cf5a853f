/* libFuzzer harness for the image catalog parser (images.conf, libconfig + our checks). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
				image_resolve(&cat, cat.v[i].url, &e, &err);
		image_catalog_free(&cat);
	}
	diags_free(&d);
	free(text);
	return 0;
}
