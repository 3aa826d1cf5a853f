/*
 * The users step: plan (pure, see users.h) then apply: the planned shadow-utils commands run
 * through the action queue, then per user the sudoers file (written only after `visudo -c`
 * accepts it) and the tuap block of ~/.ssh/authorized_keys (written with *at() calls that do
 * not follow symlinks the user may have planted).
 */
#include "steps/users.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "steps/run.h"

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

static int name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 32)
		return 0;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
		return 0;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];

		if (c == '$' && i == n - 1)
			continue;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

/* Text that goes into a colon-separated file or one line: no ':', no control characters. */
static int text_ok(const char *s, size_t max, int colon_ok)
{
	size_t n = strlen(s);

	if (n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || (!colon_ok && s[i] == ':'))
			return 0;
	return 1;
}

static int path_ok(const char *s)
{
	return s[0] == '/' && text_ok(s, 4095, 0) && !strstr(s, "/../") &&
	       strcmp(s + strlen(s) - (strlen(s) >= 3 ? 3 : 0), "/..") != 0;
}

static int validate(const Tuap__UsersArgs *a, struct tuap_err *err)
{
	if (a->n_users > USER_PLAN_MAX_USERS)
		return err_at(err, NULL, 0, "users", "%zu users; at most %d", a->n_users,
			      USER_PLAN_MAX_USERS);
	for (size_t i = 0; i < a->n_users; i++) {
		const Tuap__User *u = a->users[i];
		char key[64];

#define BAD(k, ...)                                                                                \
	(snprintf(key, sizeof(key), "users[%zu].%s", i, k), err_at(err, NULL, 0, key, __VA_ARGS__))
		if (!name_ok(u->name))
			return BAD("name", "'%s' is not a user name", u->name ? u->name : "");
		for (size_t k = 0; k < i; k++)
			if (strcmp(a->users[k]->name, u->name) == 0)
				return BAD("name", "user '%s' appears twice", u->name);
		if (u->gecos && !text_ok(u->gecos, 255, 0))
			return BAD("gecos", "must be one line without ':'");
		if (u->n_groups > USER_PLAN_MAX_LIST ||
		    u->n_ssh_authorized_keys > USER_PLAN_MAX_LIST || u->n_sudo > USER_PLAN_MAX_LIST)
			return BAD("groups", "lists hold at most %d items", USER_PLAN_MAX_LIST);
		for (size_t k = 0; k < u->n_groups; k++)
			if (!name_ok(u->groups[k]))
				return BAD("groups", "'%s' is not a group name", u->groups[k]);
		if (u->primary_group && !name_ok(u->primary_group))
			return BAD("primary_group", "'%s' is not a group name", u->primary_group);
		for (size_t k = 0; k < u->n_sudo; k++)
			if (!u->sudo[k][0] || !text_ok(u->sudo[k], 4096, 1))
				return BAD("sudo", "rule %zu must be one non-empty line", k + 1);
		if (u->shell && !path_ok(u->shell))
			return BAD("shell", "'%s' is not an absolute path", u->shell);
		for (size_t k = 0; k < u->n_ssh_authorized_keys; k++)
			if (!u->ssh_authorized_keys[k][0] ||
			    !text_ok(u->ssh_authorized_keys[k], 16384, 1))
				return BAD("ssh_authorized_keys",
					   "key %zu must be one non-empty line", k + 1);
		if (u->hashed_passwd &&
		    (!u->hashed_passwd[0] || !text_ok(u->hashed_passwd, 512, 0)))
			return BAD("hashed_passwd", "must be a crypt(3) hash (one line, no ':')");
		if (u->homedir && !path_ok(u->homedir))
			return BAD("homedir", "'%s' is not an absolute path", u->homedir);
		if (u->has_uid && u->uid > 0x7ffffffe)
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

/* ------------------------------------------------------------------------------------------ */
/* Applying */

struct sudo_job {
	char name[33];
	char tmp[4096];	 /* validated copy, removed if still there when the run ends */
	char path[4096]; /* ROOT/etc/sudoers.d/90-tuap-NAME */
};

struct keys_job {
	char name[33];
	char **keys;
	size_t n;
};

static void sudo_job_free(void *arg)
{
	struct sudo_job *s = arg;

	if (s->tmp[0])
		unlink(s->tmp);
	free(s);
}

static void keys_job_free(void *arg)
{
	struct keys_job *k = arg;

	for (size_t i = 0; i < k->n; i++)
		free(k->keys[i]);
	free(k->keys);
	free(k);
}

static int sudo_install(struct step_run *r, void *arg, struct tuap_err *err)
{
	struct sudo_job *s = arg;

	if (rename(s->tmp, s->path) < 0)
		return err_set(err, "%s: %s", s->path, strerror(errno));
	s->tmp[0] = '\0';
	run_log(r, "wrote %s", s->path);
	return fs_sync_parent(s->path, err);
}

static int sudo_remove(struct step_run *r, void *arg, struct tuap_err *err)
{
	struct sudo_job *s = arg;

	if (unlink(s->path) < 0 && errno != ENOENT)
		return err_set(err, "%s: %s", s->path, strerror(errno));
	run_log(r, "removed %s (user %s has no sudo rules now)", s->path, s->name);
	return fs_sync_parent(s->path, err);
}

/* The sudoers file name: sudo skips names with a '.', so dots become '_'. */
static void sudoers_path(struct step_run *r, const char *name, char *out, size_t len)
{
	char rel[128];

	snprintf(rel, sizeof(rel), "/etc/sudoers.d/90-tuap-%s", name);
	for (char *c = rel + strlen("/etc/sudoers.d/"); *c; c++)
		if (*c == '.')
			*c = '_';
	run_root_path(r, rel, out, len);
}

static int write_tmp(const char *path, const char *text, mode_t mode, struct tuap_err *err)
{
	size_t len = strlen(text);
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return err_set(err, "%s: %s", path, strerror(errno));
	if (fchmod(fd, mode) < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		err_set(err, "%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

/* Plans the sudoers file of u: nothing, a validated write or a removal. */
static int plan_sudo(struct step_run *r, const Tuap__User *u, int *changes, struct tuap_err *err)
{
	struct sudo_job *s = calloc(1, sizeof(*s));
	char visudo[256], *text = NULL, *cur = NULL, dir[4096];
	int rc = -1;

	if (!s)
		return err_set(err, "out of memory");
	snprintf(s->name, sizeof(s->name), "%s", u->name);
	sudoers_path(r, u->name, s->path, sizeof(s->path));
	cur = fs_read_file(s->path, 1 << 20, NULL, NULL);
	if (u->n_sudo == 0) {
		if (cur) {
			run_queue_fn(r, sudo_remove, s, sudo_job_free, NULL);
			s = NULL;
			(*changes)++;
		}
		rc = 0;
		goto out;
	}
	text = sudoers_render(u->name, u->sudo, u->n_sudo);
	if (cur && strcmp(cur, text) == 0) {
		rc = 0;
		goto out;
	}
	if (proc_which("visudo", visudo, sizeof(visudo)) < 0) {
		err_set(err, "user %s has sudo rules but visudo is not installed (install sudo)",
			u->name);
		goto out;
	}
	run_root_path(r, "/etc/sudoers.d", dir, sizeof(dir));
	if (fs_mkdir_p(dir, 0750, err) < 0)
		goto out;
	if ((size_t)snprintf(s->tmp, sizeof(s->tmp), "%s/.tuap-%s.tmp", dir, u->name) >=
	    sizeof(s->tmp)) {
		s->tmp[0] = '\0';
		err_set(err, "%s: path too long", dir);
		goto out;
	}
	if (write_tmp(s->tmp, text, 0440, err) < 0) {
		s->tmp[0] = '\0';
		goto out;
	}
	run_queue_cmd(r, (const char *const[]){"visudo", "-c", "-q", "-f", s->tmp, NULL}, -1);
	run_queue_fn(r, sudo_install, s, sudo_job_free, NULL);
	s = NULL;
	(*changes)++;
	rc = 0;
out:
	if (s)
		sudo_job_free(s);
	free(text);
	free(cur);
	return rc;
}

/* Looks name up in ROOT/etc/passwd: uid, gid, home. */
static int passwd_lookup(struct step_run *r, const char *name, uid_t *uid, gid_t *gid, char *home,
			 size_t len, struct tuap_err *err)
{
	char path[4096], *text;
	struct table t;
	const struct row *row;
	int rc = -1;

	run_root_path(r, "/etc/passwd", path, sizeof(path));
	if (!(text = fs_read_file(path, ETC_FILE_MAX, NULL, err)))
		return -1;
	if (table_parse(text, &t) < 0) {
		free(text);
		return err_set(err, "out of memory");
	}
	row = table_find(&t, name);
	if (!row || row->nf < 7) {
		err_set(err, "user %s: not in %s", name, path);
	} else {
		*uid = (uid_t)strtoul(row->f[2], NULL, 10);
		*gid = (gid_t)strtoul(row->f[3], NULL, 10);
		snprintf(home, len, "%s", row->f[5]);
		rc = 0;
	}
	table_free(&t);
	free(text);
	return rc;
}

/* Reads authorized_keys (at most AUTHKEYS_MAX) under dirfd; NULL text when absent. */
static int read_at(int dirfd, const char *name, char **text, struct tuap_err *err)
{
	struct buf b = BUF_INIT;
	char chunk[8192];
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	ssize_t n;

	*text = NULL;
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return err_set(err, "%s: %s", name, strerror(errno));
	while ((n = read(fd, chunk, sizeof(chunk))) > 0 && b.len <= AUTHKEYS_MAX)
		buf_add(&b, chunk, (size_t)n);
	close(fd);
	if (n < 0 || b.len > AUTHKEYS_MAX) {
		buf_free(&b);
		return err_set(err, "%s: unreadable or larger than %d bytes", name, AUTHKEYS_MAX);
	}
	*text = buf_detach(&b, NULL);
	return 0;
}

static int keys_apply(struct step_run *r, void *arg, struct tuap_err *err)
{
	struct keys_job *k = arg;
	char home_rel[4096], home[4096], *old = NULL, *text = NULL;
	int hfd = -1, sfd = -1, fd = -1, rc = -1, *changes = r->priv;
	struct stat st;
	uid_t uid = 0;
	gid_t gid = 0;
	bool changed;
	size_t len;

	if (passwd_lookup(r, k->name, &uid, &gid, home_rel, sizeof(home_rel), err) < 0)
		return -1;
	if (run_root_path(r, home_rel, home, sizeof(home)) < 0)
		return err_set(err, "user %s: home path too long", k->name);
	hfd = open(home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (hfd < 0 && errno == ENOENT && k->n == 0)
		return 0;
	if (hfd < 0 && errno == ENOENT) {
		/* no_create_home with keys: make the home as useradd -m would, without skel */
		if (fs_mkdir_p(home, 0700, err) < 0)
			return -1;
		hfd = open(home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (hfd >= 0 && fchown(hfd, uid, gid) < 0)
			goto fail_errno;
		run_log(r, "created %s for %s's keys", home, k->name);
	}
	if (hfd < 0)
		goto fail_errno;
	if (fstat(hfd, &st) < 0)
		goto fail_errno;
	if (st.st_uid != uid && st.st_uid != 0) {
		err_set(err, "user %s: home %s belongs to uid %u; keys not installed", k->name,
			home, (unsigned)st.st_uid);
		goto out;
	}
	sfd = openat(hfd, ".ssh", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0 && errno == ENOENT) {
		if (k->n == 0) {
			rc = 0;
			goto out;
		}
		if (mkdirat(hfd, ".ssh", 0700) < 0)
			goto fail_errno;
		sfd = openat(hfd, ".ssh", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (sfd < 0 || fstat(sfd, &st) < 0)
		goto fail_errno;
	if (st.st_uid != uid && st.st_uid != 0) {
		err_set(err, "user %s: %s/.ssh belongs to uid %u; keys not installed", k->name,
			home, (unsigned)st.st_uid);
		goto out;
	}
	if (read_at(sfd, "authorized_keys", &old, err) < 0)
		goto out;
	text = authkeys_merge(old, k->keys, k->n, &changed);
	if (!changed) {
		rc = 0;
		goto out;
	}
	if (fchown(sfd, uid, gid) < 0 || fchmod(sfd, 0700) < 0)
		goto fail_errno;
	unlinkat(sfd, ".authorized_keys.tuap-tmp", 0);
	fd = openat(sfd, ".authorized_keys.tuap-tmp",
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	len = strlen(text);
	if (fd < 0 || fchown(fd, uid, gid) < 0 || fchmod(fd, 0600) < 0 ||
	    write(fd, text, len) != (ssize_t)len || fsync(fd) < 0 ||
	    renameat(sfd, ".authorized_keys.tuap-tmp", sfd, "authorized_keys") < 0 ||
	    fsync(sfd) < 0) {
		unlinkat(sfd, ".authorized_keys.tuap-tmp", 0);
		goto fail_errno;
	}
	run_log(r, "wrote %s/.ssh/authorized_keys (%zu tuap key%s)", home, k->n,
		k->n == 1 ? "" : "s");
	(*changes)++;
	rc = 0;
	goto out;
fail_errno:
	err_set(err, "user %s: %s/.ssh/authorized_keys: %s", k->name, home, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	if (sfd >= 0)
		close(sfd);
	if (hfd >= 0)
		close(hfd);
	free(old);
	free(text);
	return rc;
}

static int summary(struct step_run *r, void *arg, struct tuap_err *err)
{
	int *changes = r->priv;

	if (*changes == 0)
		run_log(r, "users: nothing to change");
	return 0;
}

int users_start(struct step_run *r, const Tuap__UsersArgs *a, struct tuap_err *err)
{
	char pw_path[4096], gr_path[4096], sh_path[4096];
	char *pw = NULL, *gr = NULL, *sh = NULL;
	struct user_plan plan;
	int rc = -1, *changes;

	memset(&plan, 0, sizeof(plan));
	run_root_path(r, "/etc/passwd", pw_path, sizeof(pw_path));
	run_root_path(r, "/etc/group", gr_path, sizeof(gr_path));
	run_root_path(r, "/etc/shadow", sh_path, sizeof(sh_path));
	if (!(pw = fs_read_file(pw_path, ETC_FILE_MAX, NULL, err)) ||
	    !(gr = fs_read_file(gr_path, ETC_FILE_MAX, NULL, err)))
		goto out;
	sh = fs_read_file(sh_path, ETC_FILE_MAX, NULL, NULL); /* NULL: unknown, see users.h */
	if (user_plan_build(a, pw, gr, sh, r->env.root, &plan, err) < 0)
		goto out;
	if (!(changes = calloc(1, sizeof(*changes)))) {
		err_set(err, "out of memory");
		goto out;
	}
	r->priv = changes;
	*changes = (int)plan.n_cmds;
	for (size_t i = 0; i < plan.n_notes; i++)
		run_log(r, "%s", plan.notes[i]);
	for (size_t i = 0; i < plan.n_cmds; i++)
		run_queue_cmd(r, (const char *const *)plan.cmds[i].argv, plan.cmds[i].secret);
	for (size_t i = 0; i < a->n_users; i++) {
		const Tuap__User *u = a->users[i];
		struct keys_job *k;

		if (plan_sudo(r, u, changes, err) < 0)
			goto out;
		if (!(k = calloc(1, sizeof(*k))) ||
		    !(k->keys = calloc(u->n_ssh_authorized_keys + 1, sizeof(char *)))) {
			free(k);
			err_set(err, "out of memory");
			goto out;
		}
		snprintf(k->name, sizeof(k->name), "%s", u->name);
		for (size_t j = 0; j < u->n_ssh_authorized_keys; j++)
			if ((k->keys[k->n] = strdup(u->ssh_authorized_keys[j])))
				k->n++;
		run_queue_fn(r, keys_apply, k, keys_job_free, NULL);
	}
	run_queue_fn(r, summary, NULL, NULL, NULL);
	rc = 0;
out:
	user_plan_free(&plan);
	free(pw);
	free(gr);
	free(sh);
	return rc;
}
