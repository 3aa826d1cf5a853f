/*
 * Schema drift: the keys a user entry may have in the users schema of the cloud-init installed
 * on this machine ($defs users_groups.user in its JSON schema) that tuap does not know. A newer
 * cloud-init with a new key is then said at validate, never silently lost.
 */
#ifndef TUAP_SCHEMADRIFT_H
#define TUAP_SCHEMADRIFT_H

#include "err.h"
#include "strlist.h"

#define CLOUDINIT_SCHEMA                                                                           \
	"/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json"

/* Appends to unknown the keys of the schema at path that users.yaml does not take. 0 when
 * read (unknown may stay empty), -1 with err when the file is unreadable or not the schema. */
int schema_drift(const char *path, struct strlist *unknown, struct tuap_err *err);

#endif
