/*
 * The data step's entry rule, exposed for tests. It is the rule of tar_entry_check()
 * (common/tarball.h), implemented here until the two are folded into one: an entry may be
 * extracted when its path is relative without '..' and without control characters, it is a
 * file, directory, symlink or hard link (no devices, fifos, sockets), a symlink's target is
 * relative and stays in the tree ('..' only as leading components, no deeper than the link's own
 * directory, so that chains of symlinks cannot climb out either), and a hard link's target obeys
 * the path rule.
 */
#ifndef TUAP_AGENT_STEPS_DATA_H
#define TUAP_AGENT_STEPS_DATA_H

#include <stddef.h>

#include "tarball.h"

/* 0 when acceptable, else -1 with why filled ("absolute path", "'..' component", ...). */
int data_entry_check(const char *path, enum tar_entry_type type, const char *link, char *why,
		     size_t len);

#endif
