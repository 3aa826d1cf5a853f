/*
 * The names of tuap.proto's enums as operators see them: in progress lines, --json output,
 * logs and the agent's step journal. One table per enum, checked against the .proto's own
 * value names by tests/unit/test_names.c (STEP_USERS is "users", STATE_DONE is "done").
 */
#ifndef TUAP_NAMES_H
#define TUAP_NAMES_H

#include "tuap.pb-c.h"

/* "users", "packages", ...; "unknown" for a value outside the enum. */
const char *step_name(Tuap__Step step);
/* "started", "progress", "log", "done", "failed", "interrupted"; "unknown" likewise. */
const char *step_state_name(Tuap__StepState state);
/* "started", "progress", "done", "failed", "stalled"; "unknown" likewise. */
const char *phase_state_name(Tuap__PhaseEvent__State state);

/* The value a name stands for (the names above, "unknown" included), or -1. */
int step_from_name(const char *name);
int step_state_from_name(const char *name);

#endif
