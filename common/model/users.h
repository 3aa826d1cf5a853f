/*
 * users.yaml: cloud-init's users and groups, read with libyaml into a model: a list of users, or
 * a mapping with `users:`, `groups:` and `user:` as a #cloud-config has them (cloud-init's own
 * doc/examples/cloud-config-user-groups.txt is accepted unchanged). Every key of the users
 * schema of the cloud-init Debian 12 ships (22.4) is known, plus `doas` and sudo lists from
 * later versions; unknown keys are errors, not silently dropped. Deprecated forms are accepted
 * with a warning naming the replacement, as cloud-init does. Alias expansion and nesting are
 * bounded.
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
	char *passwd;		      /* a crypt(3) hash, set when the user is created */
	char *hashed_passwd;	      /* a crypt(3) hash, set on every run */
	char *plain_text_passwd;      /* hashed by tuapd: never sent to a guest as it is */
	char *homedir;
	long uid; /* -1 when unset */
	bool system;
	bool no_create_home;
	bool no_user_group;
	bool no_log_init;
	enum tristate create_groups; /* unset means true */
	bool ssh_redirect_user;
	char *expiredate; /* YYYY-MM-DD */
	char *inactive;	  /* days after expiry, as useradd --inactive takes them */
	char *selinux_user;
	char *snapuser; /* an e-mail: `snap create-user` (name may then be NULL) */
	struct strlist doas;
	int line; /* where the entry starts in users.yaml */
};

/* A top-level `groups:` entry: a group and the users added to it. */
struct user_group {
	char *name;
	struct strlist members;
	int line;
};

struct users {
	struct user *v;
	size_t n;
	struct user_group *groups;
	size_t n_groups;
	bool singular; /* the first entry came from `user:` (cloud-init's default user) */
};

/* What Debian 12's cloud.cfg makes of the default user; `user:` entries are merged over it
 * (cloud-init's normalize_users_groups). */
#define USERS_DEBIAN_DEFAULT_NAME   "debian"
#define USERS_DEBIAN_DEFAULT_GECOS  "Debian"
#define USERS_DEBIAN_DEFAULT_SHELL  "/bin/bash"
#define USERS_DEBIAN_DEFAULT_GROUPS "adm,audio,cdrom,dialout,dip,floppy,netdev,plugdev,sudo,video"
#define USERS_DEBIAN_DEFAULT_SUDO   "ALL=(ALL) NOPASSWD:ALL"

/* The names of every key a user entry may have (NULL-terminated), for the schema-drift check. */
extern const char *const users_known_keys[];

/* Parses users.yaml text read from path. Every problem goes to d as
 * "users.yaml:LINE: users[I].key: message". Returns 0 when valid. Free with users_free. */
int users_parse(const char *path, const char *text, size_t len, struct users *out, struct diags *d);
int users_load(const char *path, struct users *out, struct diags *d);
void users_free(struct users *u);

#endif
