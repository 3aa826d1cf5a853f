/*
 * push (controller/push.h) without a network: remote-command quoting checked by a real sh, the
 * ssh command line, ssh's error messages, the payload tar, depends_on resolution through a real
 * engine, and the provider's stages driven by a fake ssh client (a shell script that records
 * what it was asked and answers like sudo, ssh or the installer would), including the push
 * deadline. tests/integration/test_push.sh does it for real against sshd.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "job.h"
#include "keys.h"
#include "push.h"

#define MAX_SEEN 256

static struct {
	char dir[64], state[128], pool[128], ssh_dir[128], client[128], log[128];
	Tuap__CtlEvent *ctl[MAX_SEEN];
	size_t n_ctl;
} F;

static int fake_agent_send(void *ctx, const char *domain, Tuap__Envelope *env)
{
	return -1; /* no agent: jobs wait for a hello */
}

static int fake_ctl_send(void *ctx, const struct ctl_peer *peer, const Tuap__CtlEvent *ev)
{
	static uint8_t buf[1 << 20];
	size_t n;

	if (F.n_ctl == MAX_SEEN)
		return 0;
	n = tuap__ctl_event__pack(ev, buf);
	F.ctl[F.n_ctl++] = tuap__ctl_event__unpack(NULL, n, buf);
	return 0;
}

static int fake_allow(void *ctx, const char *domain, const char *key)
{
	return 0;
}

static void forget(void)
{
	for (size_t i = 0; i < F.n_ctl; i++)
		tuap__ctl_event__free_unpacked(F.ctl[i], NULL);
	F.n_ctl = 0;
}

/* Every message of the phase events seen so far, joined (for strstr). */
static char *phase_text(void)
{
	static char out[1 << 16];
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < F.n_ctl; i++) {
		const Tuap__CtlEvent *ev = F.ctl[i];

		if (ev->ev_case != TUAP__CTL_EVENT__EV_PHASE)
			continue;
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s %d %s\n", ev->phase->phase,
				      ev->phase->state,
				      ev->phase->message ? ev->phase->message : "");
		for (size_t j = 0; j < ev->phase->n_lines && n < sizeof(out); j++)
			n += (size_t)snprintf(out + n, sizeof(out) - n, "  | %s\n",
					      ev->phase->lines[j]);
		if (n >= sizeof(out))
			break;
	}
	return out;
}

static struct engine *new_engine(void)
{
	static char pub[KEYS_Z85_SIZE], sec[KEYS_Z85_SIZE];
	struct engine_conf c = {.state_dir = F.state, .pool_root = F.pool};
	struct engine_io io = {fake_agent_send, fake_ctl_send, fake_allow, NULL};
	struct tuap_err err;
	struct engine *e;

	assert_int_equal(keys_keypair(pub, sec, &err), 0);
	c.server_public_key = pub;
	e = engine_new(&c, &io, &err);

	assert_non_null(e);
	return e;
}

static const struct ctl_peer peer = {{'c', 't', 'l'}, 3};

static void provision(struct engine *e, const char *domain, const char *conf, bool existing)
{
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__ProvisionRequest p = TUAP__PROVISION_REQUEST__INIT;
	char path[300];

	snprintf(path, sizeof(path), "%s/provision.conf", domain);
	p.domain = (char *)domain;
	p.conf_path = path;
	p.conf_text.data = (uint8_t *)conf;
	p.conf_text.len = strlen(conf);
	p.has_existing = 1;
	p.existing = existing;
	r.req_case = TUAP__CTL_REQUEST__REQ_PROVISION;
	r.provision = &p;
	engine_ctl_request(e, &peer, &r);
}

static void hello(struct engine *e, const char *domain)
{
	Tuap__Envelope env = TUAP__ENVELOPE__INIT;
	Tuap__Hello h = TUAP__HELLO__INIT;

	h.agent_version = "0.1.0";
	h.hostname = "host";
	env.body_case = TUAP__ENVELOPE__BODY_HELLO;
	env.hello = &h;
	engine_agent_message(e, domain, &env);
}

static int setup(void **state)
{
	char cmd[512];

	memset(&F, 0, sizeof(F));
	snprintf(F.dir, sizeof(F.dir), "/tmp/tuap-push-XXXXXX");
	assert_non_null(mkdtemp(F.dir));
	snprintf(F.state, sizeof(F.state), "%s/state", F.dir);
	snprintf(F.pool, sizeof(F.pool), "%s/vms", F.dir);
	snprintf(F.ssh_dir, sizeof(F.ssh_dir), "%s/state/ssh", F.dir);
	snprintf(F.client, sizeof(F.client), "%s/bin/ssh", F.dir);
	snprintf(F.log, sizeof(F.log), "%s/ssh.log", F.dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/bin && ln -s /usr/bin/ssh-keygen %s/bin/ssh-keygen",
		 F.dir, F.dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	forget();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", F.dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* ---- quoting ---- */

/* The remote command, parsed back by a real sh, gives exactly the words it was made of. */
static void test_remote_command_round_trip(void **state)
{
	const char *argv[] = {"sudo", "it's", "a b",  "$(touch /tmp/tuap-pwned)",
			      "`id`", "'",    "\"\\", "x;y|z&",
			      "*",    "",     "\n",   "!",
			      "~root"};
	size_t n = sizeof(argv) / sizeof(argv[0]);
	struct buf cmd = BUF_INIT, sh = BUF_INIT;
	char out[1024];
	size_t len;
	FILE *f;

	push_remote_command(&cmd, argv, n);
	/* sh -c 'printf "%s\0" WORDS' prints each word NUL-terminated */
	buf_adds(&sh, "printf '%s\\0' ");
	buf_adds(&sh, cmd.s);
	{
		struct buf full = BUF_INIT;

		buf_adds(&full, "/bin/sh -c ");
		push_shell_quote(&full, sh.s);
		f = popen(full.s, "r");
		buf_free(&full);
	}
	assert_non_null(f);
	len = fread(out, 1, sizeof(out), f);
	assert_int_equal(pclose(f), 0);
	for (size_t i = 0, off = 0; i < n; i++) {
		assert_true(off < len);
		assert_string_equal(out + off, argv[i]);
		off += strlen(argv[i]) + 1;
	}
	assert_false(fs_exists("/tmp/tuap-pwned"));
	assert_string_equal(cmd.s, "'sudo' 'it'\\''s' 'a b' '$(touch /tmp/tuap-pwned)' '`id`' "
				   "''\\''' '\"\\' 'x;y|z&' '*' '' '\n' '!' '~root'");
	buf_free(&cmd);
	buf_free(&sh);
}

/* ---- the ssh command line ---- */

static bool has_arg(const struct strlist *a, const char *s)
{
	for (size_t i = 0; i < a->n; i++)
		if (!strcmp(a->v[i], s))
			return true;
	return false;
}

static void test_ssh_argv(void **state)
{
	struct push_conf c = {.ssh_client = "/usr/bin/ssh", .ssh_dir = F.ssh_dir};
	struct strlist a = {0};
	char kh[200], id[200], cfg[200];

	snprintf(kh, sizeof(kh), "UserKnownHostsFile=%s/known_hosts", F.ssh_dir);
	snprintf(id, sizeof(id), "%s/id_ed25519", F.ssh_dir);
	snprintf(cfg, sizeof(cfg), "%s/config", F.ssh_dir);
	push_ssh_argv(&c, "deploy", "host.example.test", "'true'", false, &a);
	assert_string_equal(a.v[0], "/usr/bin/ssh");
	assert_null(a.v[a.n]);
	assert_string_equal(a.v[a.n - 1], "'true'");
	assert_string_equal(a.v[a.n - 2], "host.example.test");
	assert_string_equal(a.v[a.n - 3], "--");
	for (const char *const *o =
		     (const char *const[]){"BatchMode=yes", "StrictHostKeyChecking=yes",
					   "GlobalKnownHostsFile=/dev/null", "IdentitiesOnly=yes",
					   "IdentityAgent=none", "UpdateHostKeys=no",
					   "ForwardAgent=no", "ConnectTimeout=15", "LogLevel=ERROR",
					   kh, id, "deploy", "none", NULL};
	     *o; o++)
		if (!has_arg(&a, *o))
			fail_msg("ssh argv lacks %s", *o);
	strlist_free(&a);

	/* an ssh_config of the operator's in SSH_DIR/config is used; verbose shows host keys */
	assert_int_equal(fs_mkdir_p(F.ssh_dir, 0700, NULL), 0);
	assert_int_equal(fs_write_atomic(cfg, "Port 2222\n", 10, 0644, NULL), 0);
	c.connect_timeout_s = 3;
	push_ssh_argv(&c, "root", "192.0.2.2", "x", true, &a);
	assert_true(has_arg(&a, cfg));
	assert_false(has_arg(&a, "none"));
	assert_true(has_arg(&a, "LogLevel=DEBUG1"));
	assert_true(has_arg(&a, "ConnectTimeout=3"));
	strlist_free(&a);

	assert_int_equal(push_ssh_dir_ok("/var/lib/tuap/ssh", NULL), 0);
	assert_int_equal(push_ssh_dir_ok("/var/lib/tu ap/ssh", NULL), -1);
	assert_int_equal(push_ssh_dir_ok("/var/lib/%u/ssh", NULL), -1);
	assert_int_equal(push_ssh_dir_ok("relative/ssh", NULL), -1);
}

/* ---- ssh's messages ---- */

static void test_diagnose(void **state)
{
	char *unknown[] = {"No ED25519 host key is known for 192.0.2.2 and you have requested "
			   "strict checking.",
			   "Host key verification failed."};
	char *changed[] = {
		"@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
		"The fingerprint for the ED25519 key sent by the remote host is",
		"SHA256:xRcZ56IUyVy7/52unFJEgFJfKzzYjVXTWoFZ0bofheY.",
		"Host key for 192.0.2.2 has changed and you have requested strict checking.",
		"Host key verification failed."};
	char *auth[] = {"deploy@192.0.2.2: Permission denied (publickey)."};
	char *resolve[] = {"ssh: Could not resolve hostname db.test: Name or service not known"};
	char *refused[] = {"ssh: connect to host 192.0.2.2 port 22: Connection refused"};
	char *timeout[] = {"ssh: connect to host 192.0.2.9 port 22: Connection timed out"};
	char *local[] = {"Load key \"/var/lib/tuap/ssh/id_ed25519\": invalid format"};
	char *sudo[] = {"sudo: a password is required"};

	assert_int_equal(push_ssh_diagnose(unknown, 2), PUSH_SSH_HOSTKEY_UNKNOWN);
	assert_int_equal(push_ssh_diagnose(changed, 5), PUSH_SSH_HOSTKEY_CHANGED);
	assert_int_equal(push_ssh_diagnose(auth, 1), PUSH_SSH_AUTH);
	assert_int_equal(push_ssh_diagnose(resolve, 1), PUSH_SSH_RESOLVE);
	assert_int_equal(push_ssh_diagnose(refused, 1), PUSH_SSH_CONNECT);
	assert_int_equal(push_ssh_diagnose(timeout, 1), PUSH_SSH_CONNECT);
	assert_int_equal(push_ssh_diagnose(local, 1), PUSH_SSH_LOCAL);
	assert_int_equal(push_ssh_diagnose(sudo, 1), PUSH_SSH_NONE);
	assert_int_equal(push_ssh_diagnose(NULL, 0), PUSH_SSH_NONE);
}

/* ---- the payload ---- */

struct entry {
	char name[64];
	unsigned mode;
	char *data;
	size_t len;
};

/* Reads the tar on fd into v (at most max entries); returns how many. */
static size_t read_tar(int fd, struct entry *v, size_t max)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	size_t n = 0;

	assert_non_null(a);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_fd(a, fd, 10240), ARCHIVE_OK);
	while (n < max && archive_read_next_header(a, &e) == ARCHIVE_OK) {
		v[n].len = (size_t)archive_entry_size(e);
		snprintf(v[n].name, sizeof(v[n].name), "%s", archive_entry_pathname(e));
		v[n].mode = archive_entry_perm(e);
		assert_int_equal(archive_entry_uid(e), 0);
		v[n].data = malloc(v[n].len + 1);
		assert_non_null(v[n].data);
		assert_int_equal(archive_read_data(a, v[n].data, v[n].len), (la_ssize_t)v[n].len);
		v[n].data[v[n].len] = '\0';
		n++;
	}
	archive_read_free(a);
	return n;
}

static const struct entry *find_entry(const struct entry *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return &v[i];
	fail_msg("the payload has no %s", name);
	return NULL;
}

static void test_payload(void **state)
{
	const char conf[] = "endpoint = tcp://192.0.2.1:7807\n";
	const char *src = getenv("TUAP_SRC");
	struct entry v[16];
	struct stat st;
	char path[4096], machine[32];
	size_t n, len;
	char *want;
	int fd;

	/* the machine of an ELF file; anything else is refused */
	assert_int_equal(push_elf_machine("/bin/sh", machine, sizeof(machine), NULL), 0);
#if defined(__x86_64__)
	assert_string_equal(machine, "x86_64");
#elif defined(__aarch64__)
	assert_string_equal(machine, "aarch64");
#endif
	assert_int_equal(push_elf_machine("/etc/hostname", machine, sizeof(machine), NULL), -1);
	assert_int_equal(push_payload("/etc/passwd", conf, strlen(conf), NULL), -1);

	fd = push_payload("/bin/sh", conf, strlen(conf), NULL);
	assert_true(fd >= 0);
	n = read_tar(fd, v, 16);
	close(fd);
	assert_int_equal(n, push_n_files + 3);
	assert_string_equal(find_entry(v, n, "agent.conf")->data, conf);
	assert_int_equal(find_entry(v, n, "agent.conf")->mode, 0600);
	assert_int_equal(find_entry(v, n, "tuap-agent")->mode, 0755);
	assert_int_equal(stat("/bin/sh", &st), 0);
	assert_int_equal(find_entry(v, n, "tuap-agent")->len, (size_t)st.st_size);
	snprintf(path, sizeof(path), "%s\n", machine);
	assert_string_equal(find_entry(v, n, "machine")->data, path);
	assert_int_equal(find_entry(v, n, "tuap-agent@.service")->mode, 0644);
	assert_int_equal(find_entry(v, n, "install")->mode, 0755);
	/* the compiled-in files are deploy/push/ as it is */
	if (!src)
		fail_msg("TUAP_SRC is not set (run through ctest)");
	for (const char *const *f =
		     (const char *const[]){"install", "supervise", "tuap-agent@.service", NULL};
	     *f; f++) {
		snprintf(path, sizeof(path), "%s/deploy/push/%s", src, *f);
		want = fs_read_file(path, 1 << 20, &len, NULL);
		assert_non_null(want);
		assert_int_equal(find_entry(v, n, *f)->len, len);
		assert_memory_equal(find_entry(v, n, *f)->data, want, len);
		free(want);
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].data);
}

/* ---- depends_on ---- */

static void resolves(struct engine *e, const char *domain, const char *want)
{
	char host[256];
	struct tuap_err err = {0};

	if (push_resolve(e, engine_domain_job(e, domain), host, sizeof(host), &err) < 0)
		fail_msg("%s: %s", domain, err.msg);
	assert_string_equal(host, want);
}

static void refused(struct engine *e, const char *domain, const char *want)
{
	char host[256];
	struct tuap_err err = {0};

	assert_int_equal(push_resolve(e, engine_domain_job(e, domain), host, sizeof(host), &err),
			 -1);
	if (!strstr(err.msg, want))
		fail_msg("%s: '%s' lacks '%s'", domain, err.msg, want);
}

static void test_resolve(void **state)
{
	struct engine *e = new_engine();

	/* --existing jobs: no push phase; what is tested is only what their conf resolves to */
	provision(e, "a.test", "depends_on=192.0.2.7\n", true);
	resolves(e, "a.test", "192.0.2.7");
	provision(e, "b.test", "depends_on=db.example.test\n", true);
	resolves(e, "b.test", "db.example.test"); /* not a domain of ours: a host name */

	/* a domain of ours: its first address, once its job is done */
	provision(e, "vm.test", "ips=198.51.100.20/24, 198.51.100.21/24\ngateway=198.51.100.1\n",
		  true);
	provision(e, "c.test", "depends_on=vm.test\n", true);
	refused(e, "c.test", "vm.test is being provisioned");
	hello(e, "vm.test");
	assert_int_equal(job_get_state(engine_domain_job(e, "vm.test")), JOB_DONE);
	resolves(e, "c.test", "198.51.100.20");

	/* followed through a chain: d -> c.test -> vm.test */
	hello(e, "c.test");
	provision(e, "d.test", "depends_on=c.test\n", true);
	resolves(e, "d.test", "198.51.100.20");

	/* a failed domain is refused */
	provision(e, "bad.test", "ips=198.51.100.30/24\ngateway=198.51.100.1\n", true);
	/* the hello deadlines pass (one job fails per tick) */
	for (int i = 0; i < 20 && job_get_state(engine_domain_job(e, "bad.test")) == JOB_RUNNING;
	     i++)
		engine_tick(e, engine_now_ms() + 3600 * 1000);
	assert_int_equal(job_get_state(engine_domain_job(e, "bad.test")), JOB_FAILED);
	provision(e, "f.test", "depends_on=bad.test\n", true);
	refused(e, "f.test", "bad.test's last job");

	/* a circle: g -> h -> g */
	provision(e, "h.test", "depends_on=g.test\n", true);
	hello(e, "h.test");
	provision(e, "g.test", "depends_on=h.test\n", true);
	refused(e, "g.test", "circle");
	engine_free(e);
}

/* ---- the provider, with a fake ssh ---- */

/* The fake ssh: logs its remote command (the last argument) and answers by the login name. */
static void fake_ssh(const char *behaviour)
{
	char text[4096];

	snprintf(text, sizeof(text),
		 "#!/bin/sh\n"
		 "for a; do last=$a; done\n"
		 "user=\n"
		 "while [ $# -gt 0 ]; do [ \"$1\" = -l ] && user=$2; shift; done\n"
		 "printf '%%s\\n' \"$user $last\" >> %s\n"
		 "%s\n",
		 F.log, behaviour);
	assert_int_equal(fs_write_atomic(F.client, text, strlen(text), 0755, NULL), 0);
}

static struct push *new_push(struct engine *e, unsigned deadline_s)
{
	struct push_conf c = {.ssh_client = F.client,
			      .ssh_dir = F.ssh_dir,
			      .agent_binary = "/bin/sh",
			      .endpoint = "tcp://192.0.2.1:7807",
			      .deadline_s = deadline_s};
	struct tuap_err err;
	struct push *p = push_new(&c, e, &err);
	char path[200];

	assert_non_null(p);
	snprintf(path, sizeof(path), "%s/id_ed25519", F.ssh_dir);
	assert_true(fs_exists(path)); /* made at start */
	snprintf(path, sizeof(path), "%s/known_hosts", F.ssh_dir);
	assert_true(fs_exists(path));
	return p;
}

/* Serves p like tuapd's loop until the job of domain is no longer in phase push. */
static void serve(struct engine *e, struct push *p, const char *domain, int max_ms)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		zmq_pollitem_t items[PUSH_MAX_RUNS];
		size_t n = push_pollitems(p, items, PUSH_MAX_RUNS);
		long to = push_timeout(p);
		const struct job *job = engine_domain_job(e, domain);

		if (job_get_state(job) != JOB_RUNNING || job_current_phase(job) != PH_PUSH)
			return;
		zmq_poll(items, (int)n, to < 0 || to > 200 ? 200 : to);
		push_service(p);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > max_ms)
			fail_msg("the push of %s did not end within %d ms", domain, max_ms);
	}
}

static void test_provider_no_sudo(void **state)
{
	struct engine *e = new_engine();
	struct push *p;
	char path[200], *log;

	fake_ssh("echo 'sudo: a password is required' >&2; exit 1");
	p = new_push(e, 30);
	provision(e, "site.test", "depends_on=192.0.2.2\nadmin_user=deploy\n", false);
	serve(e, p, "site.test", 5000);
	assert_int_equal(job_get_state(engine_domain_job(e, "site.test")), JOB_FAILED);
	if (!strstr(phase_text(), "deploy on 192.0.2.2 has no passwordless sudo"))
		fail_msg("%s", phase_text());
	assert_non_null(strstr(phase_text(), "| sudo: a password is required"));
	log = fs_read_file(F.log, 1 << 16, NULL, NULL);
	assert_non_null(log);
	assert_string_equal(log, "deploy 'sudo' '-n' 'true'\n"); /* one connection, one command */
	free(log);
	snprintf(path, sizeof(path), "%s/keys/site.test.pub", F.state);
	assert_false(fs_exists(path)); /* no key enrolled */
	push_free(p);
	engine_free(e);
}

static void test_provider_install(void **state)
{
	struct engine *e = new_engine();
	struct push *p;
	char script[1024], tar[200], path[200], *log;
	struct entry v[16];
	size_t n;
	int fd;

	/* the install stage's stdin (the payload) is kept, and the installer's lines are said */
	snprintf(tar, sizeof(tar), "%s/payload.tar", F.dir);
	snprintf(script, sizeof(script),
		 "case $last in *tuap-push*) cat > %s;"
		 " echo 'tuap-install: installed /usr/local/sbin/tuap-agent' >&2;"
		 " echo 'tuap-install: done: tuap-agent for site.test started (fake)' >&2;; esac",
		 tar);
	fake_ssh(script);
	p = new_push(e, 30);
	provision(e, "site.test", "depends_on=192.0.2.2\n", false);
	serve(e, p, "site.test", 5000);
	if (job_current_phase(engine_domain_job(e, "site.test")) != PH_HELLO)
		fail_msg("%s", phase_text());
	assert_non_null(strstr(phase_text(), "installed /usr/local/sbin/tuap-agent"));
	assert_non_null(strstr(phase_text(), "root@192.0.2.2: tuap-agent for site.test started"));
	log = fs_read_file(F.log, 1 << 16, NULL, NULL);
	assert_non_null(log);
	/* root: no sudo, and the domain goes to the fixed script as $1, quoted */
	assert_non_null(strstr(log, "root 'true'\nroot 'sh' '-c' 'set -eu;"));
	assert_non_null(strstr(log, "' 'tuap-push' 'site.test'\n"));
	free(log);
	fd = open(tar, O_RDONLY);
	assert_true(fd >= 0);
	n = read_tar(fd, v, 16);
	close(fd);
	log = find_entry(v, n, "agent.conf")->data;
	assert_non_null(strstr(log, "endpoint = tcp://192.0.2.1:7807\n"));
	assert_non_null(strstr(log, "domain = site.test\n"));
	assert_non_null(strstr(log, "state_dir = /var/lib/tuap-agent/domains/site.test\n"));
	assert_non_null(strstr(log, "secret_key = "));
	snprintf(path, sizeof(path), "%s/keys/site.test.pub", F.state);
	assert_true(fs_exists(path)); /* enrolled, public half only */
	for (size_t i = 0; i < n; i++)
		free(v[i].data);
	push_free(p);
	engine_free(e);
}

static void test_provider_deadline(void **state)
{
	struct engine *e = new_engine();
	struct push *p;
	char pidfile[200], *pid;

	snprintf(pidfile, sizeof(pidfile), "%s/ssh.pid", F.dir);
	{
		char script[512];

		snprintf(script, sizeof(script), "echo $$ > %s; exec sleep 30", pidfile);
		fake_ssh(script);
	}
	p = new_push(e, 1);
	provision(e, "site.test", "depends_on=192.0.2.2\n", false);
	serve(e, p, "site.test", 5000);
	assert_int_equal(job_get_state(engine_domain_job(e, "site.test")), JOB_FAILED);
	assert_non_null(strstr(phase_text(), "did not finish within 1 s"));
	/* the child is gone once served a little longer */
	for (int i = 0; i < 50 && push_timeout(p) >= 0; i++) {
		usleep(100 * 1000);
		push_service(p);
	}
	assert_int_equal(push_timeout(p), -1);
	pid = fs_read_file(pidfile, 64, NULL, NULL);
	assert_non_null(pid);
	assert_int_equal(kill(atoi(pid), 0), -1);
	free(pid);
	push_free(p);
	engine_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_remote_command_round_trip),
		cmocka_unit_test_setup_teardown(test_ssh_argv, setup, teardown),
		cmocka_unit_test(test_diagnose),
		cmocka_unit_test(test_payload),
		cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provider_no_sudo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provider_install, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provider_deadline, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
