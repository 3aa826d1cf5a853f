/* libFuzzer target: users_parse on arbitrary bytes. Any input must give either a model or
 * diagnostics, never a crash, a leak or unbounded work (aliases, nesting, size are bounded). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "users.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct users u;
	struct diags d;
	int rc;

	diags_init(&d);
	rc = users_parse("users.yaml", (const char *)data, size, &u, &d);
	/* the result and the diagnostics agree, and a failed parse hands nothing out */
	if ((rc == 0) != (d.errors == 0) || (rc != 0 && (u.n || u.v)))
		abort();
	/* every entry is the default user, or has a name or (only then without one) a snapuser */
	for (size_t i = 0; i < u.n; i++)
		if (!u.v[i].is_default && !u.v[i].name == !u.v[i].snapuser)
			abort();
	users_free(&u);
	diags_free(&d);
	return 0;
}
