/* libFuzzer harness for the parser of tuap's domain <metadata> element (libxml2). */
#include <stddef.h>
#include <stdint.h>

#include "virt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tuap_meta m;
	struct tuap_err err;

	if (size > 65536)
		return 0;
	meta_parse((const char *)data, size, &m, &err);
	return 0;
}
