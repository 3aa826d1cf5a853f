/*
 * The users step: plan (pure, users_plan.c) then apply: the planned shadow-utils commands run
 * through the action queue, then per user the sudoers file (written only after `visudo -c`
 * accepts it) and the tuap block of ~/.ssh/authorized_keys (written with *at() calls that do
 * not follow symlinks the user may have planted).
 */
#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "run.h"

#define ETC_FILE_MAX (64 << 20)
#define AUTHKEYS_MAX (1 << 20)

/* ------------------------------------------------------------------------------------------ */
/* Applying */

/* A configuration file (sudoers.d, doas.conf) written as a checked copy, then renamed. */
struct conf_job {
	char name[33];	 /* the user it is for ("" for doas.conf) */
	char tmp[4096];	 /* validated copy, removed if still there when the run ends */
	char path[4096]; /* ROOT/etc/sudoers.d/90-tuap-NAME, ROOT/etc/doas.conf */
};

struct keys_job {
	char name[33];
	struct strlist keys;
};

static void conf_job_free(void *arg)
{
	struct conf_job *s = arg;

	if (s->tmp[0])
		unlink(s->tmp);
	free(s);
}

static void keys_job_free(void *arg)
{
	struct keys_job *k = arg;

	strlist_free(&k->keys);
	free(k);
}

static int conf_install(struct step_run *r, void *arg, struct tuap_err *err)
{
	struct conf_job *s = arg;

	if (rename(s->tmp, s->path) < 0)
		return err_set(err, "%s: %s", s->path, strerror(errno));
	s->tmp[0] = '\0';
	run_log(r, "wrote %s", s->path);
	return fs_sync_parent(s->path, err);
}

static int sudo_remove(struct step_run *r, void *arg, struct tuap_err *err)
{
	struct conf_job *s = arg;

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
	struct conf_job *s = calloc(1, sizeof(*s));
	char visudo[256], *text = NULL, *cur = NULL, dir[4096];
	int rc = -1;

	if (!s)
		return err_set(err, "out of memory");
	snprintf(s->name, sizeof(s->name), "%s", u->name);
	sudoers_path(r, u->name, s->path, sizeof(s->path));
	cur = fs_read_file(s->path, 1 << 20, NULL, NULL);
	if (u->n_sudo == 0) {
		if (cur) {
			run_queue_fn(r, sudo_remove, s, conf_job_free, NULL);
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
	/* 0750, as cloud-init's ensure_sudo_dir leaves it */
	if (fs_mkdir_p(dir, 0750, err) < 0)
		goto out;
	if (chmod(dir, 0750) < 0) {
		err_set(err, "%s: %s", dir, strerror(errno));
		goto out;
	}
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
	run_queue_fn(r, conf_install, s, conf_job_free, NULL);
	s = NULL;
	(*changes)++;
	rc = 0;
out:
	if (s)
		conf_job_free(s);
	free(text);
	free(cur);
	return rc;
}

/* Looks name up in ROOT/etc/passwd: uid, gid, home. */
static int passwd_lookup(struct step_run *r, const char *name, uid_t *uid, gid_t *gid, char *home,
			 size_t len, struct tuap_err *err)
{
	char path[4096], *text;
	int rc;

	run_root_path(r, "/etc/passwd", path, sizeof(path));
	if (!(text = fs_read_file(path, ETC_FILE_MAX, NULL, err)))
		return -1;
	rc = passwd_entry(text, name, uid, gid, home, len);
	if (rc < 0)
		err_set(err, "user %s: not in %s", name, path);
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
	bool changed, made_ssh = false;
	size_t len;

	if (passwd_lookup(r, k->name, &uid, &gid, home_rel, sizeof(home_rel), err) < 0)
		return -1;
	if (run_root_path(r, home_rel, home, sizeof(home)) < 0)
		return err_set(err, "user %s: home path too long", k->name);
	hfd = open(home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (hfd < 0 && errno == ENOENT && k->keys.n == 0)
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
	if (st.st_uid != uid) { /* never hand a .ssh inside another's home to this user */
		err_set(err, "user %s: home %s belongs to uid %u, not to %s; keys not installed",
			k->name, home, (unsigned)st.st_uid, k->name);
		goto out;
	}
	sfd = openat(hfd, ".ssh", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0 && errno == ENOENT) {
		if (k->keys.n == 0) {
			rc = 0;
			goto out;
		}
		if (mkdirat(hfd, ".ssh", 0700) < 0)
			goto fail_errno;
		sfd = openat(hfd, ".ssh", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		made_ssh = true; /* ours: chowned below */
	}
	if (sfd < 0 || fstat(sfd, &st) < 0)
		goto fail_errno;
	if (st.st_uid != uid && !made_ssh) {
		err_set(err, "user %s: %s/.ssh belongs to uid %u, not to %s; keys not installed",
			k->name, home, (unsigned)st.st_uid, k->name);
		goto out;
	}
	if (read_at(sfd, "authorized_keys", &old, err) < 0)
		goto out;
	text = authkeys_merge(old, k->keys.v, k->keys.n, &changed);
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
	run_log(r, "wrote %s/.ssh/authorized_keys (%zu tuap key%s)", home, k->keys.n,
		k->keys.n == 1 ? "" : "s");
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

/* doas.conf: the rules of every user of the step in one tuap block, checked with doas -C
 * before it replaces the file. Without doas the rules are said and skipped. */
static int plan_doas(struct step_run *r, const Tuap__UsersArgs *a, int *changes,
		     struct tuap_err *err)
{
	struct buf body = BUF_INIT, who = BUF_INIT;
	struct conf_job *d = NULL;
	char doas[256], *cur = NULL, *text = NULL;
	int rc = -1;

	for (size_t i = 0; i < a->n_users; i++)
		for (size_t k = 0; k < a->users[i]->n_doas; k++) {
			if (k == 0)
				buf_addf(&who, "%s%s", who.len ? ", " : "", a->users[i]->name);
			buf_addf(&body, "%s\n", a->users[i]->doas[k]);
		}
	if (!(d = calloc(1, sizeof(*d)))) {
		err_set(err, "out of memory");
		goto out;
	}
	run_root_path(r, "/etc/doas.conf", d->path, sizeof(d->path));
	cur = fs_read_file(d->path, 1 << 20, NULL, NULL);
	if (!body.len && (!cur || !strstr(cur, DOAS_BEGIN))) {
		rc = 0; /* nothing of ours, before or now */
		goto out;
	}
	if (proc_which("doas", doas, sizeof(doas)) < 0) {
		run_log(r, "doas is not installed: the doas rules of %s are not written",
			who.len ? who.s : "(nobody)");
		rc = 0;
		goto out;
	}
	text = block_replace(cur, DOAS_BEGIN, DOAS_END, body.s);
	if (cur && strcmp(cur, text) == 0) {
		rc = 0;
		goto out;
	}
	if (fs_path(d->tmp, sizeof(d->tmp), err, "%s.tuap-tmp", d->path) < 0 ||
	    write_tmp(d->tmp, text, 0400, err) < 0) {
		d->tmp[0] = '\0';
		goto out;
	}
	run_queue_cmd(r, (const char *const[]){"doas", "-C", d->tmp, NULL}, -1);
	run_queue_fn(r, conf_install, d, conf_job_free, NULL);
	d = NULL;
	(*changes)++;
	rc = 0;
out:
	if (d)
		conf_job_free(d);
	buf_free(&body);
	buf_free(&who);
	free(cur);
	free(text);
	return rc;
}

/* The accounts to record (the plan's), copied: the plan is gone when the queue ends. */
struct records_job {
	struct strlist names;
};

static void records_job_free(void *arg)
{
	struct records_job *j = arg;

	strlist_free(&j->names);
	free(j);
}

static int records_path(struct step_run *r, char *out, size_t len, struct tuap_err *err)
{
	return fs_path(out, len, err, "%s/%s", r->env.state_dir, USERS_RECORDS);
}

/* After the commands: each account tuap made or brought to users.yaml as this run left it, so
 * that the next run tells a change by hand from one of users.yaml. */
static int records_write(struct step_run *r, void *arg, struct tuap_err *err)
{
	struct records_job *j = arg;
	char pw_path[4096], gr_path[4096], sh_path[4096], path[4096];
	char *pw = NULL, *gr = NULL, *sh = NULL, *old = NULL, *text = NULL;
	int rc = -1;

	run_root_path(r, "/etc/passwd", pw_path, sizeof(pw_path));
	run_root_path(r, "/etc/group", gr_path, sizeof(gr_path));
	run_root_path(r, "/etc/shadow", sh_path, sizeof(sh_path));
	if (records_path(r, path, sizeof(path), err) < 0 ||
	    !(pw = fs_read_file(pw_path, ETC_FILE_MAX, NULL, err)) ||
	    !(gr = fs_read_file(gr_path, ETC_FILE_MAX, NULL, err)))
		goto out;
	sh = fs_read_file(sh_path, ETC_FILE_MAX, NULL, NULL);
	old = fs_read_file(path, ETC_FILE_MAX, NULL, NULL);
	text = user_records_update(old, j->names.v, j->names.n, pw, gr, sh);
	rc = fs_write_atomic(path, text, strlen(text), 0600, err);
out:
	free(pw);
	free(gr);
	free(sh);
	free(old);
	free(text);
	return rc;
}

/* Takes the plan's record list. */
static int queue_records(struct step_run *r, struct user_plan *plan, struct tuap_err *err)
{
	struct records_job *j = calloc(1, sizeof(*j));

	if (!j)
		return err_set(err, "out of memory");
	j->names = plan->record;
	plan->record = (struct strlist){0};
	run_queue_fn(r, records_write, j, records_job_free, NULL);
	return 0;
}

int users_start(struct step_run *r, const Tuap__UsersArgs *a, struct tuap_err *err)
{
	char pw_path[4096], gr_path[4096], sh_path[4096], rec_path[4096], selinux[4096], snap[256];
	char *pw = NULL, *gr = NULL, *sh = NULL, *rec = NULL;
	struct user_plan_env env;
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
	if (records_path(r, rec_path, sizeof(rec_path), err) < 0)
		goto out;
	rec = fs_read_file(rec_path, ETC_FILE_MAX, NULL, NULL);
	run_root_path(r, "/sys/fs/selinux/enforce", selinux, sizeof(selinux));
	env = (struct user_plan_env){
		.passwd = pw,
		.group = gr,
		.shadow = sh,
		.root = r->env.root,
		.records = rec,
		.selinux = fs_exists(selinux),
		.snap = proc_which("snap", snap, sizeof(snap)) == 0,
	};
	if (user_plan_build_env(a, &env, &plan, err) < 0)
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

		if (u->snapuser)
			continue; /* snap create-user made its sudo rule and keys */
		if (plan_sudo(r, u, changes, err) < 0)
			goto out;
		if (!(k = calloc(1, sizeof(*k)))) {
			err_set(err, "out of memory");
			goto out;
		}
		snprintf(k->name, sizeof(k->name), "%s", u->name);
		for (size_t j = 0; j < u->n_ssh_authorized_keys; j++)
			strlist_add(&k->keys, u->ssh_authorized_keys[j]);
		run_queue_fn(r, keys_apply, k, keys_job_free, NULL);
	}
	if (plan_doas(r, a, changes, err) < 0 || queue_records(r, &plan, err) < 0)
		goto out;
	run_queue_fn(r, summary, NULL, NULL, NULL);
	rc = 0;
out:
	user_plan_free(&plan);
	free(pw);
	free(gr);
	free(sh);
	free(rec);
	return rc;
}
