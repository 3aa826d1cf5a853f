/*
 * agent/steps/users.c and users_plan.c: the users plan (from sample passwd/group/shadow texts)
 * and its idempotence, the validation of what tuapd sends, the authorized_keys merge and the
 * sudoers text; as root, the users step for real against a scratch root (useradd --root),
 * including homes that are not the user's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_steps_util.h"
#include "fsutil.h"
#include "stepjournal.h"
#include "proc.h"
#include "steps.h"
#include "steps/mail.h"
#include "steps/users.h"

static const char *PASSWD = "root:x:0:0:root:/root:/bin/bash\n"
			    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
			    "bob:x:1001:1001:Bob:/home/bob:/bin/sh\n";
static const char *GROUP = "root:x:0:\n"
			   "sudo:x:27:\n"
			   "bob:x:1001:\n"
			   "web:x:1002:bob\n"
			   "carol:x:1005:\n";
static const char *SHADOW = "root:*:19000:0:99999:7:::\n"
			    "bob:!$6$old:19000:0:99999:7:::\n";

/* What the system looks like once the plan below ran. */
static const char *PASSWD2 = "root:x:0:0:root:/root:/bin/bash\n"
			     "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
			     "bob:x:1001:1001:Bob:/home/bob:/bin/bash\n"
			     "alice:x:1002:1004:Alice A:/home/alice:/bin/bash\n"
			     "carol:x:1003:1005::/home/carol:/bin/sh\n";
static const char *GROUP2 = "root:x:0:\n"
			    "sudo:x:27:alice\n"
			    "bob:x:1001:\n"
			    "web:x:1002:bob\n"
			    "carol:x:1005:\n"
			    "dev:x:1003:alice,bob\n"
			    "alice:x:1004:\n";
static const char *SHADOW2 = "root:*:19000:0:99999:7:::\n"
			     "bob:$6$new:19000:0:99999:7:::\n"
			     "alice:!:19000:0:99999:7:::\n"
			     "carol:!:19000:0:99999:7:::\n";

struct req {
	Tuap__UsersArgs args;
	Tuap__User u[3];
	Tuap__User *up[3];
	char *alice_groups[2];
	char *alice_keys[1];
	char *alice_sudo[1];
	char *bob_groups[2];
};

static void make_req(struct req *q)
{
	memset(q, 0, sizeof(*q));
	tuap__users_args__init(&q->args);
	for (int i = 0; i < 3; i++) {
		tuap__user__init(&q->u[i]);
		q->up[i] = &q->u[i];
	}
	q->args.users = q->up;
	q->args.n_users = 3;
	q->u[0].name = "alice";
	q->u[0].gecos = "Alice A";
	q->u[0].shell = "/bin/bash";
	q->alice_groups[0] = "sudo";
	q->alice_groups[1] = "dev";
	q->u[0].groups = q->alice_groups;
	q->u[0].n_groups = 2;
	q->alice_keys[0] = "ssh-ed25519 AAAAC3Nza alice@x";
	q->u[0].ssh_authorized_keys = q->alice_keys;
	q->u[0].n_ssh_authorized_keys = 1;
	q->alice_sudo[0] = "ALL=(ALL) NOPASSWD:ALL";
	q->u[0].sudo = q->alice_sudo;
	q->u[0].n_sudo = 1;
	q->u[1].name = "bob";
	q->u[1].shell = "/bin/bash";
	q->bob_groups[0] = "web";
	q->bob_groups[1] = "dev";
	q->u[1].groups = q->bob_groups;
	q->u[1].n_groups = 2;
	q->u[1].hashed_passwd = "$6$new";
	q->u[1].has_lock_passwd = true;
	q->u[1].lock_passwd = false;
	q->u[1].has_uid = true;
	q->u[1].uid = 2000;
	q->u[2].name = "carol"; /* a group of that name exists already */
}

static char *plan_text(const struct user_plan *p)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	for (size_t i = 0; i < p->n_cmds; i++) {
		for (size_t k = 0; p->cmds[i].argv[k]; k++)
			fprintf(f, "%s%s", k ? " " : "",
				(int)k == p->cmds[i].secret ? "***" : p->cmds[i].argv[k]);
		fputc('\n', f);
	}
	fclose(f);
	return out;
}

static void test_users_plan(void **state)
{
	struct user_plan plan;
	struct tuap_err err;
	struct req q;
	char *text;

	make_req(&q);
	assert_int_equal(user_plan_build(&q.args, PASSWD, GROUP, SHADOW, "/", &plan, &err), 0);
	text = plan_text(&plan);
	assert_string_equal(text, "groupadd dev\n"
				  "useradd --comment Alice A --shell /bin/bash --groups sudo,dev "
				  "--create-home alice\n"
				  "usermod --lock alice\n"
				  "usermod --password *** bob\n"
				  "useradd --gid carol --create-home carol\n"
				  "usermod --lock carol\n");
	assert_string_equal(plan.cmds[3].argv[plan.cmds[3].secret], "$6$new");
	/* bob existed before tuap: as cloud-init, only his password and lock are applied */
	assert_int_equal(plan.n_notes, 2);
	assert_non_null(strstr(plan.notes[0], "uid is 1001, not 2000"));
	assert_string_equal(
		plan.notes[1],
		"user bob: existed before tuap: shell '/bin/bash', groups 'dev' left as "
		"they are, as cloud-init does (tuap-ctl provision --force-users applies "
		"them)");
	free(text);
	user_plan_free(&plan);

	/* --force-users, or bob as tuap's last run left him: brought to users.yaml */
	for (int how = 0; how < 2; how++) {
		char *bob = "bob", *rec = user_records_update(NULL, &bob, 1, PASSWD, GROUP, SHADOW);
		struct user_plan_env env = {PASSWD,	      GROUP, SHADOW, "/",
					    how ? rec : NULL, false, false};

		q.args.has_force = 1;
		q.args.force = how == 0;
		assert_int_equal(user_plan_build_env(&q.args, &env, &plan, &err), 0);
		text = plan_text(&plan);
		assert_non_null(strstr(text, "usermod --shell /bin/bash bob\n"
					     "usermod --append --groups dev bob\n"
					     "usermod --password *** bob\n"));
		free(text);
		user_plan_free(&plan);
		free(rec);
	}
	q.args.force = false;

	/* the same request against the system it produced plans nothing */
	assert_int_equal(user_plan_build(&q.args, PASSWD2, GROUP2, SHADOW2, "/", &plan, &err), 0);
	assert_int_equal(plan.n_cmds, 0);
	user_plan_free(&plan);
	{
		uid_t uid;
		gid_t gid;
		char home[64];

		assert_int_equal(passwd_entry(PASSWD2, "alice", &uid, &gid, home, sizeof(home)), 0);
		assert_int_equal(uid, 1002);
		assert_int_equal(gid, 1004);
		assert_string_equal(home, "/home/alice");
		assert_int_equal(passwd_entry(PASSWD2, "ali", &uid, &gid, home, sizeof(home)), -1);
	}

	/* unknown shadow: password and lock are (re)applied, which is harmless */
	assert_int_equal(user_plan_build(&q.args, PASSWD2, GROUP2, NULL, "/", &plan, &err), 0);
	text = plan_text(&plan);
	assert_string_equal(text, "usermod --lock alice\n"
				  "usermod --password *** bob\n"
				  "usermod --lock carol\n");
	free(text);
	user_plan_free(&plan);
}

static void test_users_plan_root_and_system(void **state)
{
	struct user_plan plan;
	struct tuap_err err;
	Tuap__UsersArgs args = TUAP__USERS_ARGS__INIT;
	Tuap__User u = TUAP__USER__INIT, *up = &u;
	char *text;

	args.users = &up;
	args.n_users = 1;
	u.name = "svc";
	u.primary_group = "svcgrp";
	u.has_system = u.system = true;
	u.has_uid = true;
	u.uid = 990;
	u.homedir = "/var/lib/svc";
	u.hashed_passwd = "$6$h";
	assert_int_equal(user_plan_build(&args, PASSWD, GROUP, SHADOW, "/tmp/r", &plan, &err), 0);
	text = plan_text(&plan);
	assert_string_equal(text, "groupadd --root /tmp/r svcgrp\n"
				  "useradd --root /tmp/r --home-dir /var/lib/svc --uid 990 --gid "
				  "svcgrp --system --no-create-home svc\n"
				  "usermod --root /tmp/r --password *** svc\n"
				  "usermod --root /tmp/r --lock svc\n");
	assert_int_equal(plan.cmds[2].secret, 4);
	free(text);
	user_plan_free(&plan);
}

/* 14.1: the keys useradd takes as cloud-init passes them, top-level groups, and what a system
 * without SELinux, snapd or a group cannot do. */
static void test_users_plan_cloudinit_keys(void **state)
{
	Tuap__UsersArgs args = TUAP__USERS_ARGS__INIT;
	Tuap__User u = TUAP__USER__INIT, s = TUAP__USER__INIT, *up[2] = {&u, &s};
	Tuap__Group g = TUAP__GROUP__INIT, *gp = &g;
	char *members[] = {"web", "nobody-here", "bob"}, *groups[] = {"staff"};
	struct user_plan_env env = {PASSWD, GROUP, SHADOW, "/", NULL, false, false};
	struct user_plan plan;
	struct tuap_err err;
	char *text, buf[512];

	args.users = up;
	args.n_users = 1;
	args.groups = &gp;
	args.n_groups = 1;
	g.name = "ops";
	g.members = members;
	g.n_members = 3;
	u.name = "web";
	u.passwd = "$6$salt$hash";
	u.expiredate = "2032-09-01";
	u.inactive = "5";
	u.selinux_user = "staff_u";
	u.has_no_user_group = u.no_user_group = true;
	u.has_no_log_init = u.no_log_init = true;
	u.groups = groups;
	u.n_groups = 1;
	u.has_line = true;
	u.line = 7;
	assert_int_equal(user_plan_build_env(&args, &env, &plan, &err), 0);
	text = plan_text(&plan);
	assert_string_equal(text, "groupadd ops\n"
				  "groupadd staff\n"
				  "useradd --groups staff --password *** --expiredate 2032-09-01 "
				  "--inactive 5 --no-user-group --no-log-init --create-home web\n"
				  "usermod --lock web\n"
				  "usermod --append --groups ops web\n"
				  "usermod --append --groups ops bob\n");
	assert_string_equal(plan.cmds[2].argv[plan.cmds[2].secret], "$6$salt$hash");
	assert_int_equal(plan.n_notes, 2);
	assert_string_equal(
		plan.notes[0],
		"user web: SELinux is not enabled here: selinux_user staff_u not applied");
	assert_string_equal(plan.notes[1],
			    "group ops: member nobody-here does not exist; not added");
	assert_int_equal(plan.record.n, 1);
	free(text);
	user_plan_free(&plan);

	/* with SELinux on, useradd gets it */
	env.selinux = true;
	assert_int_equal(user_plan_build_env(&args, &env, &plan, &err), 0);
	text = plan_text(&plan);
	assert_non_null(strstr(text, " --selinux-user staff_u "));
	free(text);
	user_plan_free(&plan);

	/* create_groups: false and a group that does not exist: nothing planned */
	u.has_create_groups = true;
	u.create_groups = false;
	assert_int_equal(user_plan_build_env(&args, &env, &plan, &err), -1);
	assert_string_equal(err_str(&err, buf, sizeof(buf)),
			    "users.yaml:7: users[0].groups: group staff does not exist and "
			    "create_groups is false");
	user_plan_free(&plan);
	u.create_groups = true;

	/* snapuser: snap create-user once, where snapd is */
	s.name = "";
	s.snapuser = "joe@example.org";
	s.has_line = true;
	s.line = 12;
	args.n_users = 2;
	assert_int_equal(user_plan_build_env(&args, &env, &plan, &err), -1);
	assert_string_equal(
		err_str(&err, buf, sizeof(buf)),
		"users.yaml:12: users[1].snapuser: joe@example.org: snapd is not installed "
		"on this system (snap create-user needs it; remove the entry or install "
		"snapd)");
	user_plan_free(&plan);
	env.snap = true;
	assert_int_equal(user_plan_build_env(&args, &env, &plan, &err), 0);
	text = plan_text(&plan);
	assert_non_null(strstr(text, "snap create-user --sudoer --json joe@example.org\n"));
	free(text);
	text = user_records_update(NULL, plan.record.v, plan.record.n, PASSWD, GROUP, SHADOW);
	assert_non_null(strstr(text, "snap:joe@example.org\t"));
	user_plan_free(&plan);
	env.records = text;
	assert_int_equal(user_plan_build_env(&args, &env, &plan, &err), 0);
	for (size_t i = 0; i < plan.n_cmds; i++)
		assert_string_not_equal(plan.cmds[i].argv[0], "snap");
	user_plan_free(&plan);
	free(text);
}

/* doas.conf's tuap block: replaced in place, appended, removed when empty. */
static void test_block_replace(void **state)
{
	char *t;

	t = block_replace(NULL, DOAS_BEGIN, DOAS_END, "permit web as root\n");
	assert_string_equal(t, DOAS_BEGIN "\npermit web as root\n" DOAS_END "\n");
	free(t);
	t = block_replace("permit :wheel\n" DOAS_BEGIN "\nold\n" DOAS_END "\npermit bob\n",
			  DOAS_BEGIN, DOAS_END, "new\n");
	assert_string_equal(t, "permit :wheel\n" DOAS_BEGIN "\nnew\n" DOAS_END "\npermit bob\n");
	free(t);
	t = block_replace("permit :wheel\n" DOAS_BEGIN "\nold\n" DOAS_END "\n", DOAS_BEGIN,
			  DOAS_END, "");
	assert_string_equal(t, "permit :wheel\n");
	free(t);
	/* a begin without end is not ours: kept */
	t = block_replace(DOAS_BEGIN "\nx\n", DOAS_BEGIN, DOAS_END, "");
	assert_string_equal(t, DOAS_BEGIN "\nx\n");
	free(t);
}

static void test_users_validation(void **state)
{
	static const struct {
		const char *name, *gecos, *shell, *group, *key, *why;
	} bad[] = {
		{"-rf", NULL, NULL, NULL, NULL, "users[0].name"},
		{"a b", NULL, NULL, NULL, NULL, "users[0].name"},
		{"ok", "x:y", NULL, NULL, NULL, "users[0].gecos"},
		{"ok", NULL, "bin/sh", NULL, NULL, "users[0].shell"},
		{"ok", NULL, NULL, "--all", NULL, "users[0].groups"},
		{"ok", NULL, NULL, NULL, "ssh-rsa A\nssh-rsa B", "users[0].ssh_authorized_keys"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		Tuap__UsersArgs args = TUAP__USERS_ARGS__INIT;
		Tuap__User u = TUAP__USER__INIT, *up = &u;
		char *g[1] = {(char *)bad[i].group}, *k[1] = {(char *)bad[i].key};
		struct user_plan plan;
		struct tuap_err err;

		args.users = &up;
		args.n_users = 1;
		u.name = (char *)bad[i].name;
		u.gecos = (char *)bad[i].gecos;
		u.shell = (char *)bad[i].shell;
		if (bad[i].group) {
			u.groups = g;
			u.n_groups = 1;
		}
		if (bad[i].key) {
			u.ssh_authorized_keys = k;
			u.n_ssh_authorized_keys = 1;
		}
		memset(&err, 0, sizeof(err));
		assert_int_equal(user_plan_build(&args, PASSWD, GROUP, SHADOW, "/", &plan, &err),
				 -1);
		assert_string_equal(err.key, bad[i].why);
		user_plan_free(&plan);
	}
}

static void test_authkeys_merge(void **state)
{
	char *keys[] = {"ssh-ed25519 K1 a", "ssh-rsa MINE me", " ssh-ed25519 K1 a "};
	bool changed;
	char *t, *t2, *t3;

	t = authkeys_merge(NULL, keys, 1, &changed);
	assert_true(changed);
	assert_string_equal(t, AUTHKEYS_BEGIN "\nssh-ed25519 K1 a\n" AUTHKEYS_END "\n");
	free(t);

	/* the user's own lines stay as they are, in place; a key they have is not repeated */
	t = authkeys_merge("ssh-rsa MINE me\n" AUTHKEYS_BEGIN "\nssh-ed25519 OLD\n" AUTHKEYS_END
			   "\n# mine\n",
			   keys, 3, &changed);
	assert_true(changed);
	assert_string_equal(t, "ssh-rsa MINE me\n" AUTHKEYS_BEGIN
			       "\nssh-ed25519 K1 a\n" AUTHKEYS_END "\n# mine\n");
	t2 = authkeys_merge(t, keys, 3, &changed);
	assert_false(changed);
	assert_string_equal(t2, t);
	/* no keys any more: our block goes, theirs stays */
	t3 = authkeys_merge(t2, NULL, 0, &changed);
	assert_true(changed);
	assert_string_equal(t3, "ssh-rsa MINE me\n# mine\n");
	free(t);
	free(t2);
	free(t3);
	/* nothing of ours now or before: untouched, even without a final newline */
	t = authkeys_merge("ssh-rsa X", NULL, 0, &changed);
	assert_false(changed);
	assert_string_equal(t, "ssh-rsa X");
	free(t);
	/* a BEGIN without END (not ours to cut): the lines after it are kept */
	t = authkeys_merge(AUTHKEYS_BEGIN "\nssh-rsa KEEP\n", keys, 1, &changed);
	assert_string_equal(t, "ssh-rsa KEEP\n" AUTHKEYS_BEGIN "\nssh-ed25519 K1 a\n" AUTHKEYS_END
			       "\n");
	free(t);
}

static void test_sudoers_render(void **state)
{
	char *rules[] = {"ALL=(ALL) NOPASSWD:ALL", "ALL=(root) /usr/bin/systemctl"};
	char *t = sudoers_render("alice", rules, 2);

	assert_non_null(strstr(t, "\nalice ALL=(ALL) NOPASSWD:ALL\nalice ALL=(root) "
				  "/usr/bin/systemctl\n"));
	assert_true(t[0] == '#');
	free(t);
}

static void test_users_step_root(void **state)
{
	Tuap__StepRequest req = TUAP__STEP_REQUEST__INIT;
	struct scratch s;
	struct step_run *run;
	struct tuap_err err;
	struct stat st;
	struct req q;
	char path[300], *text, cmd[600], visudo[256];
	static const char *files[][2] = {
		{"passwd",
		 "root:x:0:0:root:/root:/bin/bash\nbob:x:1001:1001:Bob:/home/bob:/bin/sh\n"},
		{"group", "root:x:0:\nsudo:x:27:\nbob:x:1001:\nweb:x:1002:bob\ncarol:x:1005:\n"},
		{"shadow", "root:*:19000:0:99999:7:::\nbob:!$6$old:19000:0:99999:7:::\n"},
		{"gshadow", "root:*::\nsudo:*::\nbob:!::\nweb:!::bob\ncarol:!::\n"},
	};

	if (geteuid() != 0 || access("/usr/sbin/useradd", X_OK) != 0)
		skip();
	scratch_init(&s, "steps", true);
	for (size_t i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/etc/%s", s.root, files[i][0]);
		write_text(path, files[i][1]);
	}
	snprintf(cmd, sizeof(cmd), "cp /etc/login.defs %s/etc/ && mkdir -p %s/home/bob/.ssh",
		 s.root, s.root);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/home/bob/.ssh/authorized_keys", s.root);
	write_text(path, "ssh-rsa BOBS-OWN bob\n");
	snprintf(cmd, sizeof(cmd), "chown -R 1001:1001 %s/home/bob", s.root);
	assert_int_equal(system(cmd), 0);
	make_req(&q);
	q.u[1].ssh_authorized_keys = q.alice_keys; /* bob gets alice's key too */
	q.u[1].n_ssh_authorized_keys = 1;
	if (proc_which("visudo", visudo, sizeof(visudo)) < 0)
		q.u[0].n_sudo = 0;
	req.step = TUAP__STEP__STEP_USERS;
	req.args_case = TUAP__STEP_REQUEST__ARGS_USERS;
	req.users = &q.args;
	assert_int_equal(step_start(&s.env, "j1", "site.example", &req, &run, &err), 0);
	assert_true(drive(run, 20000));
	if (!evlog_final_is(&s.log, TUAP__STEP_STATE__STATE_DONE))
		fail_msg("users step: %s", s.log.msg);
	assert_true(evlog_find(&s.log, "$ useradd --root", 0) >= 0);
	assert_true(evlog_find(&s.log, "--password *** bob", 0) >= 0);
	assert_true(evlog_find(&s.log, "$6$new", 0) < 0); /* never logged */
	step_free(run);

	snprintf(path, sizeof(path), "%s/etc/passwd", s.root);
	text = fs_read_file(path, 1 << 20, NULL, NULL);
	assert_non_null(strstr(text, "\nalice:x:"));
	assert_non_null(strstr(text, ":Alice A:/home/alice:/bin/bash\n"));
	/* bob existed before tuap: his shell stays, as cloud-init leaves it */
	assert_non_null(strstr(text, "bob:x:1001:1001:Bob:/home/bob:/bin/sh\n"));
	free(text);
	assert_true(evlog_find(&s.log, "user bob: existed before tuap: shell '/bin/bash'", 0) >= 0);
	snprintf(path, sizeof(path), "%s/etc/shadow", s.root);
	text = fs_read_file(path, 1 << 20, NULL, NULL);
	assert_non_null(strstr(text, "bob:$6$new:"));
	assert_non_null(strstr(text, "alice:!"));
	free(text);
	snprintf(path, sizeof(path), "%s/home/alice/.ssh/authorized_keys", s.root);
	text = fs_read_file(path, 1 << 20, NULL, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "ssh-ed25519 AAAAC3Nza alice@x\n"));
	free(text);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_not_equal(st.st_uid, 0);
	snprintf(path, sizeof(path), "%s/home/alice/.ssh", s.root);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/home/bob/.ssh/authorized_keys", s.root);
	text = fs_read_file(path, 1 << 20, NULL, NULL);
	assert_string_equal(text, "ssh-rsa BOBS-OWN bob\n" AUTHKEYS_BEGIN
				  "\nssh-ed25519 AAAAC3Nza alice@x\n" AUTHKEYS_END "\n");
	free(text);
	if (q.u[0].n_sudo) {
		snprintf(path, sizeof(path), "%s/etc/sudoers.d/90-tuap-alice", s.root);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0440);
	}

	/* a second run (another job) changes nothing */
	evlog_free(&s.log);
	assert_int_equal(step_start(&s.env, "j2", "site.example", &req, &run, &err), 0);
	assert_true(drive(run, 20000));
	assert_int_equal(s.log.final, TUAP__STEP_STATE__STATE_DONE);
	assert_true(evlog_find(&s.log, "nothing to change", 0) >= 0);
	assert_true(evlog_find(&s.log, "$ ", 0) < 0);
	step_free(run);

	/* 14.4: alice changed by hand (her shell), then users.yaml changes her gecos: reported,
	 * left as it is; --force-users applies users.yaml */
	snprintf(cmd, sizeof(cmd), "usermod --root %s --shell /bin/sh alice", s.root);
	assert_int_equal(system(cmd), 0);
	q.u[0].gecos = "Alice B";
	evlog_free(&s.log);
	assert_int_equal(step_start(&s.env, "j2b", "site.example", &req, &run, &err), 0);
	assert_true(drive(run, 20000));
	assert_int_equal(s.log.final, TUAP__STEP_STATE__STATE_DONE);
	assert_true(evlog_find(&s.log,
			       "user alice: changed since tuap's last run (shell '/bin/bash' -> "
			       "'/bin/sh'): left as it is",
			       0) >= 0);
	assert_true(evlog_find(&s.log, "$ usermod", 0) < 0);
	step_free(run);
	q.args.has_force = q.args.force = true;
	evlog_free(&s.log);
	assert_int_equal(step_start(&s.env, "j2c", "site.example", &req, &run, &err), 0);
	assert_true(drive(run, 20000));
	assert_int_equal(s.log.final, TUAP__STEP_STATE__STATE_DONE);
	if (evlog_find(&s.log, "--comment 'Alice B'", 0) < 0)
		evlog_print(&s.log);
	assert_true(evlog_find(&s.log, "--comment 'Alice B'", 0) >= 0);
	assert_true(evlog_find(&s.log, "--shell /bin/bash", 0) >= 0);
	step_free(run);
	q.args.force = false;
	/* what force made is tuap's: the next run without it changes nothing */
	evlog_free(&s.log);
	assert_int_equal(step_start(&s.env, "j2d", "site.example", &req, &run, &err), 0);
	assert_true(drive(run, 20000));
	assert_true(evlog_find(&s.log, "$ usermod", 0) < 0);
	assert_true(evlog_find(&s.log, "changed since", 0) < 0);
	step_free(run);

	/* a sudo rule visudo rejects: nothing is installed, the step fails */
	if (q.u[0].n_sudo) {
		q.alice_sudo[0] = "ALL=(ALL NOPASSWD ALL";
		evlog_free(&s.log);
		assert_int_equal(step_start(&s.env, "j3", "site.example", &req, &run, &err), 0);
		assert_true(drive(run, 20000));
		assert_int_equal(s.log.final, TUAP__STEP_STATE__STATE_FAILED);
		assert_non_null(strstr(s.log.msg, "visudo"));
		step_free(run);
		snprintf(path, sizeof(path), "%s/etc/sudoers.d/90-tuap-alice", s.root);
		text = fs_read_file(path, 1 << 20, NULL, NULL);
		assert_non_null(strstr(text, "alice ALL=(ALL) NOPASSWD:ALL"));
		free(text);
		snprintf(path, sizeof(path), "%s/etc/sudoers.d/.tuap-alice.tmp", s.root);
		assert_false(fs_exists(path));
		q.alice_sudo[0] = "ALL=(ALL) NOPASSWD:ALL";
	}

	/* a home that is not the user's: never handed over (homedir: /root chowned root's .ssh
	 * to the new user once) */
	snprintf(cmd, sizeof(cmd), "chown -R 0:0 %s/home/bob && mkdir -p %s/srv/taken", s.root,
		 s.root);
	assert_int_equal(system(cmd), 0);
	q.args.n_users = 2; /* alice, and bob whose home root now owns */
	evlog_free(&s.log);
	assert_int_equal(step_start(&s.env, "j4", "site.example", &req, &run, &err), 0);
	assert_true(drive(run, 20000));
	assert_int_equal(s.log.final, TUAP__STEP_STATE__STATE_FAILED);
	assert_non_null(strstr(s.log.msg, "home"));
	assert_non_null(strstr(s.log.msg, "belongs to uid 0, not to bob; keys not installed"));
	step_free(run);
	snprintf(path, sizeof(path), "%s/home/bob/.ssh", s.root);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 0);

	q.u[2].name = "dave"; /* new, and its home exists: refused before useradd runs */
	q.u[2].homedir = "/srv/taken";
	q.up[0] = &q.u[2];
	q.args.n_users = 1;
	evlog_free(&s.log);
	const char *why = err.msg;
	if (step_start(&s.env, "j5", "site.example", &req, &run, &err) == 0) {
		assert_true(drive(run, 20000));
		assert_int_equal(s.log.final, TUAP__STEP_STATE__STATE_FAILED);
		why = s.log.msg;
		step_free(run);
	}
	assert_non_null(strstr(why, "user dave: home /srv/taken already exists and belongs to "
				    "uid 0; a new user does not take over another's directory"));
	snprintf(path, sizeof(path), "%s/etc/passwd", s.root);
	text = fs_read_file(path, 1 << 20, NULL, NULL);
	assert_null(strstr(text, "dave:"));
	free(text);
	scratch_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_users_plan),
		cmocka_unit_test(test_users_plan_root_and_system),
		cmocka_unit_test(test_users_plan_cloudinit_keys),
		cmocka_unit_test(test_block_replace),
		cmocka_unit_test(test_users_validation),
		cmocka_unit_test(test_authkeys_merge),
		cmocka_unit_test(test_sudoers_render),
		cmocka_unit_test(test_users_step_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
