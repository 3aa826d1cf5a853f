/*
 * ssh_import_id for users.yaml, resolved by tuapd (which has the network) so guests need none:
 * "gh:USER" and "lp:USER" (and a bare USER, which cloud-init reads as lp:) are fetched with
 * libcurl from tuapd.conf's ssh_key_url templates (settings_ssh_key_url). The answer is bounded,
 * must be HTTP 200 and may contain only OpenSSH public key lines.
 */
#ifndef TUAP_SSHKEYS_H
#define TUAP_SSHKEYS_H

#include "err.h"

/* A key_resolver (jobsteps.h) with ctx = const struct settings *: *keys gets one key per
 * line. */
int sshkeys_fetch(void *ctx, const char *import_id, char **keys, struct tuap_err *err);

#endif
