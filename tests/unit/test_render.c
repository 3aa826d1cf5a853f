/*
 * Unit tests for the renders (controller/cloudinit.c, controller/domxml.c): the example site's
 * four files against the golden files in tests/data/golden/example.test/ (TUAP_REGEN_GOLDEN=1
 * rewrites them), and every render, with variants, through the real validators: `cloud-init
 * schema`, `cloud-init devel net-convert` and `virt-xml-validate`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "hash.h"
#include "meta.h"
#include "render.h"

#define TOOL_TIMEOUT 60 /* seconds for one validator run */

/* ---- the example site, built by hand (no parser involved) ---- */

struct site {
	struct domain_conf conf;
	struct users users;
	struct user user[2];
	struct settings set;
	struct render_input in;
	char mac[2][18];
	char *sudo[1];
	char *keys[1];
	char *groups[2];
};

static char s_nginx[] = "nginx";
static char s_admin[] = "site-admin";
static char s_gecos[] = "Site Administrator";
static char s_shell[] = "/bin/bash";
static char s_sudo[] = "ALL=(ALL) NOPASSWD:ALL";
static char s_key[] =
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	" site-admin@example.test";
static char s_adm[] = "adm";
static char s_wwwdata[] = "www-data";

static void ip(struct ip_addr *a, const char *text, int prefix)
{
	memset(a, 0, sizeof(*a));
	a->family = strchr(text, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(a->family, text, a->addr), 1);
	a->prefix = prefix;
	a->prefix_given = true;
	snprintf(a->text, sizeof(a->text), "%s/%d", text, prefix);
}

/* Upstream's scheme (domain_mac in common/domain.c): 52:54:00 + the first 3 bytes of
 * sha256_hex("DOMAIN/INDEX"). */
static void mac_of(const char *name, int index, char out[18])
{
	char in[300], hex[SHA256_HEX_LEN];

	snprintf(in, sizeof(in), "%s/%d", name, index);
	sha256_hex(in, strlen(in), hex);
	snprintf(out, 18, "52:54:00:%.2s:%.2s:%.2s", hex, hex + 2, hex + 4);
}

static struct site *example(void)
{
	struct site *t = calloc(1, sizeof(*t));
	struct domain_conf *c = &t->conf;
	struct user *u = &t->user[0];

	assert_non_null(t);
	snprintf(c->name, sizeof(c->name), "example.test");
	snprintf(c->dir, sizeof(c->dir), "example.test");
	snprintf(c->conf_path, sizeof(c->conf_path), "example.test/provision.conf");
	ip(&c->ips[0], "192.0.2.10", 24);
	ip(&c->ips[1], "2001:db8::10", 64);
	c->n_ips = 2;
	ip(&c->gateway, "192.0.2.1", 32);
	ip(&c->gateway6, "2001:db8::1", 128);
	ip(&c->resolvers[0], "192.0.2.53", 32);
	c->n_resolvers = 1;
	c->size = 10ULL << 30;
	c->image_kind = IMAGE_CATALOG;
	c->packages[0] = s_nginx;
	c->n_packages = 1;
	snprintf(c->contact_email, sizeof(c->contact_email), "webmaster@example.test");
	snprintf(c->admin_user, sizeof(c->admin_user), "root");
	c->memory_mib = 1024;
	c->cpus = 2;
	snprintf(c->cpu_mode, sizeof(c->cpu_mode), "host-passthrough");

	u->name = s_admin;
	u->gecos = s_gecos;
	u->shell = s_shell;
	u->sudo = SUDO_RULES;
	t->sudo[0] = s_sudo;
	u->sudo_rules = (struct strlist){t->sudo, 1, 1};
	t->keys[0] = s_key;
	u->ssh_authorized_keys = (struct strlist){t->keys, 1, 1};
	t->groups[0] = s_adm;
	t->groups[1] = s_wwwdata;
	u->groups = (struct strlist){t->groups, 2, 2};
	u->lock_passwd = TRI_UNSET;
	u->uid = -1;
	u->line = 2;
	t->users = (struct users){.v = t->user, .n = 1};

	settings_defaults(&t->set);
	mac_of(c->name, 0, t->mac[0]);
	mac_of(c->name, 1, t->mac[1]);
	t->in = (struct render_input){
		.conf = c,
		.users = &t->users,
		.set = &t->set,
		.instance_id = "i-7e3a9c41d2b05f68",
		.provision_id = "p-20260101T120000Z-0001",
		.mac_mgmt = t->mac[0],
		.mac_public = t->mac[1],
		.disk_path = "/vms/example.test/disk.qcow2",
		.backing_path = "/vms/images/debian-12.qcow2",
		.seed_path = "/vms/example.test/seed-5d41402abc4b2a76.iso",
		.console_log = "/vms/example.test/console.log",
		/* the example public key of the ZeroMQ CURVE documentation */
		.agent_public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
	};
	return t;
}

/* ---- helpers: renders, files, running the validators ---- */

enum { META, NET, USER, XML, N_RENDERS };
static const char *const render_names[N_RENDERS] = {"meta-data", "network-config", "user-data",
						    "domain.xml"};

static void render_all(const struct render_input *in, struct buf out[N_RENDERS])
{
	struct tuap_err err = {0};
	char msg[1200];
	int (*fn[N_RENDERS])(const struct render_input *, struct buf *, struct tuap_err *) = {
		cloudinit_meta_data, cloudinit_network_config, cloudinit_user_data, domxml_render};

	for (int i = 0; i < N_RENDERS; i++) {
		buf_reset(&out[i]);
		if (fn[i](in, &out[i], &err) < 0)
			fail_msg("%s: %s", render_names[i], err_str(&err, msg, sizeof(msg)));
	}
}

static void free_all(struct buf out[N_RENDERS])
{
	for (int i = 0; i < N_RENDERS; i++)
		buf_free(&out[i]);
}

static void write_file(const char *dir, const char *name, const struct buf *b)
{
	char path[4400];
	struct tuap_err err = {0};
	char msg[1200];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (fs_write_atomic(path, b->s ? b->s : "", b->len, 0644, &err) < 0)
		fail_msg("%s", err_str(&err, msg, sizeof(msg)));
}

static char *read_file(const char *path)
{
	struct tuap_err err = {0};
	char msg[1200];
	char *s = fs_read_file(path, 1 << 20, NULL, &err);

	if (!s)
		fail_msg("%s", err_str(&err, msg, sizeof(msg)));
	return s;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs argv (no shell) with stdout+stderr into outpath; returns the exit status, 128+signal,
 * or -1 on timeout (then the child is killed). */
static int run(const char *const argv[], const char *outpath)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < TOOL_TIMEOUT * 20; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(50 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* Runs argv and fails the test unless it exits 0 (and prints want, when given). Returns the
 * tool's output; caller frees. */
static char *run_ok(const char *dir, const char *const argv[], const char *want)
{
	char outpath[512];
	int rc;
	char *out;

	snprintf(outpath, sizeof(outpath), "%s/tool.out", dir);
	rc = run(argv, outpath);
	out = read_file(outpath);
	if (rc != 0 || (want && !strstr(out, want)))
		fail_msg("%s %s exited %d; output:\n%s", argv[0], argv[1], rc, out);
	return out;
}

static void validate_user_data(const char *dir)
{
	char path[512];
	const char *argv[] = {"cloud-init", "schema", "--config-file", path, NULL};

	snprintf(path, sizeof(path), "%s/user-data", dir);
	free(run_ok(dir, argv, "Valid cloud-config"));
}

/* libvirt's schema, then libvirt's own parser: a define on the in-process test driver (no
 * daemon, nothing kept). */
static void validate_domain_xml(const char *dir)
{
	char path[512];
	const char *validate[] = {"virt-xml-validate", path, "domain", NULL};
	const char *define[] = {"virsh", "-q", "-c", "test:///default", "define", path, NULL};

	snprintf(path, sizeof(path), "%s/domain.xml", dir);
	free(run_ok(dir, validate, NULL));
	free(run_ok(dir, define, NULL));
}

/* cloud-init's own converter: dir/network-config -> OUTKIND's files under dir/OUTKIND (run once
 * per directory and kind). Returns the content of the output file named file (caller frees). */
static char *net_convert(const char *dir, const char *outkind, const char *file)
{
	char in[512], out[512], path[700];
	struct stat st;
	const char *argv[] = {"cloud-init", "devel", "net-convert", "-p",     in,   "-k",    "yaml",
			      "-d",	    out,     "-D",	    "debian", "-O", outkind, NULL};

	snprintf(in, sizeof(in), "%s/network-config", dir);
	snprintf(out, sizeof(out), "%s/%s", dir, outkind);
	if (stat(out, &st) != 0)
		free(run_ok(dir, argv, NULL));
	snprintf(path, sizeof(path), "%s/%s", out, file);
	return read_file(path);
}

static void assert_has(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("'%s' not found in:\n%s", needle, hay);
}

static void assert_lacks(const char *hay, const char *needle)
{
	if (strstr(hay, needle))
		fail_msg("'%s' unexpectedly found in:\n%s", needle, hay);
}

static char *temp_dir(void)
{
	char *dir = strdup("/tmp/tuap-render-XXXXXX");

	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static void write_all(const char *dir, struct buf out[N_RENDERS])
{
	for (int i = 0; i < N_RENDERS; i++)
		write_file(dir, render_names[i], &out[i]);
}

/* ---- tests ---- */

static void test_golden(void **state)
{
	struct site *t = example();
	struct buf out[N_RENDERS] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
	const char *src = getenv("TUAP_SRC");
	const char *regen = getenv("TUAP_REGEN_GOLDEN");
	char gdir[4096], path[4400];

	if (!src)
		fail_msg("TUAP_SRC is not set (run through ctest)");
	snprintf(gdir, sizeof(gdir), "%s/tests/data/golden/example.test", src);
	render_all(&t->in, out);
	if (regen && !strcmp(regen, "1")) {
		struct tuap_err err = {0};

		assert_int_equal(fs_mkdir_p(gdir, 0755, &err), 0);
		write_all(gdir, out);
		fprintf(stderr, "golden files rewritten in %s\n", gdir);
	}
	for (int i = 0; i < N_RENDERS; i++) {
		char *want;

		snprintf(path, sizeof(path), "%s/%s", gdir, render_names[i]);
		want = read_file(path);
		if (strcmp(want, out[i].s))
			fail_msg("%s differs from %s (TUAP_REGEN_GOLDEN=1 rewrites it); got:\n%s",
				 render_names[i], path, out[i].s);
		free(want);
	}
	free_all(out);
	free(t);
}

/* The example through cloud-init and libvirt's own validators. */
static void test_validators_example(void **state)
{
	struct site *t = example();
	struct buf out[N_RENDERS] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
	char *dir = temp_dir(), *pub, *mgmt, match[64];

	render_all(&t->in, out);
	assert_has(out[USER].s, "\nusers: [[]]\n"); /* no default entry in users.yaml */
	write_all(dir, out);
	validate_user_data(dir);
	validate_domain_xml(dir);

	/* Without set-name, net-convert (which finds no NIC with these MACs on this machine)
	 * names the files after the network-config ids. */
	pub = net_convert(dir, "networkd", "etc/systemd/network/10-cloud-init-public.network");
	snprintf(match, sizeof(match), "MACAddress=%s", t->mac[1]);
	assert_has(pub, match);
	assert_has(pub, "Address=192.0.2.10/24");
	assert_has(pub, "Address=2001:db8::10/64");
	assert_has(pub, "Gateway=192.0.2.1\n");
	assert_has(pub, "Gateway=2001:db8::1\n");
	assert_has(pub, "DNS=192.0.2.53");
	assert_has(pub, "DHCP=no");
	mgmt = net_convert(dir, "networkd", "etc/systemd/network/10-cloud-init-mgmt.network");
	snprintf(match, sizeof(match), "MACAddress=%s", t->mac[0]);
	assert_has(mgmt, match);
	assert_has(mgmt, "DHCP=ipv4");
	assert_has(mgmt, "UseRoutes=False");
	assert_has(mgmt, "UseDNS=False");
	assert_lacks(mgmt, "Gateway=");
	free(pub);
	free(mgmt);

	/* and as netplan (Ubuntu's renderer) */
	pub = net_convert(dir, "netplan", "etc/netplan/50-cloud-init.yaml");
	snprintf(match, sizeof(match), "macaddress: %s", t->mac[1]);
	assert_has(pub, match);
	assert_has(pub, "- 192.0.2.10/24");
	assert_has(pub, "use-routes: false");
	free(pub);

	/* what tuapd reads back from libvirt: our <metadata> element, by namespace */
	char script[700], *meta;
	const char *virsh[] = {"virsh", "-q", "-c", "test:///default", script, NULL};
	snprintf(script, sizeof(script), "define %s/domain.xml; metadata example.test %s", dir,
		 META_NS);
	meta = run_ok(dir, virsh, NULL);
	assert_has(meta, "<instance-id>i-7e3a9c41d2b05f68</instance-id>");
	assert_has(meta, "<provision-id>p-20260101T120000Z-0001</provision-id>");
	assert_has(meta, "<agent-public-key>rq:rM&gt;}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7<");
	assert_has(meta, "<image>debian-12</image>");
	free(meta);

	rm_rf(dir);
	free(dir);
	free_all(out);
	free(t);
}

/* TCG with direct kernel boot, as the test environment runs guests. */
static void test_qemu_direct_boot(void **state)
{
	struct site *t = example();
	struct buf out[N_RENDERS] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
	char *dir = temp_dir();

	snprintf(t->set.virt_type, sizeof(t->set.virt_type), "qemu");
	t->in.kernel = "/var/cache/tuap-e2e/img/vmlinuz";
	t->in.initrd = "/var/cache/tuap-e2e/img/initrd.img";
	t->in.cmdline = "root=/dev/vda rw console=ttyS0 panic=-1";
	render_all(&t->in, out);
	assert_has(out[XML].s, "<domain type=\"qemu\">");
	assert_has(out[XML].s, "<cpu mode=\"maximum\"/>"); /* host-passthrough is overridden */
	assert_has(out[XML].s, "<kernel>/var/cache/tuap-e2e/img/vmlinuz</kernel>");
	assert_has(out[XML].s, "<cmdline>root=/dev/vda rw console=ttyS0 panic=-1</cmdline>");
	assert_lacks(out[XML].s, "<boot ");
	assert_lacks(out[USER].s, "sources.list.d"); /* no apt_source: nothing about apt */
	write_all(dir, out);
	validate_domain_xml(dir);
	validate_user_data(dir);

	/* the test environment's local repository: installed from the seed before the agent */
	snprintf(t->set.apt_source, sizeof(t->set.apt_source),
		 "deb [trusted=yes] http://192.0.2.1:8080/ ./");
	render_all(&t->in, out);
	assert_has(out[USER].s, "- [install, -m, '0644', /run/tuap-seed/iso/tuap/apt-source.list, "
				"/etc/apt/sources.list.d/tuap.list]\n- [sh, -c, '[ -f \"$1\" ] || "
				"exit 0; sh \"$1\" "
				"\"$2\"; rc=$?; umount \"$2\"; exit $rc', tuap-install, "
				"/run/tuap-seed/iso/tuap/install");
	assert_lacks(out[USER].s, "192.0.2.1"); /* the line itself travels on the seed */
	write_all(dir, out);
	validate_user_data(dir);
	t->set.apt_source[0] = '\0';

	/* a CPU model name instead of a mode, under kvm */
	snprintf(t->set.virt_type, sizeof(t->set.virt_type), "kvm");
	snprintf(t->conf.cpu_mode, sizeof(t->conf.cpu_mode), "EPYC");
	t->in.initrd = NULL;
	t->in.cmdline = NULL;
	render_all(&t->in, out);
	assert_has(out[XML].s, "<cpu mode=\"custom\" match=\"exact\">");
	assert_has(out[XML].s, "<model fallback=\"forbid\">EPYC</model>");
	assert_lacks(out[XML].s, "<initrd>");
	write_all(dir, out);
	validate_domain_xml(dir);

	rm_rf(dir);
	free(dir);
	free_all(out);
	free(t);
}

static void test_ipv4_only(void **state)
{
	struct site *t = example();
	struct buf out[N_RENDERS] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
	char *dir = temp_dir(), *pub;

	t->conf.n_ips = 1;
	memset(&t->conf.gateway6, 0, sizeof(t->conf.gateway6));
	ip(&t->conf.resolvers[1], "198.51.100.53", 32);
	t->conf.n_resolvers = 2;
	render_all(&t->in, out);
	assert_lacks(out[NET].s, "gateway6");
	assert_lacks(out[NET].s, "2001:db8");
	write_all(dir, out);
	validate_user_data(dir);
	validate_domain_xml(dir);
	pub = net_convert(dir, "networkd", "etc/systemd/network/10-cloud-init-public.network");
	assert_has(pub, "Address=192.0.2.10/24");
	assert_has(pub, "Gateway=192.0.2.1\n");
	assert_has(pub, "DNS=192.0.2.53 198.51.100.53");
	assert_lacks(pub, "2001:db8");
	free(pub);
	rm_rf(dir);
	free(dir);
	free_all(out);
	free(t);
}

/* A remote hypervisor: tuapd's agent_endpoint is beyond the management subnet, so NIC 0 gets
 * one host route to it through the subnet's gateway (else the agent's traffic would take the
 * public default route); none for an endpoint in the subnet (the golden files) or a name. */
static void test_remote_endpoint_route(void **state)
{
	struct site *t = example();
	struct buf out[N_RENDERS] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
	char *dir = temp_dir(), *mgmt;

	snprintf(t->set.mgmt_subnet, sizeof(t->set.mgmt_subnet), "198.51.100.0/24");
	snprintf(t->set.agent_endpoint, sizeof(t->set.agent_endpoint), "tcp://203.0.113.1:7807");
	render_all(&t->in, out);
	assert_has(out[NET].s, "- to: '203.0.113.1/32'\n      via: '198.51.100.1'");
	write_all(dir, out);
	mgmt = net_convert(dir, "networkd", "etc/systemd/network/10-cloud-init-mgmt.network");
	assert_has(mgmt, "Destination=203.0.113.1/32");
	assert_has(mgmt, "Gateway=198.51.100.1");
	free(mgmt);
	snprintf(t->set.agent_endpoint, sizeof(t->set.agent_endpoint), "tcp://198.51.100.1:7807");
	render_all(&t->in, out);
	assert_lacks(out[NET].s, "- to:");
	snprintf(t->set.agent_endpoint, sizeof(t->set.agent_endpoint), "tcp://tuapd.example:7807");
	render_all(&t->in, out);
	assert_lacks(out[NET].s, "- to:");
	rm_rf(dir);
	free(dir);
	free_all(out);
	free(t);
}

/* IPv6 only: the gateway field holds the IPv6 gateway. */
static void test_ipv6_only(void **state)
{
	struct site *t = example();
	struct buf out[N_RENDERS] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
	char *dir = temp_dir(), *pub;

	t->conf.ips[0] = t->conf.ips[1];
	t->conf.n_ips = 1;
	t->conf.gateway = t->conf.gateway6;
	memset(&t->conf.gateway6, 0, sizeof(t->conf.gateway6));
	ip(&t->conf.resolvers[0], "2001:db8::53", 128);
	render_all(&t->in, out);
	assert_lacks(out[NET].s, "gateway4");
	write_all(dir, out);
	pub = net_convert(dir, "networkd", "etc/systemd/network/10-cloud-init-public.network");
	assert_has(pub, "Address=2001:db8::10/64");
	assert_has(pub, "Gateway=2001:db8::1\n");
	assert_has(pub, "DNS=2001:db8::53");
	assert_lacks(pub, "192.0.2");
	free(pub);
	rm_rf(dir);
	free(dir);
	free_all(out);
	free(t);
}

/* No ips: the public NIC takes DHCP (upstream's rule). NIC names given: set-name, and then
 * cloud-init names the networkd files after them. */
static void test_dhcp_and_devnames(void **state)
{
	struct site *t = example();
	struct buf out[N_RENDERS] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
	char *dir = temp_dir(), *pub, *mgmt;

	t->conf.n_ips = 0;
	t->conf.n_resolvers = 0;
	memset(&t->conf.gateway, 0, sizeof(t->conf.gateway));
	memset(&t->conf.gateway6, 0, sizeof(t->conf.gateway6));
	snprintf(t->conf.dhcp_devname, sizeof(t->conf.dhcp_devname), "ens3");
	snprintf(t->conf.bridge_devname, sizeof(t->conf.bridge_devname), "ens4");
	render_all(&t->in, out);
	assert_has(out[NET].s, "set-name: ens3");
	assert_has(out[NET].s, "set-name: ens4");
	write_all(dir, out);
	pub = net_convert(dir, "networkd", "etc/systemd/network/10-cloud-init-ens4.network");
	assert_has(pub, "DHCP=ipv4");
	assert_lacks(pub, "UseRoutes"); /* the public NIC's lease brings the default route */
	mgmt = net_convert(dir, "networkd", "etc/systemd/network/10-cloud-init-ens3.network");
	assert_has(mgmt, "UseRoutes=False");
	assert_has(mgmt, "UseDNS=False");
	free(pub);
	free(mgmt);
	rm_rf(dir);
	free(dir);
	free_all(out);
	free(t);
}

/* Quotes, <, & and ' in paths, cmdline and gecos: the XML stays well-formed and reads back as
 * the same text; user-data stays valid; a `default` entry keeps the image's default user. */
static void test_odd_input(void **state)
{
	static char gecos[] = "O'Brien \"Bob\" & <Sons>";
	static const char disk[] = "/vms/it's \"odd\" <&>/disk.qcow2";
	struct site *t = example();
	struct buf out[N_RENDERS] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
	char *dir = temp_dir();
	xmlDocPtr doc;
	xmlNodePtr n;

	t->user[0].gecos = gecos;
	t->user[1].is_default = true;
	t->users.n = 2;
	t->in.disk_path = disk;
	t->in.kernel = "/boot/vm&linuz";
	t->in.cmdline = "console=ttyS0 tuap.note=\"a<b & c>d\"";
	snprintf(t->conf.image, sizeof(t->conf.image), "https://images.example.test/x?a=1&b=<2>");
	render_all(&t->in, out);
	assert_has(out[USER].s, "users: [default]");
	write_all(dir, out);
	validate_user_data(dir);
	validate_domain_xml(dir);

	doc = xmlReadMemory(out[XML].s, (int)out[XML].len, "domain.xml", NULL, XML_PARSE_NONET);
	assert_non_null(doc);
	n = xmlDocGetRootElement(doc);
	for (n = n->children;
	     n && !(n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, "devices"));
	     n = n->next)
		;
	assert_non_null(n);
	for (n = n->children;
	     n && !(n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, "disk"));
	     n = n->next)
		;
	assert_non_null(n);
	for (n = n->children;
	     n && !(n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, "source"));
	     n = n->next)
		;
	assert_non_null(n);
	xmlChar *file = xmlGetProp(n, BAD_CAST "file");
	assert_string_equal((const char *)file, disk);
	xmlFree(file);
	xmlFreeDoc(doc);
	assert_has(out[XML].s, "<tuap:image>https://images.example.test/x?a=1&amp;b=&lt;2&gt;<");

	rm_rf(dir);
	free(dir);
	free_all(out);
	free(t);
}

/* What PyYAML (cloud-init's reader) makes of values that look like numbers or booleans. */
static void test_yaml_typing(void **state)
{
	static const char script[] =
		"import sys, yaml\n"
		"d = yaml.safe_load(open(sys.argv[1]))\n"
		"e = d['ethernets']\n"
		"assert d['version'] == 2, d\n"
		"assert e['mgmt']['match']['macaddress'] == sys.argv[2], e\n"
		"assert e['mgmt']['set-name'] == sys.argv[3], e\n"
		"assert e['public']['set-name'] == sys.argv[4], e\n"
		"assert e['mgmt']['dhcp4'] is True and e['mgmt']['dhcp4-overrides']['use-routes'] "
		"is False, e\n"
		"m = yaml.safe_load(open(sys.argv[5]))\n"
		"assert m['instance-id'] == sys.argv[6], m\n"
		"print('typed ok')\n";
	struct site *t = example();
	struct buf out[N_RENDERS] = {BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT};
	char *dir = temp_dir(), net[512], meta[512];
	/* python3 -c SCRIPT NET MAC SETNAME0 SETNAME1 META INSTANCE */
	const char *args[] = {"/usr/bin/python3", "-c", script, net, "52:54:00:12:34:56", "yes",
			      "a: '#b\"&",	  meta, "1e3",	NULL};

	snprintf(net, sizeof(net), "%s/network-config", dir);
	snprintf(meta, sizeof(meta), "%s/meta-data", dir);
	t->in.mac_mgmt = "52:54:00:12:34:56";
	t->in.instance_id = "1e3";
	snprintf(t->conf.dhcp_devname, sizeof(t->conf.dhcp_devname), "yes");
	snprintf(t->conf.bridge_devname, sizeof(t->conf.bridge_devname), "a: '#b\"&");
	render_all(&t->in, out);
	write_all(dir, out);
	free(run_ok(dir, args, "typed ok"));
	rm_rf(dir);
	free(dir);
	free_all(out);
	free(t);
}

static void expect_render_error(struct site *t, int which, const char *msg)
{
	struct buf b = BUF_INIT;
	struct tuap_err err = {0};
	char text[1200];
	int rc;

	switch (which) {
	case META:
		rc = cloudinit_meta_data(&t->in, &b, &err);
		break;
	case NET:
		rc = cloudinit_network_config(&t->in, &b, &err);
		break;
	case USER:
		rc = cloudinit_user_data(&t->in, &b, &err);
		break;
	default:
		rc = domxml_render(&t->in, &b, &err);
		break;
	}
	assert_int_equal(rc, -1);
	err_str(&err, text, sizeof(text));
	if (!strstr(text, msg))
		fail_msg("expected '%s' in '%s'", msg, text);
	buf_free(&b);
}

static void test_bad_input(void **state)
{
	struct site *t = example();

	t->in.instance_id = NULL;
	expect_render_error(t, META, "instance_id is missing");
	expect_render_error(t, XML, "instance_id is missing");
	free(t);

	t = example();
	t->in.mac_public = "52:54:00:zz:00:01";
	expect_render_error(t, NET, "mac_public '52:54:00:zz:00:01' is not a MAC address");
	expect_render_error(t, XML, "is not a MAC address");
	t->in.mac_public = "52:54:00:00:00:0";
	expect_render_error(t, NET, "is not a MAC address");
	free(t);

	t = example();
	t->in.agent_public_key = "short";
	expect_render_error(t, XML, "agent_public_key is not a Z85 key");
	t->in.agent_public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf\"";
	expect_render_error(t, XML, "agent_public_key is not a Z85 key");
	free(t);

	t = example();
	t->in.seed_path = "/vms/x\001.iso";
	expect_render_error(t, XML, "seed_path holds a control character");
	t->in.seed_path = "/vms/x\xff.iso";
	expect_render_error(t, XML, "seed_path is not valid UTF-8");
	free(t);

	t = example();
	t->in.cmdline = "console=ttyS0";
	expect_render_error(t, XML, "initrd or cmdline without a kernel");
	free(t);

	t = example();
	snprintf(t->conf.cpu_mode, sizeof(t->conf.cpu_mode), "custom");
	expect_render_error(t, XML, "cpu_mode custom needs a CPU model");
	free(t);

	t = example();
	t->conf.ips[1].family = 0;
	expect_render_error(t, NET, "ips[1] is not an address");
	free(t);

	t = example();
	snprintf(t->conf.dhcp_devname, sizeof(t->conf.dhcp_devname), "e\xc3(x");
	expect_render_error(t, NET, "not valid UTF-8");
	free(t);

	t = example();
	t->in.conf = NULL;
	expect_render_error(t, USER, "conf is missing");
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_validators_example),
		cmocka_unit_test(test_qemu_direct_boot),
		cmocka_unit_test(test_ipv4_only),
		cmocka_unit_test(test_remote_endpoint_route),
		cmocka_unit_test(test_ipv6_only),
		cmocka_unit_test(test_dhcp_and_devnames),
		cmocka_unit_test(test_odd_input),
		cmocka_unit_test(test_yaml_typing),
		cmocka_unit_test(test_bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
