/*
 * users.yaml: the cloud-init `users` schema (a list of users, or a mapping with a `users:` list
 * as upstream's example has), read with libyaml into a model. Unsupported keys are errors, not
 * silently dropped; alias expansion and nesting are bounded.
 */
#ifndef TUAP_USERS_H
#define TUAP_USERS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "strlist.h"

#define USERS_MAX      256
#define USERS_MAX_LIST 256 /* groups, keys, sudo rules, import ids per user */

enum user_sudo { SUDO_UNSET, SUDO_NONE /* sudo: false */, SUDO_RULES };
enum tristate { TRI_UNSET = -1, TRI_FALSE = 0, TRI_TRUE = 1 };

struct user {
	bool is_default; /* the `- default` entry: keep the image's default user */
	char *name;
	char *gecos;
	struct strlist groups;
	char *primary_group;
	enum user_sudo sudo;
	struct strlist sudo_rules;
	char *shell;
	struct strlist ssh_authorized_keys;
	struct strlist ssh_import_id; /* "gh:USER" / "lp:USER"; tuapd resolves them */
	enum tristate lock_passwd;    /* unset means locked, as cloud-init */
	char *passwd;		      /* a crypt(3) hash (cloud-init's passwd is a hash) */
	char *hashed_passwd;
	char *homedir;
	long uid; /* -1 when unset */
	bool system;
	bool no_create_home;
	int line; /* where the entry starts in users.yaml */
};

struct users {
	struct user *v;
	size_t n;
};

/* Parses users.yaml text read from path. Every problem goes to d as
 * "users.yaml:LINE: users[I].key: message". Returns 0 when valid. Free with users_free. */
int users_parse(const char *path, const char *text, size_t len, struct users *out, struct diags *d);
int users_load(const char *path, struct users *out, struct diags *d);
void users_free(struct users *u);

#endif
