/* Unit tests for tuapd.conf (controller/settings.c): defaults, every key, derived defaults,
 * unknown keys and bad types/values reported with file and line, deploy/tuapd.conf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "settings.h"

static char errbuf[1200];

/* Parses text as "t.conf"; returns the rc and leaves the message in errbuf. */
static int parse(const char *text, struct settings *s)
{
	struct tuap_err err = {0};
	int rc = settings_parse("t.conf", text, s, &err);

	err_str(&err, errbuf, sizeof(errbuf));
	return rc;
}

static void expect_error(const char *text, const char *msg)
{
	struct settings s;

	assert_int_equal(parse(text, &s), -1);
	if (!strstr(errbuf, msg))
		fail_msg("expected '%s' in '%s'", msg, errbuf);
}

static void test_defaults(void **state)
{
	struct settings s;

	settings_defaults(&s);
	assert_string_equal(s.libvirt_uri, "qemu:///system");
	assert_string_equal(s.virt_type, "kvm");
	assert_string_equal(s.pool_root, "/vms");
	assert_string_equal(s.state_dir, "/var/lib/tuap");
	assert_string_equal(s.run_dir, "/run/tuap");
	assert_string_equal(s.ctl_group, "tuap");
	assert_string_equal(s.mgmt_network, "tuap-mgmt");
	assert_string_equal(s.mgmt_subnet, "192.168.251.0/24");
	assert_string_equal(s.public_bridge, "br0");
	assert_string_equal(s.agent_listen, "tcp://0.0.0.0:7807");
	assert_string_equal(s.agent_endpoint, "tcp://192.168.251.1:7807");
	assert_string_equal(s.public_endpoint, "tcp://192.168.251.1:7807");
	assert_string_equal(s.image_catalog, "/etc/tuap/images.conf");
	assert_string_equal(s.default_image, "debian-12");
	assert_string_equal(s.agent_binary, TUAP_LIBDIR "/tuap-agent");
	assert_string_equal(s.mgmt_bridge, "virbr-tuap");
	assert_string_equal(s.seed_dir, TUAP_DATADIR "/seed");
	assert_string_equal(s.apt_source, "");
	assert_string_equal(s.ssh_key_url_gh, "https://github.com/%s.keys");
	assert_string_equal(s.ssh_key_url_lp, "https://launchpad.net/~%s/+sshkeys");
	assert_int_equal(s.deadlines.image, 1800);
	assert_int_equal(s.deadlines.disk, 120);
	assert_int_equal(s.deadlines.seed, 60);
	assert_int_equal(s.deadlines.define, 120);
	assert_int_equal(s.deadlines.hello, 600);
	assert_int_equal(s.deadlines.users, 300);
	assert_int_equal(s.deadlines.packages, 1800);
	assert_int_equal(s.deadlines.mail, 60);
	assert_int_equal(s.deadlines.data, 3600);
	assert_int_equal(s.deadlines.make, 3600);
	assert_int_equal(s.deadlines.push, 600);
	assert_string_equal(s.ssh_client, "/usr/bin/ssh");
	assert_string_equal(s.ssh_dir, "/var/lib/tuap/ssh");
	assert_int_equal(s.ssh_connect_timeout, 15);
	assert_int_equal(s.max_message, 1 << 20);
	assert_int_equal(s.data_chunk, 256 << 10);
	assert_int_equal(s.data_window, 8);
	assert_int_equal(s.keep_jobs, 10);
}

/* An empty file is all defaults, and so is the documented example (which spells them out). */
static void test_empty_and_example_are_defaults(void **state)
{
	struct settings def, s;
	struct tuap_err err = {0};
	const char *src = getenv("TUAP_SRC");
	char path[4096];

	settings_defaults(&def);
	assert_int_equal(parse("", &s), 0);
	assert_memory_equal(&s, &def, sizeof(s));
	assert_int_equal(parse("# only a comment\n", &s), 0);
	assert_memory_equal(&s, &def, sizeof(s));

	if (!src)
		fail_msg("TUAP_SRC is not set (run through ctest)");
	snprintf(path, sizeof(path), "%s/deploy/tuapd.conf", src);
	if (settings_load(path, &s, &err) < 0)
		fail_msg("%s", err_str(&err, errbuf, sizeof(errbuf)));
	assert_memory_equal(&s, &def, sizeof(s));
}

static const char every_key[] =
	"libvirt_uri = \"qemu+ssh://hv1/system\";\n"
	"virt_type = \"qemu\";\n"
	"pool_root = \"/tmp/t/vms/\";\n"
	"state_dir = \"/tmp/t/state\";\n"
	"run_dir = \"/tmp/t/run\";\n"
	"ctl_group = \"ops\";\n"
	"mgmt_network = \"t-mgmt\";\n"
	"mgmt_subnet = \"10.99.0.0/16\";\n"
	"public_bridge = \"vbr-pub\";\n"
	"agent_listen = \"tcp://127.0.0.1:9000\";\n"
	"agent_endpoint = \"tcp://10.99.0.1:9000\";\n"
	"public_endpoint = \"tcp://[2001:db8::1]:9001\";\n"
	"image_catalog = \"/tmp/t/images.conf\";\n"
	"default_image = \"debian-13\";\n"
	"agent_binary = \"/tmp/t/tuap-agent\";\n"
	"mgmt_bridge = \"virbr-t\";\n"
	"seed_dir = \"/tmp/t/seed/\";\n"
	"apt_source = \"deb [trusted=yes] http://192.0.2.1:8080/ ./\";\n"
	"ssh_key_url = { gh = \"http://127.0.0.1:8/gh/%s\"; lp = \"http://127.0.0.1:8/lp/%s\"; };\n"
	"deadlines = { image = 1; disk = 2; seed = 3; define = 4; hello = 5; users = 6;\n"
	"  packages = 7; mail = 8; data = 9; make = 10; push = 11; };\n"
	"ssh = { client = \"/opt/ssh/bin/ssh\"; dir = \"/tmp/t/ssh/\"; connect_timeout = 3; };\n"
	"max_message = 266240L;\n"
	"data_chunk = 4096;\n"
	"data_window = 256;\n";

static void test_every_key(void **state)
{
	struct settings s;

	if (parse(every_key, &s) < 0)
		fail_msg("%s", errbuf);
	assert_string_equal(s.libvirt_uri, "qemu+ssh://hv1/system");
	assert_string_equal(s.virt_type, "qemu");
	assert_string_equal(s.pool_root, "/tmp/t/vms"); /* trailing slash dropped */
	assert_string_equal(s.state_dir, "/tmp/t/state");
	assert_string_equal(s.run_dir, "/tmp/t/run");
	assert_string_equal(s.ctl_group, "ops");
	assert_string_equal(s.mgmt_network, "t-mgmt");
	assert_string_equal(s.mgmt_subnet, "10.99.0.0/16");
	assert_string_equal(s.public_bridge, "vbr-pub");
	assert_string_equal(s.agent_listen, "tcp://127.0.0.1:9000");
	assert_string_equal(s.agent_endpoint, "tcp://10.99.0.1:9000");
	assert_string_equal(s.public_endpoint, "tcp://[2001:db8::1]:9001");
	assert_string_equal(s.image_catalog, "/tmp/t/images.conf");
	assert_string_equal(s.default_image, "debian-13");
	assert_string_equal(s.agent_binary, "/tmp/t/tuap-agent");
	assert_string_equal(s.mgmt_bridge, "virbr-t");
	assert_string_equal(s.seed_dir, "/tmp/t/seed");
	assert_string_equal(s.apt_source, "deb [trusted=yes] http://192.0.2.1:8080/ ./");
	assert_string_equal(s.ssh_key_url_gh, "http://127.0.0.1:8/gh/%s");
	assert_string_equal(s.ssh_key_url_lp, "http://127.0.0.1:8/lp/%s");
	assert_int_equal(s.deadlines.image, 1);
	assert_int_equal(s.deadlines.disk, 2);
	assert_int_equal(s.deadlines.seed, 3);
	assert_int_equal(s.deadlines.define, 4);
	assert_int_equal(s.deadlines.hello, 5);
	assert_int_equal(s.deadlines.users, 6);
	assert_int_equal(s.deadlines.packages, 7);
	assert_int_equal(s.deadlines.mail, 8);
	assert_int_equal(s.deadlines.data, 9);
	assert_int_equal(s.deadlines.make, 10);
	assert_int_equal(s.deadlines.push, 11);
	assert_string_equal(s.ssh_client, "/opt/ssh/bin/ssh");
	assert_string_equal(s.ssh_dir, "/tmp/t/ssh");
	assert_int_equal(s.ssh_connect_timeout, 3);
	assert_int_equal(s.max_message, 266240);
	assert_int_equal(s.data_chunk, 4096);
	assert_int_equal(s.data_window, 256);

	assert_int_equal(settings_deadline(&s, "image"), 1);
	assert_int_equal(settings_deadline(&s, "make"), 10);
	assert_int_equal(settings_deadline(&s, "hello"), 5);
	assert_int_equal(settings_deadline(&s, "push"), 11);
	assert_int_equal(settings_deadline(&s, "nonsense"), 0);
}

static void test_derived_endpoints(void **state)
{
	struct settings s;

	/* agent_endpoint follows mgmt_subnet and agent_listen's port when not given */
	assert_int_equal(parse("mgmt_subnet = \"10.1.2.0/24\";\n"
			       "agent_listen = \"tcp://*:7000\";\n",
			       &s),
			 0);
	assert_string_equal(s.agent_endpoint, "tcp://10.1.2.1:7000");
	assert_string_equal(s.public_endpoint, "tcp://10.1.2.1:7000");

	/* ssh.dir follows state_dir when not given */
	assert_int_equal(parse("state_dir = \"/srv/tuap-state\";\n", &s), 0);
	assert_string_equal(s.ssh_dir, "/srv/tuap-state/ssh");

	/* public_endpoint follows an explicit agent_endpoint */
	assert_int_equal(parse("agent_endpoint = \"tcp://hv.example.test:7807\";\n", &s), 0);
	assert_string_equal(s.agent_endpoint, "tcp://hv.example.test:7807");
	assert_string_equal(s.public_endpoint, "tcp://hv.example.test:7807");

	assert_int_equal(parse("public_endpoint = \"tcp://198.51.100.7:7807\";\n", &s), 0);
	assert_string_equal(s.agent_endpoint, "tcp://192.168.251.1:7807");
	assert_string_equal(s.public_endpoint, "tcp://198.51.100.7:7807");
}

static void test_unknown_keys(void **state)
{
	expect_error("virt_type = \"kvm\";\n\nbogus = 1;\n", "t.conf:3: bogus: unknown key");
	expect_error("deadlines = {\n  image = 5;\n  nap = 3;\n};\n",
		     "t.conf:3: deadlines.nap: unknown key");
	expect_error("ssh_key_url = { gh = \"https://x/%s\"; bb = \"https://y/%s\"; };\n",
		     "t.conf:1: ssh_key_url.bb: unknown key");
	/* a misspelt key is not silently ignored */
	expect_error("pool-root = \"/vms\";\n", "t.conf:1: pool-root: unknown key");
}

static void test_bad_types(void **state)
{
	expect_error("\npool_root = 5;\n", "t.conf:2: pool_root: must be a string");
	expect_error("max_message = \"1M\";\n", "t.conf:1: max_message: must be an integer");
	expect_error("data_window = 2.5;\n", "t.conf:1: data_window: must be an integer");
	expect_error("virt_type = [\"kvm\"];\n", "t.conf:1: virt_type: must be a string");
	expect_error("deadlines = 5;\n", "t.conf:1: deadlines: must be a group");
	expect_error("deadlines = { make = \"1h\"; };\n",
		     "t.conf:1: deadlines.make: must be an integer");
	expect_error("ssh_key_url = \"https://github.com/%s.keys\";\n",
		     "t.conf:1: ssh_key_url: must be a group");
	expect_error("libvirt_uri = true;\n", "t.conf:1: libvirt_uri: must be a string");
}

static void test_bad_values(void **state)
{
	expect_error("virt_type = \"xen\";\n", "virt_type: 'xen' is neither kvm nor qemu");
	expect_error("pool_root = \"vms\";\n", "pool_root: 'vms': it is not an absolute path");
	expect_error("pool_root = \"/vms/../etc\";\n",
		     "pool_root: '/vms/../etc': it has a '..' component");
	expect_error("libvirt_uri = \"system\";\n", "libvirt_uri: 'system' is not a libvirt URI");
	expect_error("mgmt_subnet = \"192.168.251.1/24\";\n", "mgmt_subnet: '192.168.251.1/24' "
							      "has host bits set");
	expect_error("mgmt_subnet = \"192.168.251.0\";\n", "is not an IPv4 subnet");
	expect_error("mgmt_subnet = \"10.0.0.0/31\";\n", "not between /8 and /30");
	expect_error("public_bridge = \"a-very-long-bridge\";\n",
		     "public_bridge: longer than 15 bytes");
	expect_error("public_bridge = \"br 0\";\n", "is not a network interface name");
	expect_error("agent_listen = \"udp://0.0.0.0:1\";\n", "agent_listen: 'udp://0.0.0.0:1'");
	expect_error("agent_listen = \"tcp://0.0.0.0:70000\";\n",
		     "the port must be a number from 1 to 65535");
	expect_error("agent_endpoint = \"tcp://0.0.0.0:7807\";\n",
		     "agent_endpoint: 'tcp://0.0.0.0:7807': agents cannot connect to a wildcard");
	expect_error("public_endpoint = \"tcp://[zz::1]:7807\";\n", "is not an IPv6 address");
	expect_error("ctl_group = \"Tuap\";\n", "ctl_group: 'Tuap' is not a group name");
	expect_error("mgmt_network = \"a/b\";\n", "mgmt_network: 'a/b' is not a libvirt network");
	expect_error("default_image = \"../x\";\n", "default_image: '../x' is not an image");
	expect_error("apt_source = \"http://x/ ./\";\n",
		     "apt_source: 'http://x/ ./' is not a sources");
	expect_error("apt_source = \"deb http://x/ ./\\ndeb http://y/ ./\";\n",
		     "apt_source: must be one line of printable ASCII");
	expect_error("mgmt_bridge = \"a-bridge-name-too-long\";\n", "mgmt_bridge: ");
	expect_error("ssh_key_url = { gh = \"https://github.com/keys\"; };\n",
		     "ssh_key_url.gh: 'https://github.com/keys' must hold %s");
	expect_error("ssh_key_url = { lp = \"https://x/%s/%d\"; };\n", "must hold %s");
	expect_error("ssh_key_url = { lp = \"ftp://x/%s\"; };\n", "is not an http(s) URL");
	expect_error("deadlines = { hello = 0; };\n", "deadlines.hello: 0 is out of range");
	expect_error("deadlines = { make = -5; };\n", "deadlines.make: -5 is out of range");
	expect_error("max_message = 100;\n", "max_message: 100 is out of range");
	/* only what the agent socket and the wire accept (regression: --check passed 65536 and
	 * 4M, then tuapd would not start; a data_chunk over 256 KiB could never be sent) */
	expect_error("max_message = 65536;\n",
		     "t.conf:1: max_message: 65536 is out of range (266240 to 1052672)");
	expect_error("max_message = 4194304;\n", "max_message: 4194304 is out of range");
	expect_error("\n\ndata_chunk = 1048576;\n",
		     "t.conf:3: data_chunk: 1048576 is out of range (4096 to 262144)");
	expect_error("data_window = 0;\n", "data_window: 0 is out of range (1 to 256)");
	expect_error("keep_jobs = 0;\n", "keep_jobs: 0 is out of range (1 to 1000)");
	expect_error(
		"run_dir = \"/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\";\n",
		"run_dir: too long for a socket path");
}

static void test_syntax_errors(void **state)
{
	expect_error("virt_type = \"kvm\";\nmax_message = ;\n", "t.conf:2: syntax error");
	expect_error("virt_type = \"kvm\";\nvirt_type = \"qemu\";\n",
		     "t.conf:2: duplicate setting name");
	expect_error("deadlines = { make = 1;\n", "t.conf:");
}

static void test_load_file(void **state)
{
	char dir[] = "/tmp/tuap-settings-XXXXXX";
	char path[256];
	struct settings s;
	struct tuap_err err = {0};
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/tuapd.conf", dir);

	assert_int_equal(settings_load(path, &s, &err), -1);
	err_str(&err, errbuf, sizeof(errbuf));
	assert_non_null(strstr(errbuf, path));

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("# test\npool_root = \"/tmp/x\";\n\nnope = 1;\n", f);
	fclose(f);
	assert_int_equal(settings_load(path, &s, &err), -1);
	err_str(&err, errbuf, sizeof(errbuf));
	snprintf(path + strlen(path), sizeof(path) - strlen(path), ":4: nope: unknown key");
	if (!strstr(errbuf, path))
		fail_msg("expected '%s' in '%s'", path, errbuf);
	path[strlen(path) - strlen(":4: nope: unknown key")] = '\0';

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("pool_root = \"/tmp/x\";\n", f);
	fclose(f);
	assert_int_equal(settings_load(path, &s, &err), 0);
	assert_string_equal(s.pool_root, "/tmp/x");
	assert_string_equal(s.virt_type, "kvm");

	/* @include is resolved next to the file, and errors name the included file */
	char inc[300];
	snprintf(inc, sizeof(inc), "%s/extra.conf", dir);
	f = fopen(inc, "w");
	assert_non_null(f);
	fputs("virt_type = \"qemu\";\n\nwhat = 1;\n", f);
	fclose(f);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("pool_root = \"/tmp/x\";\n@include \"extra.conf\"\n", f);
	fclose(f);
	assert_int_equal(settings_load(path, &s, &err), -1);
	err_str(&err, errbuf, sizeof(errbuf));
	assert_non_null(strstr(errbuf, "extra.conf:3: what: unknown key"));
	f = fopen(inc, "w");
	assert_non_null(f);
	fputs("virt_type = \"qemu\";\n", f);
	fclose(f);
	assert_int_equal(settings_load(path, &s, &err), 0);
	assert_string_equal(s.virt_type, "qemu");
	unlink(inc);
	unlink(path);
	rmdir(dir);
}

static void test_derived_paths(void **state)
{
	struct settings s;
	struct tuap_err err = {0};
	char out[64];

	settings_defaults(&s);
	assert_int_equal(settings_images_dir(&s, out, sizeof(out), &err), 0);
	assert_string_equal(out, "/vms/images");
	assert_int_equal(settings_domain_dir(&s, "example.test", out, sizeof(out), &err), 0);
	assert_string_equal(out, "/vms/example.test");
	assert_int_equal(settings_domain_dir(&s, "../etc", out, sizeof(out), &err), -1);
	assert_int_equal(settings_domain_dir(&s, "images", out, sizeof(out), &err), -1);
	assert_int_equal(settings_ctl_socket(&s, out, sizeof(out), &err), 0);
	assert_string_equal(out, "/run/tuap/ctl.sock");
	assert_int_equal(settings_ctl_socket(&s, out, 10, &err), -1);

	assert_int_equal(parse("pool_root = \"/\";\n", &s), 0);
	assert_int_equal(settings_images_dir(&s, out, sizeof(out), &err), 0);
	assert_string_equal(out, "/images");
}

static void test_hypervisors(void **state)
{
	struct settings s, *one = malloc(sizeof(*one));

	(void)state;
	assert_non_null(one);
	/* without the list: one hypervisor, "local", of the top-level keys; no capacity check */
	assert_int_equal(parse("libvirt_uri = \"qemu:///session\";\nmgmt_subnet = "
			       "\"10.7.0.0/24\";\n",
			       one),
			 0);
	assert_int_equal(one->n_hv, 1);
	assert_false(one->hv_listed);
	assert_string_equal(one->hv[0].name, "local");
	assert_string_equal(one->hv[0].libvirt_uri, "qemu:///session");
	assert_string_equal(one->hv[0].agent_endpoint, "tcp://10.7.0.1:7807");
	free(one);

	assert_int_equal(
		parse("pool_root = \"/srv/vms\";\n"
		      "hypervisors = (\n"
		      "  { name = \"hv1\"; },\n"
		      "  { name = \"hv2\"; libvirt_uri = \"qemu+ssh://tuap@hv2/system\";\n"
		      "    agent_endpoint = \"tcp://203.0.113.1:7807\"; pool_root = \"/vms/\";\n"
		      "    mgmt_subnet = \"10.9.0.0/24\"; virt_type = \"qemu\";\n"
		      "    reserve_memory = 0; reserve_cpus = 2; reserve_disk = 50;\n"
		      "    cpu_overcommit = 2.5; max_guests = 20; labels = [\"ssd\", \"eu\"]; },\n"
		      "  { name = \"hv3\"; libvirt_uri = \"qemu:///system?socket=/x\";\n"
		      "    mgmt_subnet = \"10.8.0.0/24\"; cpu_overcommit = 3; }\n"
		      ");\n",
		      &s),
		0);
	assert_true(s.hv_listed);
	assert_int_equal(s.n_hv, 3);
	assert_string_equal(s.hv[0].libvirt_uri, "qemu:///system");
	assert_string_equal(s.hv[0].pool_root, "/srv/vms");
	assert_string_equal(s.hv[0].agent_endpoint, s.agent_endpoint);
	assert_int_equal(s.hv[0].reserve_memory_mib, 2048);
	assert_int_equal(s.hv[0].line, 3);
	assert_false(s.hv[0].remote);
	assert_true(s.hv[1].remote);
	assert_string_equal(s.hv[1].pool_root, "/vms");
	assert_string_equal(s.hv[1].virt_type, "qemu");
	assert_string_equal(s.hv[1].mgmt_network, s.mgmt_network);
	assert_int_equal(s.hv[1].reserve_cpus, 2);
	assert_int_equal(s.hv[1].reserve_disk_gib, 50);
	assert_true(s.hv[1].cpu_overcommit > 2.49 && s.hv[1].cpu_overcommit < 2.51);
	assert_int_equal(s.hv[1].max_guests, 20);
	assert_int_equal(s.hv[1].n_labels, 2);
	assert_string_equal(s.hv[1].labels[1], "eu");
	/* its own subnet on this host: tuapd at that gateway */
	assert_false(s.hv[2].remote);
	assert_string_equal(s.hv[2].agent_endpoint, "tcp://10.8.0.1:7807");
	assert_ptr_equal(settings_hv_find(&s, "hv3"), &s.hv[2]);
	assert_null(settings_hv_find(&s, "hv4"));

	expect_error("hypervisors = ();\n", "t.conf:1: hypervisors: 0 entries; one to 16");
	expect_error("hypervisors = ( { libvirt_uri = \"qemu:///system\"; } );\n",
		     "t.conf:1: hypervisors[0]: has no name");
	expect_error("hypervisors = (\n { name = \"a\"; },\n { name = \"a\"; libvirt_uri = "
		     "\"qemu:///x\"; } );\n",
		     "t.conf:3: hypervisors[1]: a second hypervisor named a");
	expect_error("hypervisors = (\n { name = \"a\"; },\n { name = \"b\"; } );\n",
		     "t.conf:3: hypervisors: a and b have the same libvirt_uri qemu:///system");
	expect_error("hypervisors = (\n { name = \"a\";\n  disk = 3; } );\n",
		     "t.conf:3: hypervisors[0].disk: unknown key");
	expect_error("hypervisors = (\n { name = \"a\"; libvirt_uri = \"qemu+ssh://h/system\"; "
		     "} );\n",
		     "t.conf:2: hypervisors: a (qemu+ssh://h/system) is remote and has no "
		     "agent_endpoint");
	expect_error("hypervisors = ( { name = \"a\"; labels = [\"s s\"]; } );\n",
		     "hypervisors[0].labels: 's s' is not a label");
	expect_error("hypervisors = ( { name = \"a\"; cpu_overcommit = 0.5; } );\n",
		     "hypervisors[0].cpu_overcommit: 0.5 is out of range (1 to 64)");
	expect_error("hypervisors = ( { name = \"a\"; agent_endpoint = \"tcp://0.0.0.0:1\"; } );\n",
		     "hypervisors[0].agent_endpoint: 'tcp://0.0.0.0:1': agents cannot connect to a "
		     "wildcard address");
	expect_error("hypervisors = { name = \"a\"; };\n", "hypervisors: must be a list");
}

static void test_ssh_key_url(void **state)
{
	struct settings s;
	struct tuap_err err = {0};
	char out[128];

	settings_defaults(&s);
	assert_int_equal(settings_ssh_key_url(&s, "gh:teodesian", out, sizeof(out), &err), 0);
	assert_string_equal(out, "https://github.com/teodesian.keys");
	assert_int_equal(settings_ssh_key_url(&s, "lp:some.one", out, sizeof(out), &err), 0);
	assert_string_equal(out, "https://launchpad.net/~some.one/+sshkeys");
	assert_int_equal(settings_ssh_key_url(&s, "gh:a/../b", out, sizeof(out), &err), -1);
	assert_int_equal(settings_ssh_key_url(&s, "gh:%s", out, sizeof(out), &err), -1);
	assert_int_equal(settings_ssh_key_url(&s, "gh:", out, sizeof(out), &err), -1);
	assert_int_equal(settings_ssh_key_url(&s, "xx:user", out, sizeof(out), &err), -1);
	assert_int_equal(settings_ssh_key_url(&s, "gh:user", out, 10, &err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_and_example_are_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_derived_endpoints),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_bad_types),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_derived_paths),
		cmocka_unit_test(test_ssh_key_url),
		cmocka_unit_test(test_hypervisors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
