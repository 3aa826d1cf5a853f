/*
 * ssh_import_id for users.yaml, resolved by tuapd (which has the network) so guests need none:
 * "gh:USER" and "lp:USER" (and a bare USER, which cloud-init reads as lp:) are fetched with
 * libcurl from URL templates in tuapd.conf, where "%s" stands for the user name. The answer is
 * bounded, must be HTTP 200 and may contain only OpenSSH public key lines.
 */
#ifndef TUAP_SSHKEYS_H
#define TUAP_SSHKEYS_H

#include "err.h"

struct sshkeys {
	const char *gh_url; /* e.g. https://github.com/%s.keys */
	const char *lp_url; /* e.g. https://launchpad.net/~%s/+sshkeys */
	long timeout_s;
};

/* A key_resolver (jobsteps.h) with ctx = struct sshkeys *: *keys gets one key per line. */
int sshkeys_fetch(void *ctx, const char *import_id, char **keys, struct tuap_err *err);

#endif
