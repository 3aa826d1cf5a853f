/*
 * The users step's pure parts, exposed for tests: the plan (which groupadd / useradd / usermod
 * commands bring the system to what UsersArgs asks, from the current passwd, group and shadow
 * texts), the authorized_keys merge and the sudoers file text. Cloud-init semantics: missing
 * groups are created, users created with useradd as cloud-init calls it, never deleted;
 * lock_passwd defaults to true; a re-run plans nothing.
 *
 * Existing accounts: the agent records each account as its last run left it (the records,
 * USERS_RECORDS under its state directory). An account still as recorded is brought to what
 * UsersArgs asks (gecos, shell, groups, password...); one changed since (by hand) is reported
 * and left as it is; one that existed before tuap is treated as cloud-init does (only the
 * password, lock, sudo and keys are applied; the rest is reported). UsersArgs.force applies
 * everything to both. uid and home of an existing user are never changed (noted).
 */
#ifndef TUAP_AGENT_STEPS_USERS_H
#define TUAP_AGENT_STEPS_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "strlist.h"
#include "tuap.pb-c.h"

#define USER_PLAN_MAX_USERS 256
#define USER_PLAN_MAX_LIST  256 /* groups, keys, sudo rules per user */
#define USER_ARGV_MAX	    32

#define USERS_RECORDS "users.records" /* in the agent's state directory */

#define AUTHKEYS_BEGIN "# tuap: managed keys begin (this block is rewritten by tuap-agent)"
#define AUTHKEYS_END   "# tuap: managed keys end"

struct user_cmd {
	char *argv[USER_ARGV_MAX]; /* NULL-terminated, owned */
	int secret;		   /* argument shown as *** in logs, or -1 */
};

struct user_plan {
	struct user_cmd *cmds;
	size_t n_cmds;
	char **notes; /* what is left alone on purpose, one line each */
	size_t n_notes;
	struct strlist record; /* accounts to record once the commands ran: tuap's from now on */
};

/* Validates a and plans the commands. passwd, group: the files' texts; shadow: its text, or
 * NULL when it cannot be read (passwords and locks are then always set, which is harmless).
 * root: "/" or a directory the commands get as `--root ROOT`. Errors name
 * "users[I].key". Free with user_plan_free (also after a failure). */
int user_plan_build(const Tuap__UsersArgs *a, const char *passwd, const char *group,
		    const char *shadow, const char *root, struct user_plan *plan,
		    struct tuap_err *err);

/* What the plan knows of the system besides the three texts. */
struct user_plan_env {
	const char *passwd, *group, *shadow; /* as above */
	const char *root;
	const char *records; /* the USERS_RECORDS text; NULL when none */
	bool selinux;	     /* SELinux is on: selinux_user is applied */
	bool snap;	     /* snap is installed: snapuser is possible */
};
int user_plan_build_env(const Tuap__UsersArgs *a, const struct user_plan_env *env,
			struct user_plan *plan, struct tuap_err *err);

/* The USERS_RECORDS text after a run: old records, with those of names (a plan's record)
 * replaced by what passwd, group and shadow hold now. Returns a malloc'd string. */
char *user_records_update(const char *old, char *const *names, size_t n, const char *passwd,
			  const char *group, const char *shadow);
void user_plan_free(struct user_plan *plan);

/* The new authorized_keys text: old (may be NULL) with its tuap block replaced by keys (keys
 * already among the user's own lines, and repeats, left out; no block when none remain). The
 * user's own lines are kept as they are. Returns a malloc'd string; *changed tells whether it
 * differs from old. */
char *authkeys_merge(const char *old, char *const *keys, size_t n, bool *changed);

#define DOAS_BEGIN "# tuap: doas rules begin (this block is rewritten by tuap-agent)"
#define DOAS_END   "# tuap: doas rules end"

/* old (may be NULL) with the lines between begin and end (markers included) replaced by
 * body's lines within the markers, at the block's place (else at the end); no block when body
 * is empty. Returns a malloc'd string. */
char *block_replace(const char *old, const char *begin, const char *end, const char *body);

/* The text of /etc/sudoers.d/90-tuap-NAME for rules (each "ALL=(ALL) NOPASSWD:ALL" style). */
char *sudoers_render(const char *name, char *const *rules, size_t n);

/* uid, gid and home of name in a passwd text; -1 when it is not there. */
int passwd_entry(const char *passwd, const char *name, uid_t *uid, gid_t *gid, char *home,
		 size_t len);

#endif
