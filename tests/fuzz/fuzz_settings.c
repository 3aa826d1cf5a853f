/* libFuzzer target: tuapd.conf text through settings_parse (libconfig + tuap's checks). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/* libconfig 1.5's scanner leaks its string buffer on some syntax errors (an unterminated
 * string, `"\213`); leaks allocated inside libconfig are suppressed, nothing else. */
const char *__lsan_default_suppressions(void)
{
	return "leak:libconfig.so\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct settings
		s; /* static: ASan poisons a stack object of its size on every call */
	struct tuap_err err;
	char *text;

	if (size > SETTINGS_FILE_MAX)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	/* a relative path, so that an @include in the input stays under the working directory */
	settings_parse("fuzz/tuapd.conf", text, &s, &err);
	free(text);
	return 0;
}
