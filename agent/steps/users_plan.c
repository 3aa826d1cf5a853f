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

#include "buf.h"
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
		if (valid_user_name(u->name, NULL, 0) < 0)
			return BAD("name", "'%s' is not a user name", u->name ? u->name : "");
		for (size_t k = 0; k < i; k++)
			if (strcmp(a->users[k]->name, u->name) == 0)
				return BAD("name", "user '%s' appears twice", u->name);
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
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Planning */

struct planner {
	struct user_plan *plan;
	const char *root;
	struct table pw, gr, sh;
	bool have_shadow;
	char **new_groups; /* groups the plan creates */
	size_t n_new_groups;
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

static int group_known(struct planner *p, const char *g)
{
	if (table_find(&p->gr, g))
		return 1;
	for (size_t i = 0; i < p->n_new_groups; i++)
		if (strcmp(p->new_groups[i], g) == 0)
			return 1;
	return 0;
}

static void ensure_group(struct planner *p, const char *g, bool system)
{
	struct user_cmd *c;
	char **v;

	if (group_known(p, g))
		return;
	c = cmd_new(p, "groupadd");
	if (system)
		cmd_arg(c, "--system");
	cmd_arg(c, g);
	v = realloc(p->new_groups, (p->n_new_groups + 1) * sizeof(*v));
	if (!v)
		abort();
	p->new_groups = v;
	p->new_groups[p->n_new_groups++] = (char *)g;
}

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
	else if (group_known(p, u->name))
		cmd_opt(c, "--gid", u->name); /* useradd refuses to make a group that exists */
	missing_groups(p, u, NULL, &groups);
	if (groups.len)
		cmd_opt(c, "--groups", groups.s);
	if (u->has_system && u->system)
		cmd_arg(c, "--system");
	/* cloud-init: no home for system users and no_create_home; -m otherwise */
	if ((u->has_system && u->system) || (u->has_no_create_home && u->no_create_home))
		cmd_arg(c, "--no-create-home");
	else
		cmd_arg(c, "--create-home");
	cmd_arg(c, u->name);
	buf_free(&groups);
}

static void plan_existing_user(struct planner *p, const Tuap__User *u, const struct row *pw)
{
	struct buf groups = BUF_INIT;
	struct user_cmd *c;

	if (u->gecos && strcmp(field(pw, 4), u->gecos) != 0) {
		c = cmd_new(p, "usermod");
		cmd_opt(c, "--comment", u->gecos);
		cmd_arg(c, u->name);
	}
	if (u->shell && strcmp(field(pw, 6), u->shell) != 0) {
		c = cmd_new(p, "usermod");
		cmd_opt(c, "--shell", u->shell);
		cmd_arg(c, u->name);
	}
	if (u->primary_group) {
		const struct row *g = table_find(&p->gr, u->primary_group);

		if (!g || strcmp(field(g, 2), field(pw, 3)) != 0) {
			c = cmd_new(p, "usermod");
			cmd_opt(c, "--gid", u->primary_group);
			cmd_arg(c, u->name);
		}
	}
	missing_groups(p, u, pw, &groups);
	if (groups.len) {
		c = cmd_new(p, "usermod");
		cmd_arg(c, "--append");
		cmd_opt(c, "--groups", groups.s);
		cmd_arg(c, u->name);
	}
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

int user_plan_build(const Tuap__UsersArgs *a, const char *passwd, const char *group,
		    const char *shadow, const char *root, struct user_plan *plan,
		    struct tuap_err *err)
{
	struct planner p;
	int rc = -1;

	memset(plan, 0, sizeof(*plan));
	memset(&p, 0, sizeof(p));
	p.plan = plan;
	p.root = root && *root ? root : "/";
	p.have_shadow = shadow != NULL;
	if (validate(a, err) < 0)
		goto out;
	if (table_parse(passwd, &p.pw) < 0 || table_parse(group, &p.gr) < 0 ||
	    table_parse(shadow, &p.sh) < 0) {
		err_set(err, "users: out of memory");
		goto out;
	}
	for (size_t i = 0; i < a->n_users; i++) {
		const Tuap__User *u = a->users[i];
		const struct row *pw = table_find(&p.pw, u->name);
		bool system = u->has_system && u->system;

		if (u->primary_group)
			ensure_group(&p, u->primary_group, system);
		for (size_t k = 0; k < u->n_groups; k++)
			ensure_group(&p, u->groups[k], false);
		if (pw)
			plan_existing_user(&p, u, pw);
		else if (new_home_ok(&p, u, err) < 0)
			goto out;
		else
			plan_new_user(&p, u);
		plan_password(&p, u, pw);
	}
	rc = 0;
out:
	table_free(&p.pw);
	table_free(&p.gr);
	table_free(&p.sh);
	free(p.new_groups);
	return rc;
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
