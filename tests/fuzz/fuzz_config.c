/*
 * libFuzzer harness for provision.conf: the Config::Simple reader and every key check behind
 * domain_conf_parse, on arbitrary bytes. Everything is freed, so LeakSanitizer finds leaks.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "domain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct domain_conf *conf = malloc(sizeof(*conf));
	struct diags d;

	if (!conf)
		return 0;
	diags_init(&d);
	domain_conf_parse("provision.conf", "example.test", (const char *)data, size, conf, &d);
	domain_conf_free(conf);
	diags_free(&d);
	free(conf);
	return 0;
}
