/*
 * tuap-ctl provision --dry-run: renders everything a provision would create for a valid
 * domain (domain XML, meta-data, network-config, user-data) with tuapd.conf's settings, and
 * prints it or writes it into a directory. Nothing else is created.
 */
#ifndef TUAP_DRYRUN_H
#define TUAP_DRYRUN_H

#include "domain.h"

/* Returns a tuap-ctl exit code. output_dir NULL: print to stdout. */
int dryrun_show(const struct domain *dom, const char *output_dir);

#endif
