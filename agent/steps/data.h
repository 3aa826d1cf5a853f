/*
 * The data step's entry rule, exposed for tests: tar_entry_check() (common/tarball.h, the rule
 * tuap-ctl validate applies too) and, since the agent extracts one entry at a time and cannot
 * follow the archive's other symlinks as tarball_check does, stricter symlinks: '..' only as
 * leading components (`d/..` is refused: d may itself be a symlink).
 */
#ifndef TUAP_AGENT_STEPS_DATA_H
#define TUAP_AGENT_STEPS_DATA_H

#include <stddef.h>

#include "tarball.h"

/* 0 when acceptable, else -1 with why filled ("absolute path", "'..' component", ...). */
int data_entry_check(const char *path, enum tar_entry_type type, const char *link, char *why,
		     size_t len);

#endif
