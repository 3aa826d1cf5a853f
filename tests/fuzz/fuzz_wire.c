/*
 * libFuzzer harness for common/wire: wire_decode on arbitrary bytes, in the direction chosen by
 * the first byte. Whatever decodes must pass wire_check, re-encode, decode again in the same
 * direction, and re-encode to the same bytes (the codec is stable on what it accepts).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Tuap__Envelope *env = NULL, *again = NULL;
	struct buf b1 = BUF_INIT, b2 = BUF_INIT;
	struct tuap_err e;
	enum wire_dir dir;

	if (size < 1)
		return 0;
	dir = (enum wire_dir)(data[0] % 4);
	if (wire_decode(data + 1, size - 1, dir, &env, &e) != WIRE_OK)
		return 0;
	if (wire_check(env, dir, &e) != WIRE_OK)
		abort();
	if (wire_encode(env, &b1, &e) < 0)
		abort();
	if (wire_decode(b1.s, b1.len, dir, &again, &e) != WIRE_OK)
		abort();
	if (wire_encode(again, &b2, &e) < 0)
		abort();
	if (b1.len != b2.len || memcmp(b1.s, b2.s, b1.len) != 0)
		abort();
	wire_free(again);
	wire_free(env);
	buf_free(&b1);
	buf_free(&b2);
	return 0;
}
