/* Unit tests for users.yaml (common/users.c): every key, both top-level forms, upstream's
 * example verbatim, YAML 1.1 booleans, exact diagnostics, bounds (aliases, nesting, sizes),
 * and the corpus tests/data/bad/users/NAME.yaml with NAME.expect. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "corpus_util.h"
#include "fsutil.h"
#include "users.h"

#define ED25519 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFt9jV1jCmuEBYLoV30RDdCDjshpGW2bmDoXqgOeg3P1"
#define ECDSA                                                                                      \
	"ecdsa-sha2-nistp256 "                                                                     \
	"AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEWiW/"                               \
	"TG58adBtskH6iBrkP/eQi55N3GOalgJf2jMvspYi0YkH5C0iCTgFaMsVIwUr7uidz4COQSzY8uA6/BBUg="
#define RSA                                                                                        \
	"ssh-rsa "                                                                                 \
	"AAAAB3NzaC1yc2EAAAADAQABAAABAQDFfL/CfW7+tGclnZDxehXBX4mEKMIoyL00I6W8sKOJimbAFKro9DO8uv+"  \
	"Wpi2hM6Tc30ol3VeYqu28QvbSnZuidQO08CxAgOqNLmlclUsXNQwdTcNNr1OpjV35w5LrAvup+frMVgYN/"       \
	"kXpUusfQPATX2AVbv60I6MfktHg5K7WAfFHuGzAOd02esC7kYUsfKNb467Q63nzPdYNDHlF4O7Y2XfJKaOdYOukz" \
	"32mFy5xYxIlaYpewwW7yO/NuKZcX7iL0cqtB0ujlr6/7X0wDcLyL50jhreO1gH8tw0qZ0Cp4WhdH+m1C7UcR2VI8" \
	"TGeJlGj/AOokdeiUjJ3IdMtomHX"

/* Parses text as "users.yaml"; returns the printed diagnostics (caller frees). */
static char *parse(const char *text, size_t len, struct users *u, int *rc)
{
	struct diags d;
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);

	assert_non_null(f);
	diags_init(&d);
	*rc = users_parse("users.yaml", text, len, u, &d);
	diags_print(&d, f);
	fclose(f);
	/* the return value and the diagnostics agree */
	assert_int_equal(*rc == 0, d.errors == 0);
	diags_free(&d);
	return out;
}

static void expect_ok(const char *text, struct users *u)
{
	int rc;
	char *out = parse(text, strlen(text), u, &rc);

	if (rc != 0)
		print_error("unexpected diagnostics:\n%s", out);
	assert_int_equal(rc, 0);
	assert_string_equal(out, "");
	free(out);
}

static void expect_errors(const char *text, const char *want)
{
	struct users u;
	int rc;
	char *out = parse(text, strlen(text), &u, &rc);

	assert_int_equal(rc, -1);
	assert_string_equal(out, want);
	/* on failure nothing is handed out */
	assert_int_equal(u.n, 0);
	assert_null(u.v);
	free(out);
}

static char *src_path(const char *rel)
{
	const char *src = getenv("TUAP_SRC");
	struct buf b = BUF_INIT;

	assert_non_null(src);
	buf_addf(&b, "%s/%s", src, rel);
	return buf_detach(&b, NULL);
}

static void test_upstream_example(void **state)
{
	char *path = src_path("tests/data/upstream/users.yaml");
	struct users u;
	struct diags d;
	const struct user *t;

	diags_init(&d);
	assert_int_equal(users_load(path, &u, &d), 0);
	assert_int_equal(d.n, 0);
	assert_int_equal(u.n, 1);
	t = &u.v[0];
	assert_false(t->is_default);
	assert_string_equal(t->name, "teodesian");
	assert_string_equal(t->gecos, "George S. Baugh");
	assert_string_equal(t->shell, "/bin/bash");
	assert_int_equal(t->ssh_import_id.n, 1);
	assert_string_equal(t->ssh_import_id.v[0], "gh:teodesian");
	assert_int_equal(t->sudo, SUDO_RULES);
	assert_int_equal(t->sudo_rules.n, 1);
	assert_string_equal(t->sudo_rules.v[0], "ALL=(ALL) NOPASSWD:ALL");
	assert_int_equal(t->line, 3);
	/* unset keys keep their "unset" values */
	assert_null(t->passwd);
	assert_null(t->homedir);
	assert_int_equal(t->uid, -1);
	assert_int_equal(t->lock_passwd, TRI_UNSET);
	assert_int_equal(t->groups.n, 0);
	users_free(&u);
	diags_free(&d);
	free(path);
}

/* cloud-init's own example (Debian's cloud-init 22.4, doc/examples/cloud-config-user-groups.txt,
 * copied unchanged): valid, with the warnings cloud-init itself would give. */
static void test_cloudinit_example(void **state)
{
	char *path = src_path("tests/data/upstream/cloud-config-user-groups.txt");
	struct users u;
	struct diags d;

	diags_init(&d);
	if (users_load(path, &u, &d) < 0) {
		diags_print(&d, stderr);
		fail_msg("cloud-init's example is refused");
	}
	assert_int_equal(d.errors, 0);
	assert_int_equal(u.n_groups, 2);
	assert_string_equal(u.groups[0].name, "admingroup");
	assert_int_equal(u.n, 7);
	assert_true(u.v[0].is_default);
	assert_string_equal(u.v[1].name, "foobar");
	assert_string_equal(u.v[1].selinux_user, "staff_u");
	assert_string_equal(u.v[1].expiredate, "2032-09-01");
	assert_string_equal(u.v[3].inactive, "5");
	assert_string_equal(u.v[5].snapuser, "joe@joeuser.io");
	assert_true(u.v[6].ssh_redirect_user);
	users_free(&u);
	diags_free(&d);
	free(path);
}

static void test_all_keys(void **state)
{
	const char *text =
		"# every key, in the top-level-list form\n"
		"- default\n"
		"- name: alice\n"
		"  gecos: Alice Example, room 4\n"
		"  groups: [adm, sudo, www-data]\n"
		"  primary_group: staff\n"
		"  sudo: [\"ALL=(ALL) ALL\", \"ALL=(root) NOPASSWD: /usr/bin/make\"]\n"
		"  shell: /bin/zsh\n"
		"  ssh_authorized_keys:\n"
		"    - " ED25519 " alice@laptop\n"
		"    - '" RSA "'\n"
		"    - 'from=\"10.0.0.1\",no-pty,command=\"echo hi there\" " ECDSA " x'\n"
		"  ssh_import_id: [gh:Alice-X, lp:alice.x, alice+1]\n"
		"  lock_passwd: false\n"
		"  passwd: $6$rounds=5000$saltsalt$abcdefghijklmnop./ABC\n"
		"  homedir: /srv/alice\n"
		"  uid: 2147483646\n"
		"  system: true\n"
		"  no_create_home: yes\n"
		"- name: _svc$\n"
		"  groups: adm , sudo,users\n"
		"  sudo: null\n"
		"  ssh_import_id: gh:bob\n"
		"  hashed_passwd: $y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC."
		"ttTqtqVGF/fDg\n"
		"  uid: 0\n"
		"- name: carol\n"
		"  sudo: ALL=(ALL) NOPASSWD:ALL\n"
		"  lock_passwd: On\n"
		"- name: dave\n"
		"  sudo: ~\n";
	struct users u;
	const struct user *a, *s;

	expect_ok(text, &u);
	assert_int_equal(u.n, 5);
	assert_true(u.v[0].is_default);
	assert_null(u.v[0].name);
	assert_int_equal(u.v[0].line, 2);

	a = &u.v[1];
	assert_int_equal(a->line, 3);
	assert_string_equal(a->name, "alice");
	assert_string_equal(a->gecos, "Alice Example, room 4");
	assert_int_equal(a->groups.n, 3);
	assert_string_equal(a->groups.v[2], "www-data");
	assert_string_equal(a->primary_group, "staff");
	assert_int_equal(a->sudo, SUDO_RULES);
	assert_int_equal(a->sudo_rules.n, 2);
	assert_string_equal(a->sudo_rules.v[1], "ALL=(root) NOPASSWD: /usr/bin/make");
	assert_string_equal(a->shell, "/bin/zsh");
	assert_int_equal(a->ssh_authorized_keys.n, 3);
	assert_string_equal(a->ssh_authorized_keys.v[0], ED25519 " alice@laptop");
	assert_string_equal(a->ssh_authorized_keys.v[1], RSA);
	assert_int_equal(a->ssh_import_id.n, 3);
	assert_string_equal(a->ssh_import_id.v[0], "gh:Alice-X");
	assert_string_equal(a->ssh_import_id.v[2], "alice+1"); /* kept as given: lp: */
	assert_int_equal(a->lock_passwd, TRI_FALSE);
	assert_string_equal(a->passwd, "$6$rounds=5000$saltsalt$abcdefghijklmnop./ABC");
	assert_null(a->hashed_passwd);
	assert_string_equal(a->homedir, "/srv/alice");
	assert_int_equal(a->uid, 2147483646L);
	assert_true(a->system);
	assert_true(a->no_create_home);

	s = &u.v[2];
	assert_string_equal(s->name, "_svc$");
	assert_int_equal(s->groups.n, 3);
	assert_string_equal(s->groups.v[0], "adm");
	assert_string_equal(s->groups.v[1], "sudo");
	assert_string_equal(s->groups.v[2], "users");
	assert_int_equal(s->sudo, SUDO_NONE);
	assert_int_equal(s->sudo_rules.n, 0);
	assert_int_equal(s->ssh_import_id.n, 1);
	assert_string_equal(s->ssh_import_id.v[0], "gh:bob");
	assert_non_null(s->hashed_passwd);
	assert_int_equal(s->uid, 0);
	assert_false(s->system);
	assert_int_equal(s->lock_passwd, TRI_UNSET);

	assert_int_equal(u.v[3].sudo, SUDO_RULES);
	assert_string_equal(u.v[3].sudo_rules.v[0], "ALL=(ALL) NOPASSWD:ALL");
	assert_int_equal(u.v[3].lock_passwd, TRI_TRUE);
	assert_int_equal(u.v[3].sudo, SUDO_RULES);
	assert_int_equal(u.v[4].sudo, SUDO_NONE);
	users_free(&u);
	assert_int_equal(u.n, 0);
}

static void test_mapping_form_and_empty_list(void **state)
{
	struct users u;

	expect_ok("users:\n  - name: a\n  - default\n", &u);
	assert_int_equal(u.n, 2);
	assert_string_equal(u.v[0].name, "a");
	assert_true(u.v[1].is_default);
	users_free(&u);

	expect_ok("users: []\n", &u);
	assert_int_equal(u.n, 0);
	users_free(&u);

	expect_ok("{users: [{name: x, groups: adm}]}", &u);
	assert_int_equal(u.n, 1);
	assert_string_equal(u.v[0].groups.v[0], "adm");
	users_free(&u);
}

static void test_booleans(void **state)
{
	static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes",
					  "YES",  "on",	  "On",	  "ON"};
	static const char *const no[] = {"false", "False", "FALSE", "no", "No",
					 "NO",	  "off",   "Off",   "OFF"};
	char text[256];
	struct users u;

	for (size_t i = 0; i < 9; i++) {
		snprintf(text, sizeof(text),
			 "- name: a\n  lock_passwd: %s\n  system: %s\n  no_create_home: %s\n",
			 yes[i], no[i], yes[i]);
		expect_ok(text, &u);
		assert_int_equal(u.v[0].lock_passwd, TRI_TRUE);
		assert_false(u.v[0].system);
		assert_true(u.v[0].no_create_home);
		users_free(&u);
	}
	/* not YAML 1.1 booleans (PyYAML reads them as strings), and quoted ones */
	expect_errors("- name: a\n  system: y\n  lock_passwd: \"true\"\n  no_create_home: 1\n",
		      "users.yaml:2: users[0].system: expected true or false, got 'y'\n"
		      "users.yaml:3: users[0].lock_passwd: expected true or false, got 'true'\n"
		      "users.yaml:4: users[0].no_create_home: expected true or false, got '1'\n");
	/* a quoted "yes" is text, and !!str makes a plain one text too */
	expect_ok("- name: a\n  gecos: 'yes'\n  homedir: !!str /x\n", &u);
	assert_string_equal(u.v[0].gecos, "yes");
	users_free(&u);
}

static void test_errors_all_reported_in_order(void **state)
{
	expect_errors(
		"users:\n"
		"  - name: alice\n"
		"    uid: -1\n"
		"    shell: /bin/sh\n"
		"    colour: blue\n"
		"  - name: Bob\n"
		"    groups: [adm, 'x y']\n"
		"    ssh_import_id: [gh:bob, 'gh:']\n"
		"  - name: alice\n"
		"    system: 2\n"
		"  - sudo: [ALL, [nested]]\n",
		"users.yaml:3: users[0].uid: expected a decimal number 0..2147483646, got '-1'\n"
		"users.yaml:5: users[0].colour: unknown key (cloud-init's users schema has no "
		"such key)\n"
		"users.yaml:6: users[1].name: it must start with a lower-case letter or '_'\n"
		"users.yaml:7: users[1].groups[1]: it holds a space (only a-z, 0-9, '_', '-' and a "
		"final '$')\n"
		"users.yaml:8: users[1].ssh_import_id[1]: no user name after the service\n"
		"users.yaml:9: users[2].name: duplicate user 'alice' (first as users[0], line 2)\n"
		"users.yaml:10: users[2].system: expected true or false, got '2'\n"
		"users.yaml:11: users[3].sudo[0]: it has no '=' (a rule is HOSTS=(RUNAS) COMMANDS, "
		"as "
		"in ALL=(ALL) NOPASSWD:ALL)\n"
		"users.yaml:11: users[3].sudo[1]: expected a string, got a list\n"
		"users.yaml:11: users[3].name: missing (every user entry needs a name or a "
		"snapuser, or use 'default')\n");
}

static void test_passwords(void **state)
{
	static const char *const good[] = {
		"$6$salt$hash",
		"$1$abc$def",
		"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
		"$5$rounds=1000$salt$hash",
		"$y$j9T$salt$hash",
		"$sha1$40000$salt$hash"};
	static const char *const bad[] = {"hunter2",	   "$6$",	  "$6$salt",
					  "$6$salt$",	   "6$salt$hash", "$$salt$hash",
					  "$6$sa lt$hash", "$6$salt$h;sh"};
	char text[256];
	struct users u;
	int rc;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "- name: a\n  passwd: '%s'\n", good[i]);
		expect_ok(text, &u);
		assert_string_equal(u.v[0].passwd, good[i]);
		users_free(&u);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *out;

		snprintf(text, sizeof(text), "- name: a\n  hashed_passwd: '%s'\n", bad[i]);
		out = parse(text, strlen(text), &u, &rc);
		assert_int_equal(rc, -1);
		assert_string_equal(out,
				    "users.yaml:2: users[0].hashed_passwd: not a crypt(3) hash "
				    "such as $6$salt$hash (tuap never puts plaintext passwords "
				    "in a guest; make one with mkpasswd -m sha-512)\n");
		free(out);
	}
	/* both: cloud-init sets passwd at creation, then hashed_passwd; so does tuap */
	expect_ok("- name: a\n  passwd: $6$salt$hash\n  hashed_passwd: $6$salt$other\n", &u);
	users_free(&u);
}

/* Every key of cloud-init 22.4's users schema that test_all_keys does not have, the forms it
 * deprecates (accepted, with a warning naming the replacement) and its exclusions. */
static void test_cloudinit_keys(void **state)
{
	const char *text = "users:\n"
			   "  - name: web\n"
			   "    no_user_group: true\n"
			   "    no_log_init: true\n"
			   "    create_groups: false\n"
			   "    expiredate: '2032-09-01'\n"
			   "    inactive: '5'\n"
			   "    selinux_user: staff_u\n"
			   "    plain_text_passwd: hunter2\n"
			   "    doas: ['permit nopass web as root']\n"
			   "    uid: '1234'\n"
			   "    groups: {adm: null, www-data: ~}\n"
			   "    lock-passwd: false\n"
			   "    sudo: false\n"
			   "  - snapuser: joe@example.org\n"
			   "  - name: nosshlogins\n"
			   "    ssh_redirect_user: true\n"
			   "  - bob, carol\n";
	const char *warnings =
		"users.yaml:9: users[0].plain_text_passwd: warning: a plain-text password in "
		"users.yaml: tuapd hashes it (as chpasswd would) so that it never reaches the "
		"guest, but "
		"anyone who reads this file has it; prefer hashed_passwd (mkpasswd -m sha-512) or "
		"ssh keys\n"
		"users.yaml:11: users[0].uid: warning: a uid given as a string is deprecated "
		"(cloud-init: dropped after April 2027); write the number unquoted\n"
		"users.yaml:12: users[0].groups: warning: a mapping of groups is deprecated "
		"(cloud-init: dropped after April 2027); write a list or a comma-separated string\n"
		"users.yaml:13: users[0].lock-passwd: warning: lock-passwd is deprecated "
		"(cloud-init: dropped after April 2027); write lock_passwd\n"
		"users.yaml:14: users[0].sudo: warning: sudo: false is deprecated (cloud-init: "
		"dropped after April 2027); write null or leave sudo out\n"
		"users.yaml:17: users[2].ssh_redirect_user: warning: no effect: it redirects the "
		"cloud's metadata keys, and a tuap site has none (cloud-init says the same and "
		"does "
		"nothing)\n";
	struct users u;
	const struct user *w;
	int rc;
	char *out = parse(text, strlen(text), &u, &rc);

	assert_int_equal(rc, 0);
	assert_string_equal(out, warnings);
	free(out);
	assert_int_equal(u.n, 5);
	w = &u.v[0];
	assert_true(w->no_user_group);
	assert_true(w->no_log_init);
	assert_int_equal(w->create_groups, TRI_FALSE);
	assert_string_equal(w->expiredate, "2032-09-01");
	assert_string_equal(w->inactive, "5");
	assert_string_equal(w->selinux_user, "staff_u");
	assert_string_equal(w->plain_text_passwd, "hunter2");
	assert_int_equal(w->doas.n, 1);
	assert_int_equal(w->uid, 1234);
	assert_int_equal(w->groups.n, 2);
	assert_string_equal(w->groups.v[1], "www-data");
	assert_int_equal(w->lock_passwd, TRI_FALSE);
	assert_int_equal(w->sudo, SUDO_NONE);
	assert_null(u.v[1].name);
	assert_string_equal(u.v[1].snapuser, "joe@example.org");
	assert_true(u.v[2].ssh_redirect_user);
	assert_string_equal(u.v[3].name, "bob");
	assert_string_equal(u.v[4].name, "carol");
	assert_int_equal(u.v[4].create_groups, TRI_UNSET);
	users_free(&u);

	/* a names entry of several users, then more entries (fuzz_users found the array sized
	 * for the names only: the next entry was written past its end) */
	expect_ok("users:\n  - a1, b1, c1\n  - name: d1\n  - name: e1\n  - f1\n", &u);
	assert_int_equal(u.n, 6);
	assert_string_equal(u.v[2].name, "c1");
	assert_string_equal(u.v[4].name, "e1");
	users_free(&u);

	/* a names entry with a bad name after good ones: refused, nothing leaks (fuzz_users) */
	expect_errors("users:\n  - a1, [b\n",
		      "users.yaml:2: users[0][1]: it must start with a lower-case letter or '_'\n");

	/* unquoted dates and numbers: YAML makes them no strings, cloud-init ignores them */
	out = parse("- name: a\n  expiredate: 2032-09-01\n  inactive: 5\n", 35 + 13, &u, &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "users.yaml:2: users[0].expiredate: warning: unquoted"));
	assert_non_null(strstr(out, "users.yaml:3: users[0].inactive: warning: unquoted"));
	assert_string_equal(u.v[0].expiredate, "2032-09-01");
	free(out);
	users_free(&u);
}

/* The top level of a #cloud-config: groups (every form cloud-init normalises) and `user:`,
 * the default user over Debian's cloud.cfg. */
static void test_groups_and_singular(void **state)
{
	const char *text = "groups:\n"
			   "  - admingroup: [root, sys]\n"
			   "  - cloud-users\n"
			   "  - ops: 'alice, bob'\n"
			   "user: alice\n"
			   "users:\n"
			   "  - default\n"
			   "  - name: bob\n";
	struct users u;
	int rc;
	char *out = parse(text, strlen(text), &u, &rc);

	assert_int_equal(rc, 0);
	assert_string_equal(out, "users.yaml:5: user: warning: 'user' as a string is deprecated "
				 "(cloud-init); write 'users:' with a list\n");
	free(out);
	assert_int_equal(u.n_groups, 3);
	assert_string_equal(u.groups[0].name, "admingroup");
	assert_int_equal(u.groups[0].members.n, 2);
	assert_string_equal(u.groups[0].members.v[1], "sys");
	assert_int_equal(u.groups[1].members.n, 0);
	assert_string_equal(u.groups[2].members.v[1], "bob");
	/* alice is the default user; `default` means her, not the image's */
	assert_true(u.singular);
	assert_int_equal(u.n, 2);
	assert_string_equal(u.v[0].name, "alice");
	assert_string_equal(u.v[0].gecos, "Debian");
	assert_string_equal(u.v[0].shell, "/bin/bash");
	assert_int_equal(u.v[0].groups.n, 10);
	assert_string_equal(u.v[0].groups.v[0], "adm");
	assert_string_equal(u.v[0].sudo_rules.v[0], "ALL=(ALL) NOPASSWD:ALL");
	assert_string_equal(u.v[1].name, "bob");
	users_free(&u);

	/* only groups: valid; cloud-init's shipped example (snapuser and all) too */
	expect_ok("groups: [admin]\n", &u);
	assert_int_equal(u.n, 0);
	assert_int_equal(u.n_groups, 1);
	users_free(&u);
}

static void test_ssh_keys(void **state)
{
	expect_errors(
		"- name: a\n"
		"  ssh_authorized_keys:\n"
		"    - ssh-ed25519\n"
		"    - ssh-ed25519 AAAA\n"
		"    - ssh-ed25519 " /* rsa body */
		"AAAAB3NzaC1yc2EAAAADAQABAAABAQDFfL/CfW7+tGclnZDxehXBX4mEKMIoyL00I6W8sKOJ\n"
		"    - \"" ED25519 "\\n" ED25519 "\"\n"
		"    - ssh-foo AAAAC3NzaC1lZDI1NTE5AAAAIFt9jV1jCmuEBYLoV30RDdCDjshpGW2bmDoXqg\n"
		"    - 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFt9jV1jCmuEBYLoV30RDdCDjshpGW2b!!'\n",
		"users.yaml:3: users[0].ssh_authorized_keys[0]: the base64 key body of this "
		"ssh-ed25519 key is not valid\n"
		"users.yaml:4: users[0].ssh_authorized_keys[1]: the base64 key body of this "
		"ssh-ed25519 key is not valid\n"
		"users.yaml:5: users[0].ssh_authorized_keys[2]: the base64 key body of this "
		"ssh-ed25519 key is not valid\n"
		"users.yaml:6: users[0].ssh_authorized_keys[3]: contains a newline (one value "
		"per line)\n"
		"users.yaml:7: users[0].ssh_authorized_keys[4]: not an OpenSSH public key "
		"(expected 'ssh-ed25519 AAAA...' or another known key type)\n"
		"users.yaml:8: users[0].ssh_authorized_keys[5]: the base64 key body of this "
		"ssh-ed25519 key is not valid\n");
}

static void test_aliases_bounded(void **state)
{
	struct users u;
	struct buf b = BUF_INIT;
	char *out;
	int rc;

	/* a few aliases are fine, and name the same list */
	expect_ok("users:\n"
		  "  - name: a\n"
		  "    groups: &admins [adm, sudo]\n"
		  "    shell: &sh /bin/bash\n"
		  "  - name: b\n"
		  "    groups: *admins\n"
		  "    shell: *sh\n",
		  &u);
	assert_int_equal(u.v[1].groups.n, 2);
	assert_string_equal(u.v[1].groups.v[1], "sudo");
	assert_string_equal(u.v[1].shell, "/bin/bash");
	users_free(&u);

	/* billion laughs within the alias count: 2^22 nodes from 2 aliases per level; the
	 * mapping of user u16 (ending where u17 starts) is the first node over the bound */
	buf_adds(&b, "users:\n  - name: a\n    groups: &a0 [lol, lol]\n");
	for (int i = 1; i <= 20; i++)
		buf_addf(&b, "  - name: u%d\n    groups: &a%d [*a%d, *a%d]\n", i, i, i - 1, i - 1);
	out = parse(b.s, b.len, &u, &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(out, "users.yaml:36: aliases expand to too large a document\n");
	free(out);
	buf_free(&b);

	/* the classic document, 9 aliases per level: f (line 6) would be 597871 nodes */
	buf_adds(&b, "a: &a "
		     "[\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
	for (char c = 'b'; c <= 'i'; c++)
		buf_addf(&b, "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", c, c, c - 1, c - 1,
			 c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
	out = parse(b.s, b.len, &u, &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(out, "users.yaml:6: aliases expand to too large a document\n");
	free(out);
	buf_free(&b);

	/* many cheap aliases: the alias count stops them (the 65th is on line 67) */
	buf_adds(&b, "- name: a\n  shell: &s /bin/sh\n");
	for (int i = 0; i < 65; i++)
		buf_addf(&b, "- {name: u%d, shell: *s}\n", i);
	out = parse(b.s, b.len, &u, &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(out, "users.yaml:67: more than 64 YAML aliases\n");
	free(out);
	buf_free(&b);

	expect_errors("&x [*x]\n",
		      "users.yaml:1: recursive alias (an alias inside the node it names)\n");
}

static void test_nesting_and_sizes(void **state)
{
	struct buf b = BUF_INIT;
	struct users u;
	char *out;
	int rc;

	/* depth 8 is the limit: users(1) list(2) user(3) groups(4) + 4 more is fine... */
	expect_errors("users:\n  - name: a\n    groups: [[[[x]]]]\n",
		      "users.yaml:3: users[0].groups[0]: expected a string, got a list\n");
	/* ...one more is not; a deep document stops at the first level too deep */
	for (int i = 0; i < 100000; i++)
		buf_adds(&b, "[");
	out = parse(b.s, b.len, &u, &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(out, "users.yaml:1: YAML nesting deeper than 8 levels\n");
	free(out);
	buf_free(&b);

	/* USERS_MAX users */
	for (int i = 0; i < USERS_MAX; i++)
		buf_addf(&b, "- name: u%d\n", i);
	out = parse(b.s, b.len, &u, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(u.n, USERS_MAX);
	users_free(&u);
	free(out);
	buf_adds(&b, "- name: one-too-many\n");
	out = parse(b.s, b.len, &u, &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(out, "users.yaml:1: users: more than 256 users\n");
	free(out);
	buf_free(&b);

	/* USERS_MAX_LIST items per list, in both list forms */
	buf_adds(&b, "- name: a\n  groups: [");
	for (int i = 0; i < USERS_MAX_LIST; i++)
		buf_addf(&b, "%sg%d", i ? ", " : "", i);
	buf_adds(&b, "]\n");
	out = parse(b.s, b.len, &u, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(u.v[0].groups.n, USERS_MAX_LIST);
	users_free(&u);
	free(out);
	buf_reset(&b);
	buf_adds(&b, "- name: a\n  groups: g0");
	for (int i = 1; i <= USERS_MAX_LIST; i++)
		buf_addf(&b, ",g%d", i);
	buf_adds(&b, "\n");
	out = parse(b.s, b.len, &u, &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(out, "users.yaml:2: users[0].groups: more than 256 items\n");
	free(out);
	buf_free(&b);

	/* input size */
	{
		size_t n = (1u << 20) + 1;
		char *big = malloc(n);

		assert_non_null(big);
		memset(big, '#', n);
		out = parse(big, n, &u, &rc);
		assert_int_equal(rc, -1);
		assert_string_equal(out, "users.yaml: larger than 1 MiB (1048577 bytes)\n");
		free(out);
		free(big);
	}
}

static void test_load_errors(void **state)
{
	struct users u;
	struct diags d;
	char buf[512];

	diags_init(&d);
	assert_int_equal(users_load("/nonexistent/users.yaml", &u, &d), -1);
	assert_int_equal(d.n, 1);
	assert_string_equal(err_str(&d.v[0].e, buf, sizeof(buf)),
			    "/nonexistent/users.yaml: No such file or directory");
	diags_free(&d);
}

/* Every tests/data/bad/users/NAME.yaml fails with exactly the lines of NAME.expect. */
static void test_bad_corpus(void **state)
{
	char *dir = src_path("tests/data/bad/users");
	DIR *dh = opendir(dir);
	struct dirent *de;
	int cases = 0, failed = 0;

	assert_non_null(dh);
	while ((de = readdir(dh))) {
		char *text, *want, *out;
		size_t len, wlen;
		struct users u;
		int rc;

		if (!corpus_is_input(de->d_name, ".yaml"))
			continue;
		text = corpus_read(dir, de->d_name, ".yaml", &len);
		want = corpus_read(dir, de->d_name, ".expect", &wlen);
		out = parse(text, len, &u, &rc);
		if (rc != -1 || strcmp(out, want) != 0) {
			print_error("%s:\nwant: %sgot:  %s", de->d_name, want, out);
			failed++;
		}
		assert_true(wlen > 0);
		cases++;
		free(out);
		free(want);
		free(text);
	}
	closedir(dh);
	free(dir);
	assert_int_equal(failed, 0);
	assert_true(cases >= 15);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_upstream_example),
		cmocka_unit_test(test_cloudinit_example),
		cmocka_unit_test(test_all_keys),
		cmocka_unit_test(test_mapping_form_and_empty_list),
		cmocka_unit_test(test_booleans),
		cmocka_unit_test(test_errors_all_reported_in_order),
		cmocka_unit_test(test_passwords),
		cmocka_unit_test(test_cloudinit_keys),
		cmocka_unit_test(test_groups_and_singular),
		cmocka_unit_test(test_ssh_keys),
		cmocka_unit_test(test_aliases_bounded),
		cmocka_unit_test(test_nesting_and_sizes),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_bad_corpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
