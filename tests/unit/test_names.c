/*
 * Unit tests for common/names.c: every value of tuap.proto's Step, StepState and
 * PhaseEvent.State has the name its .proto value name gives it (STEP_USERS is "users",
 * STATE_DONE "done", STALLED "stalled"), read from protobuf-c's descriptors, so a value added
 * to the .proto without a name here fails; names read back to their values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "names.h"

/* The .proto name without its prefix, in lower case. */
static void expected(const char *proto_name, const char *prefix, char *out, size_t len)
{
	size_t p = strlen(prefix), i = 0;

	assert_int_equal(strncmp(proto_name, prefix, p), 0);
	for (const char *c = proto_name + p; *c && i + 1 < len; c++)
		out[i++] = (char)tolower((unsigned char)*c);
	out[i] = '\0';
}

static void check_enum(const ProtobufCEnumDescriptor *d, const char *prefix,
		       const char *(*name)(int), int (*from)(const char *))
{
	char want[64];

	assert_true(d->n_values > 1);
	for (unsigned i = 0; i < d->n_values; i++) {
		const ProtobufCEnumValue *v = &d->values[i];

		expected(v->name, prefix, want, sizeof(want));
		if (strcmp(name(v->value), want)) {
			fprintf(stderr, "%s %s: named '%s', want '%s'\n", d->name, v->name,
				name(v->value), want);
			fail();
		}
		if (from)
			assert_int_equal(from(want), v->value);
	}
	assert_string_equal(name(-1), "unknown");
	assert_string_equal(name(1000), "unknown");
	if (from)
		assert_int_equal(from("nonsense"), -1);
}

static const char *step(int v)
{
	return step_name((Tuap__Step)v);
}

static const char *step_state(int v)
{
	return step_state_name((Tuap__StepState)v);
}

static const char *phase_state(int v)
{
	return phase_state_name((Tuap__PhaseEvent__State)v);
}

static void test_step(void **state)
{
	(void)state;
	check_enum(&tuap__step__descriptor, "STEP_", step, step_from_name);
}

static void test_step_state(void **state)
{
	(void)state;
	check_enum(&tuap__step_state__descriptor, "STATE_", step_state, step_state_from_name);
}

static void test_phase_state(void **state)
{
	(void)state;
	check_enum(&tuap__phase_event__state__descriptor, "", phase_state, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_step),
		cmocka_unit_test(test_step_state),
		cmocka_unit_test(test_phase_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
