/* Names of tuap.proto's enums; see names.h. */
#include "names.h"

#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const steps[] = {
	[TUAP__STEP__STEP_UNKNOWN] = "unknown",	  [TUAP__STEP__STEP_USERS] = "users",
	[TUAP__STEP__STEP_PACKAGES] = "packages", [TUAP__STEP__STEP_MAIL] = "mail",
	[TUAP__STEP__STEP_DATA] = "data",	  [TUAP__STEP__STEP_MAKE] = "make",
};

static const char *const step_states[] = {
	[TUAP__STEP_STATE__STATE_UNKNOWN] = "unknown",
	[TUAP__STEP_STATE__STATE_STARTED] = "started",
	[TUAP__STEP_STATE__STATE_PROGRESS] = "progress",
	[TUAP__STEP_STATE__STATE_LOG] = "log",
	[TUAP__STEP_STATE__STATE_DONE] = "done",
	[TUAP__STEP_STATE__STATE_FAILED] = "failed",
	[TUAP__STEP_STATE__STATE_INTERRUPTED] = "interrupted",
};

static const char *const phase_states[] = {
	[TUAP__PHASE_EVENT__STATE__STARTED] = "started",
	[TUAP__PHASE_EVENT__STATE__PROGRESS] = "progress",
	[TUAP__PHASE_EVENT__STATE__DONE] = "done",
	[TUAP__PHASE_EVENT__STATE__FAILED] = "failed",
	[TUAP__PHASE_EVENT__STATE__STALLED] = "stalled",
};

static const char *name_of(const char *const *names, size_t n, int v)
{
	if (v >= 0 && (size_t)v < n && names[v])
		return names[v];
	return "unknown";
}

static int value_of(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] && !strcmp(names[i], name))
			return (int)i;
	return -1;
}

const char *step_name(Tuap__Step step)
{
	return name_of(steps, COUNT(steps), (int)step);
}

const char *step_state_name(Tuap__StepState state)
{
	return name_of(step_states, COUNT(step_states), (int)state);
}

const char *phase_state_name(Tuap__PhaseEvent__State state)
{
	return name_of(phase_states, COUNT(phase_states), (int)state);
}

int step_from_name(const char *name)
{
	return value_of(steps, COUNT(steps), name);
}

int step_state_from_name(const char *name)
{
	return value_of(step_states, COUNT(step_states), name);
}
