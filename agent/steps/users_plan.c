/*
 * The users step's pure parts (see users.h): reading passwd/group/shadow texts, validating
 * UsersArgs, planning the shadow-utils commands, the authorized_keys merge and sudoers text.
 */
#include "users.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "buf.h"
#include "hash.h"
#include "strlist.h"
#include "valid.h"

#define TABLE_MAX_LINES 200000
#define ETC_FILE_MAX	(64 << 20)
#define AUTHKEYS_MAX	(1 << 20)

/* ------------------------------------------------------------------------------------------ */
/* passwd / group / shadow texts */

struct row {
	char *f[7];
	size_t nf;
};

struct table {
	char *text;
	struct row *v;
	size_t n;
};

static void table_free(struct table *t)
{
	free(t->text);
	free(t->v);
	memset(t, 0, sizeof(*t));
}

static int table_parse(const char *text, struct table *t)
{
	char *line, *save = NULL;

	memset(t, 0, sizeof(*t));
	if (!text)
		return 0;
	if (!(t->text = strdup(text)))
		return -1;
	for (line = strtok_r(t->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct row *row;
		char *p = line;

		if (t->n == TABLE_MAX_LINES)
			break;
		if ((t->n & (t->n - 1)) == 0) {
			struct row *v = realloc(t->v, (t->n ? t->n * 2 : 16) * sizeof(*v));
			if (!v)
				return -1;
			t->v = v;
		}
		row = &t->v[t->n];
		row->nf = 0;
		while (row->nf < 7) {
			row->f[row->nf++] = p;
			p = strchr(p, ':');
			if (!p)
				break;
			*p++ = '\0';
		}
		if (row->f[0][0] && row->f[0][0] != '#' && row->f[0][0] != '+' &&
		    row->f[0][0] != '-')
			t->n++;
	}
	return 0;
}

static const struct row *table_find(const struct table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].f[0], name) == 0)
			return &t->v[i];
	return NULL;
}

static const char *field(const struct row *r, size_t i)
{
	return r && i < r->nf ? r->f[i] : "";
}

/* 1 when the comma-separated list has item. */
static int list_has(const char *list, const char *item)
{
	size_t n = strlen(item);

	for (const char *p = list; p && *p;) {
		size_t k = strcspn(p, ",");

		if (k == n && strncmp(p, item, n) == 0)
			return 1;
		p += k;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* Days since 1970-01-01 of a YYYY-MM-DD date (the shadow file's unit); -1 when it is none. */
static long days_of(const char *date)
{
	struct tm tm = {0}, back;
	int n = 0;
	time_t t;

	if (strlen(date) != 10 ||
	    sscanf(date, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	back = tm;
	t = timegm(&tm);
	if (t < 0 || tm.tm_mday != back.tm_mday || tm.tm_mon != back.tm_mon)
		return -1;
	return (long)(t / 86400);
}

/* ------------------------------------------------------------------------------------------ */
/* Validation */

static int validate(const Tuap__UsersArgs *a, struct tuap_err *err)
{
	if (a->n_users > USER_PLAN_MAX_USERS)
		return err_at(err, NULL, 0, "users", "%zu users; at most %d", a->n_users,
			      USER_PLAN_MAX_USERS);
	for (size_t i = 0; i < a->n_users; i++) {
		const Tuap__User *u = a->users[i];
		char key[64], why[128];

#define BAD(k, ...)                                                                                \
	(snprintf(key, sizeof(key), "users[%zu].%s", i, k), err_at(err, NULL, 0, key, __VA_ARGS__))
		if (u->snapuser && (!u->snapuser[0] || (u->name && u->name[0]) ||
				    valid_email(u->snapuser, why, sizeof(why)) < 0))
			return BAD("snapuser", "an e-mail address, without name");
		if (!u->snapuser && valid_user_name(u->name, NULL, 0) < 0)
			return BAD("name", "'%s' is not a user name", u->name ? u->name : "");
		for (size_t k = 0; k < i && !u->snapuser; k++)
			if (a->users[k]->name && strcmp(a->users[k]->name, u->name) == 0)
				return BAD("name", "user '%s' appears twice", u->name);
		if (u->passwd &&
		    (!u->passwd[0] || valid_text_line(u->passwd, 512, false, NULL, 0) < 0))
			return BAD("passwd", "must be a crypt(3) hash (one line, no ':')");
		if (u->expiredate && days_of(u->expiredate) < 0)
			return BAD("expiredate", "'%s' is not a date YYYY-MM-DD", u->expiredate);
		if (u->inactive && strcmp(u->inactive, "-1") &&
		    (!u->inactive[0] || strlen(u->inactive) > 5 ||
		     strspn(u->inactive, "0123456789") != strlen(u->inactive)))
			return BAD("inactive", "'%s' is not a number of days", u->inactive);
		if (u->selinux_user &&
		    (!u->selinux_user[0] || strlen(u->selinux_user) > 64 ||
		     strspn(u->selinux_user, "abcdefghijklmnopqrstuvwxyz"
					     "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
					     "0123456789_.") != strlen(u->selinux_user)))
			return BAD("selinux_user", "'%s' is not an SELinux user", u->selinux_user);
		if (u->n_doas > USER_PLAN_MAX_LIST)
			return BAD("doas", "at most %d rules", USER_PLAN_MAX_LIST);
		for (size_t k = 0; k < u->n_doas; k++)
			if (valid_text_line(u->doas[k], 1024, false, NULL, 0) < 0 ||
			    strchr(u->doas[k], '#') || strchr(u->doas[k], '\\') ||
			    (strncmp(u->doas[k], "permit ", 7) && strncmp(u->doas[k], "deny ", 5)))
				return BAD("doas", "rule %zu is not a doas.conf rule", k + 1);
		if (u->gecos && valid_text_line(u->gecos, 255, false, why, sizeof(why)) < 0)
			return BAD("gecos", "%s", why);
		if (u->n_groups > USER_PLAN_MAX_LIST ||
		    u->n_ssh_authorized_keys > USER_PLAN_MAX_LIST || u->n_sudo > USER_PLAN_MAX_LIST)
			return BAD("groups", "lists hold at most %d items", USER_PLAN_MAX_LIST);
		for (size_t k = 0; k < u->n_groups; k++)
			if (valid_user_name(u->groups[k], NULL, 0) < 0)
				return BAD("groups", "'%s' is not a group name", u->groups[k]);
		if (u->primary_group && valid_user_name(u->primary_group, NULL, 0) < 0)
			return BAD("primary_group", "'%s' is not a group name", u->primary_group);
		for (size_t k = 0; k < u->n_sudo; k++)
			if (valid_sudo_rule(u->sudo[k], why, sizeof(why)) < 0)
				return BAD("sudo", "rule %zu: %s", k + 1, why);
		if (u->shell && (valid_abs_path(u->shell, why, sizeof(why)) < 0 ||
				 valid_text_line(u->shell, 4095, false, why, sizeof(why)) < 0))
			return BAD("shell", "'%s': %s", u->shell, why);
		for (size_t k = 0; k < u->n_ssh_authorized_keys; k++)
			if (!u->ssh_authorized_keys[k][0] ||
			    valid_text_line(u->ssh_authorized_keys[k], 16384, true, NULL, 0) < 0)
				return BAD("ssh_authorized_keys",
					   "key %zu must be one non-empty line", k + 1);
		if (u->hashed_passwd &&
		    (!u->hashed_passwd[0] ||
		     valid_text_line(u->hashed_passwd, 512, false, NULL, 0) < 0))
			return BAD("hashed_passwd", "must be a crypt(3) hash (one line, no ':')");
		if (u->homedir && (valid_home_dir(u->homedir, why, sizeof(why)) < 0 ||
				   valid_text_line(u->homedir, 4095, false, why, sizeof(why)) < 0))
			return BAD("homedir", "'%s': %s", u->homedir, why);
		if (u->has_uid && u->uid > VALID_UID_MAX)
			return BAD("uid", "%u is out of range", u->uid);
#undef BAD
	}
	if (a->n_groups > USER_PLAN_MAX_USERS)
		return err_at(err, NULL, 0, "groups", "%zu groups; at most %d", a->n_groups,
			      USER_PLAN_MAX_USERS);
	for (size_t i = 0; i < a->n_groups; i++) {
		const Tuap__Group *g = a->groups[i];

		if (valid_user_name(g->name, NULL, 0) < 0 || g->n_members > USER_PLAN_MAX_LIST)
			return err_at(err, NULL, 0, "groups", "'%s' is not a group name",
				      g->name ? g->name : "");
		for (size_t k = 0; k < g->n_members; k++)
			if (valid_user_name(g->members[k], NULL, 0) < 0)
				return err_at(err, NULL, 0, "groups",
					      "group %s: '%s' is not a user name", g->name,
					      g->members[k]);
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Planning */

struct planner {
	struct user_plan *plan;
	const struct user_plan_env *env;
	const char *root;
	struct table pw, gr, sh;
	bool have_shadow;
	char **new_groups; /* groups the plan creates */
	size_t n_new_groups;
	char **new_users; /* users the plan creates */
	size_t n_new_users;
	struct records *rec;
	bool force;
};

static struct user_cmd *cmd_new(struct planner *p, const char *prog)
{
	struct user_plan *pl = p->plan;
	struct user_cmd *c;

	if ((pl->n_cmds & (pl->n_cmds - 1)) == 0) {
		c = realloc(pl->cmds, (pl->n_cmds ? pl->n_cmds * 2 : 8) * sizeof(*c));
		if (!c)
			abort();
		pl->cmds = c;
	}
	c = &pl->cmds[pl->n_cmds++];
	memset(c, 0, sizeof(*c));
	c->secret = -1;
	c->argv[0] = strdup(prog);
	if (strcmp(p->root, "/") != 0) {
		c->argv[1] = strdup("--root");
		c->argv[2] = strdup(p->root);
	}
	return c;
}

static void cmd_arg(struct user_cmd *c, const char *a)
{
	size_t n = 0;

	while (c->argv[n])
		n++;
	if (n + 1 >= USER_ARGV_MAX)
		abort(); /* the planner adds at most ~20 */
	if (!(c->argv[n] = strdup(a)))
		abort();
}

static void cmd_opt(struct user_cmd *c, const char *opt, const char *val)
{
	cmd_arg(c, opt);
	cmd_arg(c, val);
}

static void note(struct user_plan *pl, const char *fmt, ...) TUAP_PRINTF(2, 3);

static void note(struct user_plan *pl, const char *fmt, ...)
{
	char **v, *s;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	v = realloc(pl->notes, (pl->n_notes + 1) * sizeof(*v));
	if (!v)
		abort();
	pl->notes = v;
	pl->notes[pl->n_notes++] = s;
}

static void push_name(char ***v, size_t *n, const char *name)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv)
		abort();
	*v = nv;
	nv[(*n)++] = (char *)name;
}

static bool in_names(char *const *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			return true;
	return false;
}

static int group_known(struct planner *p, const char *g)
{
	return table_find(&p->gr, g) || in_names(p->new_groups, p->n_new_groups, g);
}

/* groupadd as cloud-init's create_group runs it: a plain group, whatever it is for. */
static void ensure_group(struct planner *p, const char *g)
{
	struct user_cmd *c;

	if (group_known(p, g))
		return;
	c = cmd_new(p, "groupadd");
	cmd_arg(c, g);
	push_name(&p->new_groups, &p->n_new_groups, g);
}

/* ---- the records: each account as the agent's last run left it ---- */

/* "NAME\tPASSWD-LINE\tGROUPS\tSHADOW-SHA256" lines; GROUPS sorted, comma-separated. */
struct records {
	struct table t; /* f[0] name, f[1] passwd line, f[2] groups, f[3] shadow sha */
};

static int records_parse(const char *text, struct records *r)
{
	char *line, *save = NULL;

	memset(r, 0, sizeof(*r));
	if (!text)
		return 0;
	if (!(r->t.text = strdup(text)))
		return -1;
	for (line = strtok_r(r->t.text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct row *row;
		char *f = line;

		if (r->t.n == USER_PLAN_MAX_USERS * 16)
			break;
		if ((r->t.n & (r->t.n - 1)) == 0) {
			struct row *v = realloc(r->t.v, (r->t.n ? r->t.n * 2 : 16) * sizeof(*v));
			if (!v)
				return -1;
			r->t.v = v;
		}
		row = &r->t.v[r->t.n];
		row->nf = 0;
		while (row->nf < 4) {
			row->f[row->nf++] = f;
			if (!(f = strchr(f, '\t')))
				break;
			*f++ = '\0';
		}
		if (row->nf == 4)
			r->t.n++;
	}
	return 0;
}

/* The supplementary groups of name in a group table, sorted, comma-separated. */
static void groups_of(const struct table *gr, const char *name, struct buf *out)
{
	struct strlist l = {0};

	for (size_t i = 0; i < gr->n; i++)
		if (list_has(field(&gr->v[i], 3), name))
			strlist_add(&l, gr->v[i].f[0]);
	strlist_sort(&l, true);
	for (size_t i = 0; i < l.n; i++)
		buf_addf(out, "%s%s", i ? "," : "", l.v[i]);
	strlist_free(&l);
}

/* An account as a record line (without the name and newline). */
static void account_line(const struct table *pw, const struct table *gr, const struct table *sh,
			 bool have_shadow, const char *name, struct buf *out)
{
	const struct row *r = table_find(pw, name), *s = have_shadow ? table_find(sh, name) : NULL;
	char sha[SHA256_HEX_LEN];

	for (size_t i = 0; i < 7; i++)
		buf_addf(out, "%s%s", i ? ":" : "", field(r, i));
	buf_adds(out, "\t");
	groups_of(gr, name, out);
	if (s)
		sha256_hex(field(s, 1), strlen(field(s, 1)), sha);
	buf_addf(out, "\t%s", s ? sha : "-");
}

/* A record's fields, split in place: name, password, uid, gid, gecos, home, shell (the passwd
 * line, ':'), groups and the shadow field's sha256 ('\t'); NULL past the end. */
static void record_fields(char *s, char *f[9])
{
	for (int k = 0; k < 9; k++) {
		f[k] = s;
		if (!s)
			continue;
		s += strcspn(s, k < 6 ? ":" : "\t");
		s = *s ? (*s = '\0', s + 1) : NULL;
	}
}

/* Whether an account changed since it was recorded, each change described in out; the
 * password is compared only when both sides know it (a shadow tuap could not read is none). */
static bool account_changed(const char *was, const char *now, bool shadow_known, struct buf *out)
{
	static const char *const names[] = {"name", "passwd field", "uid",    "gid",	 "gecos",
					    "home", "shell",	    "groups", "password"};
	char *w = strdup(was), *n = strdup(now), *wf[9], *nf[9];
	bool changed = false;

	if (!w || !n)
		abort();
	record_fields(w, wf);
	record_fields(n, nf);
	for (int k = 1; k < 9; k++) {
		const char *a = wf[k] ? wf[k] : "", *b = nf[k] ? nf[k] : "";

		if (!wf[k] || strcmp(a, b) == 0 || (k == 8 && (!shadow_known || !strcmp(a, "-"))))
			continue;
		changed = true;
		if (k == 8)
			buf_addf(out, "%spassword or lock", out->len ? ", " : "");
		else
			buf_addf(out, "%s%s '%s' -> '%s'", out->len ? ", " : "", names[k], a, b);
	}
	free(w);
	free(n);
	return changed;
}

enum origin { ORIGIN_BEFORE_TUAP, ORIGIN_AS_LEFT, ORIGIN_CHANGED };

static enum origin origin_of(struct planner *p, const char *name, struct buf *changes)
{
	const struct row *r = table_find(&p->rec->t, name);
	struct buf now = BUF_INIT, was = BUF_INIT;
	enum origin o;

	if (!r)
		return ORIGIN_BEFORE_TUAP;
	account_line(&p->pw, &p->gr, &p->sh, p->have_shadow, name, &now);
	buf_addf(&was, "%s\t%s\t%s", field(r, 1), field(r, 2), field(r, 3));
	o = account_changed(was.s, now.s, p->have_shadow, changes) ? ORIGIN_CHANGED
								   : ORIGIN_AS_LEFT;
	buf_free(&now);
	buf_free(&was);
	return o;
}

/* ---- planning one user ---- */

/* The supplementary groups u lacks, comma-separated ("" when none). */
static void missing_groups(struct planner *p, const Tuap__User *u, const struct row *pw,
			   struct buf *out)
{
	for (size_t k = 0; k < u->n_groups; k++) {
		const struct row *g = table_find(&p->gr, u->groups[k]);

		if (g && (list_has(field(g, 3), u->name) ||
			  (pw && strcmp(field(g, 2), field(pw, 3)) == 0)))
			continue;
		if (out->len && list_has(out->s, u->groups[k]))
			continue;
		buf_addf(out, "%s%s", out->len ? "," : "", u->groups[k]);
	}
}

/* The groups u names: made when create_groups (cloud-init's default), else they must exist. */
static int user_groups(struct planner *p, size_t i, const Tuap__User *u, struct tuap_err *err)
{
	bool create = !u->has_create_groups || u->create_groups;
	char key[64];

	for (size_t k = 0; k <= u->n_groups; k++) {
		const char *g = k < u->n_groups ? u->groups[k] : u->primary_group;

		if (!g)
			continue;
		if (create) {
			ensure_group(p, g);
		} else if (!group_known(p, g)) {
			snprintf(key, sizeof(key), "users[%zu].%s", i,
				 k < u->n_groups ? "groups" : "primary_group");
			return err_at(err, "users.yaml", (int)u->line, key,
				      "group %s does not exist and create_groups is false", g);
		}
	}
	return 0;
}

static void plan_new_user(struct planner *p, const Tuap__User *u)
{
	struct user_cmd *c = cmd_new(p, "useradd");
	struct buf groups = BUF_INIT;
	char num[16];

	if (u->gecos)
		cmd_opt(c, "--comment", u->gecos);
	if (u->homedir)
		cmd_opt(c, "--home-dir", u->homedir);
	if (u->shell)
		cmd_opt(c, "--shell", u->shell);
	if (u->has_uid) {
		snprintf(num, sizeof(num), "%u", u->uid);
		cmd_opt(c, "--uid", num);
	}
	if (u->primary_group)
		cmd_opt(c, "--gid", u->primary_group);
	else if (group_known(p, u->name) && !(u->has_no_user_group && u->no_user_group))
		cmd_opt(c, "--gid", u->name); /* useradd refuses to make a group that exists */
	missing_groups(p, u, NULL, &groups);
	if (groups.len)
		cmd_opt(c, "--groups", groups.s);
	if (u->passwd) {
		cmd_arg(c, "--password");
		c->secret = 0;
		while (c->argv[c->secret])
			c->secret++;
		cmd_arg(c, u->passwd);
	}
	if (u->expiredate)
		cmd_opt(c, "--expiredate", u->expiredate);
	if (u->inactive)
		cmd_opt(c, "--inactive", u->inactive);
	if (u->selinux_user && p->env->selinux)
		cmd_opt(c, "--selinux-user", u->selinux_user);
	else if (u->selinux_user)
		note(p->plan, "user %s: SELinux is not enabled here: selinux_user %s not applied",
		     u->name, u->selinux_user);
	if (u->has_no_user_group && u->no_user_group)
		cmd_arg(c, "--no-user-group");
	if (u->has_no_log_init && u->no_log_init)
		cmd_arg(c, "--no-log-init");
	if (u->has_system && u->system)
		cmd_arg(c, "--system");
	/* cloud-init: no home for system users and no_create_home; -m otherwise */
	if ((u->has_system && u->system) || (u->has_no_create_home && u->no_create_home))
		cmd_arg(c, "--no-create-home");
	else
		cmd_arg(c, "--create-home");
	cmd_arg(c, u->name);
	push_name(&p->new_users, &p->n_new_users, u->name);
	buf_free(&groups);
}

/* expiredate and inactive of an existing account, against its shadow entry. */
static void plan_expiry(struct planner *p, const Tuap__User *u)
{
	const struct row *sh = p->have_shadow ? table_find(&p->sh, u->name) : NULL;
	struct user_cmd *c;
	char num[24];

	if (u->expiredate) {
		snprintf(num, sizeof(num), "%ld", days_of(u->expiredate));
		if (!sh || strcmp(field(sh, 7), num) != 0) {
			c = cmd_new(p, "usermod");
			cmd_opt(c, "--expiredate", u->expiredate);
			cmd_arg(c, u->name);
		}
	}
	if (u->inactive && (!sh || strcmp(field(sh, 6), u->inactive) != 0)) {
		c = cmd_new(p, "usermod");
		cmd_opt(c, "--inactive", u->inactive);
		cmd_arg(c, u->name);
	}
}

/* What an existing account lacks of u, as commands (apply) or a description (report). */
static void plan_existing_user(struct planner *p, const Tuap__User *u, const struct row *pw,
			       bool apply, struct buf *report)
{
	struct buf groups = BUF_INIT;
	struct user_cmd *c;

#define CHANGE(what, opt, val)                                                                     \
	do {                                                                                       \
		if (apply) {                                                                       \
			c = cmd_new(p, "usermod");                                                 \
			cmd_opt(c, opt, val);                                                      \
			cmd_arg(c, u->name);                                                       \
		} else {                                                                           \
			buf_addf(report, "%s%s '%s'", report->len ? ", " : "", what, val);         \
		}                                                                                  \
	} while (0)
	if (u->gecos && strcmp(field(pw, 4), u->gecos) != 0)
		CHANGE("gecos", "--comment", u->gecos);
	if (u->shell && strcmp(field(pw, 6), u->shell) != 0)
		CHANGE("shell", "--shell", u->shell);
	if (u->primary_group) {
		const struct row *g = table_find(&p->gr, u->primary_group);

		if (!g || strcmp(field(g, 2), field(pw, 3)) != 0)
			CHANGE("primary_group", "--gid", u->primary_group);
	}
	missing_groups(p, u, pw, &groups);
	if (groups.len && apply) {
		c = cmd_new(p, "usermod");
		cmd_arg(c, "--append");
		cmd_opt(c, "--groups", groups.s);
		cmd_arg(c, u->name);
	} else if (groups.len) {
		buf_addf(report, "%sgroups '%s'", report->len ? ", " : "", groups.s);
	}
#undef CHANGE
	if (apply)
		plan_expiry(p, u);
	if (u->homedir && strcmp(field(pw, 5), u->homedir) != 0)
		note(p->plan, "user %s: home is %s, not %s; left as it is", u->name, field(pw, 5),
		     u->homedir);
	if (u->has_uid && strtoul(field(pw, 2), NULL, 10) != u->uid)
		note(p->plan, "user %s: uid is %s, not %u; left as it is", u->name, field(pw, 2),
		     u->uid);
	buf_free(&groups);
}

static void plan_password(struct planner *p, const Tuap__User *u, const struct row *pw)
{
	const struct row *sh = pw && p->have_shadow ? table_find(&p->sh, u->name) : NULL;
	const char *hash = sh ? field(sh, 1) : NULL; /* NULL: unknown */
	bool lock = !u->has_lock_passwd || u->lock_passwd;
	bool set = false, locked;
	struct user_cmd *c;

	if (u->hashed_passwd) {
		const char *cur = hash && hash[0] == '!' ? hash + 1 : hash;

		if (!cur || strcmp(cur, u->hashed_passwd) != 0) {
			c = cmd_new(p, "usermod");
			cmd_arg(c, "--password");
			c->secret = (int)(strcmp(p->root, "/") != 0 ? 4 : 2);
			cmd_arg(c, u->hashed_passwd);
			cmd_arg(c, u->name);
			set = true;
		}
	}
	locked = hash && !set && hash[0] == '!';
	if (lock && !locked) {
		c = cmd_new(p, "usermod");
		cmd_arg(c, "--lock");
		cmd_arg(c, u->name);
	} else if (!lock && hash && !set && hash[0] == '!' && hash[1] && hash[1] != '*' &&
		   hash[1] != '!') {
		c = cmd_new(p, "usermod");
		cmd_arg(c, "--unlock");
		cmd_arg(c, u->name);
	}
}

/* A new user's home must not be somebody else's directory: useradd would leave its owner as
 * it is, and the keys step would then hand its .ssh to the new user (homedir: /root did just
 * that). It may exist only when it already belongs to the uid the entry asks for. */
static int new_home_ok(const struct planner *p, const Tuap__User *u, struct tuap_err *err)
{
	char home[4096], path[8192];
	struct stat st;

	if ((u->has_system && u->system) || (u->has_no_create_home && u->no_create_home))
		if (!u->n_ssh_authorized_keys)
			return 0; /* no home made, none taken */
	snprintf(home, sizeof(home), "%s%s", u->homedir ? u->homedir : "/home/",
		 u->homedir ? "" : u->name);
	snprintf(path, sizeof(path), "%s%s", strcmp(p->root, "/") ? p->root : "", home);
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0
				       : err_set(err, "user %s: home %s: %s", u->name, home,
						 strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(err, "user %s: home %s exists and is not a directory", u->name,
			       home);
	if (!u->has_uid || st.st_uid != u->uid)
		return err_set(err,
			       "user %s: home %s already exists and belongs to uid %u; a new user "
			       "does not take over another's directory (remove it, choose another "
			       "homedir, or give uid: %u)",
			       u->name, home, (unsigned)st.st_uid, (unsigned)st.st_uid);
	return 0;
}

/* snap create-user, once: the records keep "snap:EMAIL" after it worked. */
static int plan_snapuser(struct planner *p, size_t i, const Tuap__User *u, struct tuap_err *err)
{
	char rec[320], key[64];
	struct user_cmd *c;

	snprintf(rec, sizeof(rec), "snap:%s", u->snapuser);
	if (table_find(&p->rec->t, rec))
		return 0;
	if (!p->env->snap) {
		snprintf(key, sizeof(key), "users[%zu].snapuser", i);
		return err_at(err, "users.yaml", (int)u->line, key,
			      "%s: snapd is not installed on this system (snap create-user needs "
			      "it; remove the entry or install snapd)",
			      u->snapuser);
	}
	strlist_add(&p->plan->record, rec);
	c = cmd_new(p, "snap");
	cmd_arg(c, "create-user");
	cmd_arg(c, "--sudoer");
	cmd_arg(c, "--json");
	cmd_arg(c, u->snapuser);
	return 0;
}

static int plan_user(struct planner *p, size_t i, const Tuap__User *u, struct tuap_err *err)
{
	const struct row *pw = table_find(&p->pw, u->name);
	struct buf changed = BUF_INIT, report = BUF_INIT;
	enum origin o = pw ? origin_of(p, u->name, &changed) : ORIGIN_AS_LEFT;
	bool apply = !pw || p->force || o == ORIGIN_AS_LEFT;
	int rc = -1;

	if (apply && user_groups(p, i, u, err) < 0)
		goto out;
	if (!pw) {
		if (new_home_ok(p, u, err) < 0)
			goto out;
		plan_new_user(p, u);
	} else {
		plan_existing_user(p, u, pw, apply, &report);
	}
	if (apply)
		strlist_add(&p->plan->record, u->name);
	if (o == ORIGIN_CHANGED && !p->force) {
		note(p->plan,
		     "user %s: changed since tuap's last run (%s): left as it is, password and "
		     "lock too (tuap-ctl provision --force-users applies users.yaml)",
		     u->name, changed.s);
	} else {
		if (o == ORIGIN_BEFORE_TUAP && !p->force && report.len)
			note(p->plan,
			     "user %s: existed before tuap: %s left as they are, as cloud-init "
			     "does (tuap-ctl provision --force-users applies them)",
			     u->name, report.s);
		plan_password(p, u, pw);
	}
	rc = 0;
out:
	buf_free(&changed);
	buf_free(&report);
	return rc;
}

/* Members of the top-level groups, once the users exist (cloud-init adds them before it makes
 * the users, so it skips those of users.yaml; tuap adds them). */
static void plan_members(struct planner *p, const Tuap__Group *g)
{
	const struct row *gr = table_find(&p->gr, g->name);

	for (size_t k = 0; k < g->n_members; k++) {
		const char *m = g->members[k];
		const struct row *pw = table_find(&p->pw, m);
		struct user_cmd *c;

		if (!pw && !in_names(p->new_users, p->n_new_users, m)) {
			note(p->plan, "group %s: member %s does not exist; not added", g->name, m);
			continue;
		}
		if (gr && list_has(field(gr, 3), m))
			continue;
		c = cmd_new(p, "usermod");
		cmd_arg(c, "--append");
		cmd_opt(c, "--groups", g->name);
		cmd_arg(c, m);
	}
}

int user_plan_build_env(const Tuap__UsersArgs *a, const struct user_plan_env *env,
			struct user_plan *plan, struct tuap_err *err)
{
	struct planner p;
	struct records rec;
	int rc = -1;

	memset(plan, 0, sizeof(*plan));
	memset(&p, 0, sizeof(p));
	memset(&rec, 0, sizeof(rec));
	p.plan = plan;
	p.env = env;
	p.rec = &rec;
	p.force = a->has_force && a->force;
	p.root = env->root && *env->root ? env->root : "/";
	p.have_shadow = env->shadow != NULL;
	if (validate(a, err) < 0)
		goto out;
	if (table_parse(env->passwd, &p.pw) < 0 || table_parse(env->group, &p.gr) < 0 ||
	    table_parse(env->shadow, &p.sh) < 0 || records_parse(env->records, &rec) < 0) {
		err_set(err, "users: out of memory");
		goto out;
	}
	for (size_t i = 0; i < a->n_groups; i++)
		ensure_group(&p, a->groups[i]->name);
	for (size_t i = 0; i < a->n_users; i++) {
		const Tuap__User *u = a->users[i];

		if (u->snapuser ? plan_snapuser(&p, i, u, err) < 0 : plan_user(&p, i, u, err) < 0)
			goto out;
	}
	for (size_t i = 0; i < a->n_groups; i++)
		plan_members(&p, a->groups[i]);
	rc = 0;
out:
	table_free(&p.pw);
	table_free(&p.gr);
	table_free(&p.sh);
	table_free(&rec.t);
	free(p.new_groups);
	free(p.new_users);
	return rc;
}

int user_plan_build(const Tuap__UsersArgs *a, const char *passwd, const char *group,
		    const char *shadow, const char *root, struct user_plan *plan,
		    struct tuap_err *err)
{
	struct user_plan_env env = {passwd, group, shadow, root, NULL, false, false};

	return user_plan_build_env(a, &env, plan, err);
}

char *user_records_update(const char *old, char *const *names, size_t n, const char *passwd,
			  const char *group, const char *shadow)
{
	struct table pw, gr, sh;
	struct records rec;
	struct buf out = BUF_INIT;

	if (table_parse(passwd, &pw) < 0 || table_parse(group, &gr) < 0 ||
	    table_parse(shadow, &sh) < 0 || records_parse(old, &rec) < 0)
		abort();
	for (size_t i = 0; i < rec.t.n; i++)
		if (!in_names(names, n, rec.t.v[i].f[0]))
			buf_addf(&out, "%s\t%s\t%s\t%s\n", rec.t.v[i].f[0], field(&rec.t.v[i], 1),
				 field(&rec.t.v[i], 2), field(&rec.t.v[i], 3));
	for (size_t k = 0; k < n; k++) {
		if (strncmp(names[k], "snap:", 5) == 0) {
			buf_addf(&out, "%s\t-\t-\t-\n", names[k]);
		} else if (table_find(&pw, names[k])) {
			buf_addf(&out, "%s\t", names[k]);
			account_line(&pw, &gr, &sh, shadow != NULL, names[k], &out);
			buf_adds(&out, "\n");
		}
	}
	table_free(&pw);
	table_free(&gr);
	table_free(&sh);
	table_free(&rec.t);
	buf_adds(&out, "");
	return buf_detach(&out, NULL);
}

void user_plan_free(struct user_plan *plan)
{
	for (size_t i = 0; i < plan->n_cmds; i++)
		for (size_t k = 0; plan->cmds[i].argv[k]; k++)
			free(plan->cmds[i].argv[k]);
	free(plan->cmds);
	for (size_t i = 0; i < plan->n_notes; i++)
		free(plan->notes[i]);
	free(plan->notes);
	strlist_free(&plan->record);
	memset(plan, 0, sizeof(*plan));
}

/* ------------------------------------------------------------------------------------------ */
/* authorized_keys and sudoers texts */

static void trimmed(const char *s, size_t n, const char **out, size_t *outn)
{
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	*out = s;
	*outn = n;
}

/* 1 when text (lines) holds a line equal to key once both are trimmed. */
static int has_line(const char *text, size_t len, const char *key)
{
	const char *k, *l;
	size_t kn, ln;

	trimmed(key, strlen(key), &k, &kn);
	for (size_t i = 0; i < len;) {
		size_t n = strcspn(text + i, "\n");

		if (i + n > len)
			n = len - i;
		trimmed(text + i, n, &l, &ln);
		if (ln == kn && memcmp(l, k, kn) == 0)
			return 1;
		i += n + 1;
	}
	return 0;
}

char *authkeys_merge(const char *old, char *const *keys, size_t n, bool *changed)
{
	struct buf own = BUF_INIT, out = BUF_INIT, block = BUF_INIT;
	const char *p = old ? old : "";
	bool in_block = false, placed = false, had_block = false;
	size_t at = 0; /* where our block goes in own */
	char *res;

	/* The user's own lines, with our block cut out (a BEGIN without END keeps its lines). */
	while (*p) {
		size_t len = strcspn(p, "\n");
		const char *t;
		size_t tn;

		trimmed(p, len, &t, &tn);
		if (!in_block && tn == strlen(AUTHKEYS_BEGIN) &&
		    memcmp(t, AUTHKEYS_BEGIN, tn) == 0 && strstr(p, AUTHKEYS_END)) {
			in_block = had_block = true;
			if (!placed)
				at = own.len, placed = true;
		} else if (in_block && tn == strlen(AUTHKEYS_END) &&
			   memcmp(t, AUTHKEYS_END, tn) == 0) {
			in_block = false;
		} else if (!in_block &&
			   !(tn == strlen(AUTHKEYS_BEGIN) && memcmp(t, AUTHKEYS_BEGIN, tn) == 0)) {
			buf_add(&own, p, len);
			buf_adds(&own, "\n");
		}
		p += len;
		if (*p == '\n')
			p++;
	}
	for (size_t i = 0; i < n; i++) {
		const char *k;
		size_t kn;

		trimmed(keys[i], strlen(keys[i]), &k, &kn);
		if (kn == 0 || has_line(own.s ? own.s : "", own.len, keys[i]) ||
		    has_line(block.s ? block.s : "", block.len, keys[i]))
			continue;
		buf_add(&block, k, kn);
		buf_adds(&block, "\n");
	}
	if (!had_block && block.len == 0) {
		buf_adds(&out, old ? old : ""); /* nothing of ours, before or now */
		goto done;
	}
	if (!placed)
		at = own.len;
	buf_add(&out, own.s ? own.s : "", at);
	if (block.len) {
		buf_addf(&out, "%s\n", AUTHKEYS_BEGIN);
		buf_add(&out, block.s, block.len);
		buf_addf(&out, "%s\n", AUTHKEYS_END);
	}
	buf_add(&out, own.s ? own.s + at : "", own.len - at);
done:
	res = buf_detach(&out, NULL);
	*changed = strcmp(res, old ? old : "") != 0;
	buf_free(&own);
	buf_free(&block);
	return res;
}

char *block_replace(const char *old, const char *begin, const char *end, const char *body)
{
	struct buf out = BUF_INIT;
	const char *p = old ? old : "";
	bool in = false, placed = false;

	while (*p) {
		size_t len = strcspn(p, "\n");
		const char *t;
		size_t tn;

		trimmed(p, len, &t, &tn);
		if (!in && tn == strlen(begin) && !memcmp(t, begin, tn) && strstr(p, end)) {
			in = true;
		} else if (in && tn == strlen(end) && !memcmp(t, end, tn)) {
			in = false;
			if (!placed && body && *body)
				buf_addf(&out, "%s\n%s%s\n", begin, body, end);
			placed = true;
		} else if (!in) {
			buf_add(&out, p, len);
			buf_adds(&out, "\n");
		}
		p += len + (p[len] == '\n');
	}
	if (!placed && body && *body)
		buf_addf(&out, "%s\n%s%s\n", begin, body, end);
	buf_adds(&out, "");
	return buf_detach(&out, NULL);
}

char *sudoers_render(const char *name, char *const *rules, size_t n)
{
	struct buf b = BUF_INIT;

	buf_addf(&b, "# tuap: sudo rules for %s (rewritten by tuap-agent)\n", name);
	for (size_t i = 0; i < n; i++)
		buf_addf(&b, "%s %s\n", name, rules[i]);
	return buf_detach(&b, NULL);
}

int passwd_entry(const char *passwd, const char *name, uid_t *uid, gid_t *gid, char *home,
		 size_t len)
{
	struct table t;
	const struct row *row;
	int rc = -1;

	if (table_parse(passwd, &t) < 0)
		return -1;
	row = table_find(&t, name);
	if (row && row->nf >= 7) {
		*uid = (uid_t)strtoul(row->f[2], NULL, 10);
		*gid = (gid_t)strtoul(row->f[3], NULL, 10);
		snprintf(home, len, "%s", row->f[5]);
		rc = 0;
	}
	table_free(&t);
	return rc;
}
