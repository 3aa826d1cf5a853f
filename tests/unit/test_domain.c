/*
 * Unit tests for domain.c: every provision.conf key, the defaults, the
 * network cross-checks, warnings, upstream's own example (tests/data/upstream/provision.conf,
 * verbatim), upstream's MAC scheme, and the corpus of bad files in
 * tests/data/bad/conf (each NAME.conf with NAME.expect, the exact first error line).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "corpus_util.h"
#include "domain.h"
#include "fsutil.h"

#define PATH "provision.conf"
#define NAME "example.test"

struct parsed {
	struct domain_conf c;
	struct diags d;
	int rc;
	char out[16384]; /* diags as printed */
};

static struct parsed *parse(const char *text)
{
	struct parsed *p = calloc(1, sizeof(*p));
	FILE *f;

	assert_non_null(p);
	diags_init(&p->d);
	p->rc = domain_conf_parse(PATH, NAME, text, strlen(text), &p->c, &p->d);
	f = fmemopen(p->out, sizeof(p->out), "w");
	assert_non_null(f);
	diags_print(&p->d, f);
	fclose(f);
	return p;
}

static void done(struct parsed *p)
{
	domain_conf_free(&p->c);
	diags_free(&p->d);
	free(p);
}

/* Parses text, expects no error and no warning. */
static struct parsed *good(const char *text)
{
	struct parsed *p = parse(text);

	if (p->rc != 0 || p->d.warnings)
		fail_msg("unexpected diagnostics for:\n%s\n---\n%s", text, p->out);
	return p;
}

/* Parses text, expects an error and the exact line among the diagnostics. */
static void bad(const char *text, const char *line)
{
	struct parsed *p = parse(text);
	char want[1024];

	snprintf(want, sizeof(want), "%s\n", line);
	if (p->rc != -1 || !strstr(p->out, want))
		fail_msg("for:\n%s\n---\nwanted: %s\ngot:\n%s", text, line, p->out);
	done(p);
}

#define NET "ips=192.0.2.10/24\ngateway=192.0.2.1\n"

static char *read_src(const char *rel, size_t *len)
{
	const char *src = getenv("TUAP_SRC");
	char path[4096];
	struct tuap_err e;
	char *text;

	assert_non_null(src);
	snprintf(path, sizeof(path), "%s/%s", src, rel);
	text = fs_read_file(path, 1 << 20, len, &e);
	if (!text)
		fail_msg("%s", e.msg);
	return text;
}

static void test_upstream_example(void **state)
{
	size_t len;
	char *text = read_src("tests/data/upstream/provision.conf", &len);
	struct parsed *p = good(text);
	struct domain_conf *c = &p->c;

	assert_string_equal(c->name, NAME);
	assert_string_equal(c->conf_path, PATH);
	assert_int_equal(c->n_ips, 1);
	assert_int_equal(c->ips[0].family, AF_INET);
	assert_string_equal(c->ips[0].text, "192.168.1.1/24");
	assert_false(c->ips[0].prefix_given);
	assert_string_equal(c->gateway.text, "192.168.1.254/24");
	assert_int_equal(c->gateway6.family, 0);
	assert_int_equal(c->n_resolvers, 2);
	assert_string_equal(c->resolvers[0].text, "192.168.1.253/24");
	assert_string_equal(c->resolvers[1].text, "8.8.8.8/24");
	assert_string_equal(c->image, "https://cloud-images.ubuntu.com/noble/current/"
				      "noble-server-cloudimg-amd64.img");
	assert_int_equal(c->image_kind, IMAGE_URL);
	assert_int_equal(c->size, 42949672960ULL);
	assert_int_equal(c->n_packages, 3);
	assert_string_equal(c->packages[0], "git");
	assert_string_equal(c->packages[1], "tig");
	assert_string_equal(c->packages[2], "perlbrew");
	assert_string_equal(c->contact_email, "george@troglodyne.net");
	/* Defaults. */
	assert_string_equal(c->admin_user, "root");
	assert_int_equal(c->memory_mib, 2048);
	assert_int_equal(c->cpus, 2);
	assert_string_equal(c->cpu_mode, "host-passthrough");
	assert_string_equal(c->depends_on, "");
	done(p);
	free(text);
}

/* The E3 version adds memory, cpus and distro and comments out the rest. */
static void test_upstream_later_keys(void **state)
{
	struct parsed *p = good("ips=192.168.1.1\ngateway=192.168.1.254\nmemory=4092\ncpus=2\n"
				"distro=ubuntu\n#hypervisor=hv1\n#disk_cache=none\n"
				"#dhcp_devname=ens3\n#bridge_devname=ens4\n");

	assert_int_equal(p->c.memory_mib, 4092);
	assert_string_equal(p->c.distro, "ubuntu");
	assert_string_equal(p->c.hypervisor, "");
	done(p);
}

static void test_defaults(void **state)
{
	struct parsed *p = good(NET);
	struct domain_conf *c = &p->c;

	assert_int_equal(c->size, DOMAIN_DEFAULT_SIZE);
	assert_int_equal(c->size, 40ULL << 30);
	assert_string_equal(c->image, "");
	assert_int_equal(c->image_kind, IMAGE_CATALOG);
	assert_int_equal(c->n_packages, 0);
	assert_int_equal(c->n_resolvers, 0);
	assert_string_equal(c->contact_email, "");
	assert_string_equal(c->admin_user, "root");
	assert_int_equal(c->memory_mib, DOMAIN_DEFAULT_MEMORY_MIB);
	assert_int_equal(c->cpus, DOMAIN_DEFAULT_CPUS);
	assert_string_equal(c->cpu_mode, "host-passthrough");
	assert_string_equal(c->distro, "");
	assert_string_equal(c->pre_make_script, "");
	assert_string_equal(c->hypervisor, "");
	assert_string_equal(c->dhcp_devname, "");
	assert_string_equal(c->bridge_devname, "");
	done(p);
	/* An empty value is the same as leaving the key out. */
	p = good(NET "size=\nmemory=\"\"\nimage=\npackages=\nadmin_user=\n");
	assert_int_equal(p->c.size, DOMAIN_DEFAULT_SIZE);
	assert_int_equal(p->c.memory_mib, DOMAIN_DEFAULT_MEMORY_MIB);
	assert_string_equal(p->c.admin_user, "root");
	done(p);
}

static void test_every_key(void **state)
{
	struct parsed *p = good("ips=192.0.2.10/24, 192.0.2.11\n"
				"gateway=192.0.2.1\n"
				"resolvers=192.0.2.53, 2001:db8::53, 127.0.0.53\n"
				"size=10G\n"
				"image=debian-12\n"
				"packages=nginx, libc6:amd64, tzdata=2024a-1, gcc-c++\n"
				"contact_email=webmaster@example.test\n"
				"depends_on=db.example.test\n"
				"admin_user=deploy\n"
				"memory=4G\n"
				"cpus=256\n"
				"cpu_mode=host-model\n"
				"distro=debian\n"
				"pre_make_script=scripts/pre-make.sh\n"
				"hypervisor=hv1.example\n"
				"hypervisor_labels=ssd, eu\n"
				"dhcp_devname=ens3\n"
				"bridge_devname=enp0s4-12345678\n");
	struct domain_conf *c = &p->c;

	assert_int_equal(c->n_ips, 2);
	assert_true(c->ips[0].prefix_given);
	assert_string_equal(c->ips[1].text, "192.0.2.11/24");
	assert_int_equal(c->n_resolvers, 3);
	assert_int_equal(c->resolvers[1].family, AF_INET6);
	assert_int_equal(c->size, 10ULL << 30);
	assert_string_equal(c->image, "debian-12");
	assert_int_equal(c->image_kind, IMAGE_CATALOG);
	assert_int_equal(c->n_packages, 4);
	assert_string_equal(c->packages[2], "tzdata=2024a-1");
	assert_string_equal(c->contact_email, "webmaster@example.test");
	assert_string_equal(c->depends_on, "db.example.test");
	assert_string_equal(c->admin_user, "deploy");
	assert_int_equal(c->memory_mib, 4096);
	assert_int_equal(c->cpus, 256);
	assert_string_equal(c->cpu_mode, "host-model");
	assert_string_equal(c->distro, "debian");
	assert_string_equal(c->pre_make_script, "scripts/pre-make.sh");
	assert_string_equal(c->hypervisor, "hv1.example");
	assert_int_equal(c->n_hypervisor_labels, 2);
	assert_string_equal(c->hypervisor_labels[1], "eu");
	assert_string_equal(c->dhcp_devname, "ens3");
	assert_string_equal(c->bridge_devname, "enp0s4-12345678");
	done(p);
}

static void test_memory_cpus_modes(void **state)
{
	static const struct {
		const char *v;
		unsigned mib;
	} mem[] = {{"4096", 4096},   {"512M", 512},   {"1.5G", 1536},
		   {"131072K", 128}, {"1T", 1048576}, {"2GiB", 2048}};
	static const char *const modes[] = {"host-passthrough", "host-model", "maximum", "custom"};
	char text[256];
	struct parsed *p;

	for (size_t i = 0; i < sizeof(mem) / sizeof(mem[0]); i++) {
		snprintf(text, sizeof(text), NET "memory=%s\n", mem[i].v);
		p = good(text);
		assert_int_equal(p->c.memory_mib, mem[i].mib);
		done(p);
	}
	for (size_t i = 0; i < 4; i++) {
		snprintf(text, sizeof(text), NET "cpu_mode=%s\n", modes[i]);
		p = good(text);
		assert_string_equal(p->c.cpu_mode, modes[i]);
		done(p);
	}
	p = good(NET "cpus=1\n");
	assert_int_equal(p->c.cpus, 1);
	done(p);
	bad(NET "memory=1000K\n", PATH ":3: memory: '1000K' is not a whole number of MiB");
	bad(NET "memory=64\n", PATH ":3: memory: '64' is 64 MiB, too little to boot a guest (at "
				    "least 128 MiB; a number without a unit is MiB: did you mean "
				    "64G?)");
	bad(NET "memory=100M\n",
	    PATH ":3: memory: '100M' is 100 MiB, too little to boot a guest (at least 128 MiB)");
	bad(NET "memory=17T\n", PATH ":3: memory: '17T' is more than 16 TiB");
	bad(NET "cpus=+2\n", PATH ":3: cpus: '+2' is not a number of virtual CPUs from 1 to 256");
	bad(NET "cpus=2.0\n", PATH ":3: cpus: '2.0' is not a number of virtual CPUs from 1 to 256");
	bad(NET "cpus=257\n", PATH ":3: cpus: '257' is not a number of virtual CPUs from 1 to 256");
	bad(NET "cpu_mode=HOST-MODEL\n", PATH ":3: cpu_mode: 'HOST-MODEL' is not a CPU mode (use "
					      "host-passthrough, host-model, maximum or custom)");
}

static void test_image(void **state)
{
	static const struct {
		const char *v;
		enum image_kind kind;
	} ok[] = {
		{"debian-12", IMAGE_CATALOG},
		{"ubuntu-24.04_min", IMAGE_CATALOG},
		{"/srv/images/noble.qcow2", IMAGE_PATH},
		{"https://cloud-images.ubuntu.com/noble/current/noble.img", IMAGE_URL},
		{"HTTP://example.com:8080/x.img?sig=a%20b#frag", IMAGE_URL},
		{"https://[2001:db8::1]:8443/x.img", IMAGE_URL},
		{"http://192.0.2.7/x.img", IMAGE_URL},
	};
	char text[512];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct parsed *p;

		snprintf(text, sizeof(text), NET "image=%s\n", ok[i].v);
		p = good(text);
		assert_string_equal(p->c.image, ok[i].v);
		assert_int_equal(p->c.image_kind, ok[i].kind);
		done(p);
	}
	bad(NET "image=images/x.img\n", PATH ":3: image: 'images/x.img' is not an image: a path "
					     "must be absolute (start with '/')");
	bad(NET "image=Debian\n",
	    PATH ":3: image: 'Debian' is not an image: a catalog name is "
		 "lower-case letters, digits and . _ - (e.g. debian-12); a path "
		 "starts with '/', a URL with https://");
	bad(NET "image=https://user:pw@example.com/x\n",
	    PATH ":3: image: 'https://user:pw@example.com/x' is not an image: the URL holds a user "
		 "name or password, which would end up in logs");
	bad(NET "image=https:///x.img\n",
	    PATH ":3: image: 'https:///x.img' is not an image: the URL has no host");
	bad(NET "image=\"https://exa mple.com/x\"\n",
	    PATH ":3: image: 'https://exa mple.com/x' is not an image: the URL holds a space");
	bad(NET "image=https://example.com:0/x\n",
	    PATH ":3: image: 'https://example.com:0/x' is not an image: the URL's port is not "
		 "from 1 to 65535");
	bad(NET "image=https://example.com:99999/x\n",
	    PATH ":3: image: 'https://example.com:99999/x' is not an image: the URL's port is not "
		 "from 1 to 65535");
	bad(NET "image=https://ex_ample.com/x\n",
	    PATH ":3: image: 'https://ex_ample.com/x' is not an image: the URL's host holds '_'");
	bad(NET "image=https://[::1/x\n",
	    PATH ":3: image: 'https://[::1/x' is not an image: the URL's IPv6 host has no closing "
		 "']'");
	bad(NET "image=/srv/images/\n",
	    PATH ":3: image: '/srv/images/' is not an image: the path ends with '/' (a directory)");
}

static void test_paths_and_names(void **state)
{
	struct parsed *p = good(NET "pre_make_script=./pre.sh\n");

	assert_string_equal(p->c.pre_make_script, "./pre.sh");
	done(p);
	bad(NET "pre_make_script=a/../../b\n",
	    PATH ":3: pre_make_script: 'a/../../b' leaves the data tree through '..'");
	bad(NET "pre_make_script=scripts/\n",
	    PATH ":3: pre_make_script: 'scripts/' names a directory, not a script");
	bad(NET "pre_make_script=.\n", PATH ":3: pre_make_script: '.' names a directory, not a "
					    "script");
	bad(NET "pre_make_script=..\n",
	    PATH ":3: pre_make_script: '..' leaves the data tree through '..'");
	bad(NET "bridge_devname=ens4\ndhcp_devname=.\n",
	    PATH ":4: dhcp_devname: '.' is not a network interface name (1 to 15 characters, e.g. "
		 "ens4)");
	bad(NET "bridge_devname=\"br 0\"\n",
	    PATH ":3: bridge_devname: 'br 0' is not a network interface name: it holds a space");
	bad(NET "bridge_devname=br:0\n",
	    PATH ":3: bridge_devname: 'br:0' is not a network interface name: it holds ':'");
	bad(NET "admin_user=deploy-user-with-a-name-longer-than-32\n",
	    PATH ":3: admin_user: 'deploy-user-with-a-name-longer-than-32' is not a user name: it "
		 "is longer than 32 characters");
	bad(NET "depends_on=db_1.example\n",
	    PATH ":3: depends_on: 'db_1.example' is neither a domain name nor an IP address: it "
		 "holds '_' (only a-z, 0-9, '-' and '.')");
	bad(NET "depends_on=EXAMPLE.test\n",
	    PATH ":3: depends_on: 'EXAMPLE.test' is neither a domain name nor an IP address: it "
		 "holds the upper-case 'E' (domain names are lower case)");
	bad(NET "hypervisor=-hv\n",
	    PATH ":3: hypervisor: '-hv' is not a hypervisor name (letters, digits and . _ -)");
	bad(NET "hypervisor_labels=ssd, fast disk\n",
	    PATH ":3: hypervisor_labels: 'fast disk' is not a label (1 to 63 of letters, digits "
		 "and . _ -)");
	bad(NET "contact_email=root@localhost\n",
	    PATH ":3: contact_email: 'root@localhost' is not a mail address: the domain after "
		 "'@' has no dot (e.g. contact_email=admin@example.com)");
	bad(NET "contact_email=a@b.c, d@e.f\n",
	    PATH ":3: contact_email: takes one value, got 2 (a comma makes a list; put the value "
		 "in double quotes if the comma belongs to it)");
}

static void test_lists(void **state)
{
	struct parsed *p;

	bad(NET "resolvers=1.1.1.1,1.0.0.1,8.8.8.8,8.8.4.4,9.9.9.9,149.112.112.112,"
		"208.67.222.222,208.67.220.220,94.140.14.14\n",
	    PATH ":3: resolvers: 9 resolvers; at most 8");
	bad(NET "resolvers=0.0.0.0\n",
	    PATH ":3: resolvers: 0.0.0.0 is in 0.0.0.0/8, which holds no hosts");
	bad(NET "resolvers=192.0.2.53/24\n",
	    PATH ":3: resolvers: '192.0.2.53/24' is not a valid address: it has a /prefix, which "
		 "does not belong here (e.g. resolvers=192.0.2.53, 9.9.9.9)");
	bad(NET "packages=git tig\n", PATH ":3: packages: 'git tig' is not a package name: it "
					   "holds a space (separate packages with commas)");
	bad(NET "packages=$(reboot)\n",
	    PATH ":3: packages: '$(reboot)' is not a package name: it must start with a letter or "
		 "digit");
	/* Every bad item is reported, and the good ones are kept. */
	p = parse(NET "packages=git, a|b, tig, c>d\n");
	assert_int_equal(p->rc, -1);
	assert_int_equal(p->d.errors, 2);
	assert_int_equal(p->c.n_packages, 2);
	done(p);
	p = parse(NET "packages=git, tig, git\nresolvers=192.0.2.53, 192.0.2.53\n");
	assert_int_equal(p->rc, 0);
	assert_int_equal(p->d.warnings, 2);
	assert_non_null(strstr(p->out, PATH ":3: packages: warning: git is listed twice\n"));
	assert_non_null(
		strstr(p->out, PATH ":4: resolvers: warning: 192.0.2.53 is listed twice\n"));
	assert_int_equal(p->c.n_packages, 2);
	assert_int_equal(p->c.n_resolvers, 1);
	done(p);
	bad("ips=192.0.2.10, 192.0.2.10\ngateway=192.0.2.1\n",
	    PATH ":1: ips: 192.0.2.10 is listed twice");
}

static void test_network(void **state)
{
	struct parsed *p;

	/* Dual stack: gateway is IPv4, gateway6 IPv6. */
	p = good("ips=192.0.2.10/24, 2001:db8::10/64\ngateway=192.0.2.1\n"
		 "gateway6=2001:db8::1\n");
	assert_int_equal(p->c.gateway.family, AF_INET);
	assert_int_equal(p->c.gateway6.family, AF_INET6);
	assert_string_equal(p->c.gateway6.text, "2001:db8::1/64");
	done(p);
	/* IPv6 only: the IPv6 gateway goes in gateway; a link-local router is fine. */
	p = good("ips=2001:DB8::10\ngateway=2001:db8::1\n");
	assert_string_equal(p->c.ips[0].text, "2001:db8::10/64");
	assert_int_equal(p->c.gateway.family, AF_INET6);
	done(p);
	done(good("ips=2001:db8::10/64\ngateway=fe80::1\n"));
	done(good("ips=192.0.2.10/24, 2001:db8::10/64\ngateway=192.0.2.1\ngateway6=fe80::1\n"));
	/* A prefix makes the subnet larger than the default /24. */
	done(good("ips=10.1.2.3/16\ngateway=10.1.0.1\n"));
	/* /31 point-to-point: no network or broadcast address. */
	done(good("ips=192.0.2.0/31\ngateway=192.0.2.1\n"));
	/* Any of several addresses may hold the gateway's subnet. */
	done(good("ips=198.51.100.7/24, 192.0.2.10/24\ngateway=192.0.2.1\n"));
	/* depends_on alone is enough: the site goes on an existing host. */
	p = good("depends_on=192.0.2.5\n");
	assert_int_equal(p->c.n_ips, 0);
	assert_string_equal(p->c.depends_on, "192.0.2.5");
	done(p);
	done(good("depends_on=db.example.test\n" NET));

	bad("ips=192.0.2.10/32\ngateway=192.0.2.1\n",
	    PATH ":2: gateway: 192.0.2.1 is outside the subnet of every IPv4 address in ips "
		 "(192.0.2.10/32); fix the gateway, or if the subnet is larger, write its prefix, "
		 "e.g. ips=192.0.2.10/28");
	bad("ips=192.0.2.10/24\ngateway=203.0.113.1\n",
	    PATH ":2: gateway: 203.0.113.1 is outside the subnet of every IPv4 address in ips "
		 "(192.0.2.0/24); fix the gateway");
	bad("ips=2001:db8::10\ngateway=2001:db9::1\n",
	    PATH ":2: gateway: 2001:db9::1 is outside the subnet of every IPv6 address in ips "
		 "(2001:db8::/64: no prefix given, /64 assumed); fix the gateway, or if the subnet "
		 "is larger, write its prefix, e.g. ips=2001:db8::10/31");
	bad("ips=192.0.2.10/24\ngateway=192.0.2.255\n",
	    PATH ":2: gateway: 192.0.2.255 is the broadcast address of 192.0.2.0/24, not a router");
	bad("ips=192.0.2.10/24\ngateway=192.0.2.0\n",
	    PATH ":2: gateway: 192.0.2.0 is the network address of 192.0.2.0/24, not a router");
	bad("ips=192.0.2.255/24\ngateway=192.0.2.1\n",
	    PATH ":1: ips: 192.0.2.255/24 is the broadcast address of 192.0.2.0/24, not a host "
		 "address");
	bad("ips=192.0.2.10/0\ngateway=192.0.2.1\n",
	    PATH ":1: ips: 192.0.2.10/0 has the prefix /0, which is not a subnet");
	bad("ips=127.0.0.2\ngateway=127.0.0.1\n", PATH ":1: ips: 127.0.0.2 is a loopback address");
	bad("ips=::1\ngateway=::2\n", PATH ":1: ips: ::1 is the loopback address");
	bad("ips=224.0.0.5\ngateway=192.0.2.1\n",
	    PATH ":1: ips: 224.0.0.5 is a multicast or reserved address");
	bad("ips=ff02::1\ngateway=fe80::1\n", PATH ":1: ips: ff02::1 is a multicast address");
	bad("ips=192.0.2.10\ngateway=192.0.2.1/24\n",
	    PATH ":2: gateway: '192.0.2.1/24' is not a valid address: it has a /prefix, which "
		 "does not belong here (e.g. gateway=192.0.2.1)");
	bad("ips=2001:db8::10\n", PATH ":1: gateway: required when ips is set, e.g. "
				       "gateway=2001:db8::1");
	bad("ips=192.0.2.10/24, 2001:db8::10/64\ngateway=2001:db8::1\n",
	    PATH ":2: gateway: ips holds IPv4 and IPv6 addresses, so gateway must be the IPv4 "
		 "gateway and gateway6 the IPv6 one");
	bad("ips=2001:db8::10/64\ngateway=2001:db8::1\ngateway6=2001:db8::2\n",
	    PATH ":3: gateway6: only used next to an IPv4 gateway; put the IPv6 gateway in "
		 "'gateway'");
	bad("ips=192.0.2.10/24\ngateway=192.0.2.1\ngateway6=2001:db8::1\n",
	    PATH ":3: gateway6: 2001:db8::1 is IPv6, but ips holds no IPv6 address");
	bad("depends_on=db.example.test\ngateway=192.0.2.1\n",
	    PATH ":2: gateway: set, but ips is not: a gateway goes with static addresses");
	bad("ips=\ngateway=192.0.2.1\n",
	    PATH ":1: ips: required: the guest's static address(es), e.g. ips=192.0.2.10/24 (or "
		 "set depends_on to provision onto an existing host)");
}

static void test_sizes(void **state)
{
	struct parsed *p = good(NET "size=1M\n");

	assert_int_equal(p->c.size, 1ULL << 20);
	done(p);
	p = good(NET "size=\"1.5 TiB\"\n");
	assert_int_equal(p->c.size, 3ULL << 39);
	done(p);
	bad(NET "size=1023K\n",
	    PATH ":3: size: '1023K' is too small for a disk (at least 1M; try 40G)");
	bad(NET "size=1\\\\nG\n", PATH ":3: size: '1?G' is not a size: '?G' is not a unit (use "
				       "K, M, G or T) (try 40G or a number of bytes)");
	bad(NET "size=-1G\n", PATH ":3: size: '-1G' is not a size: it is negative (try 40G or a "
				   "number of bytes)");
	bad(NET "size=16777216T\n", PATH ":3: size: '16777216T' is not a size: it is too large "
					 "(try 40G or a number of bytes)");
}

static void test_syntaxes(void **state)
{
	static const char *const texts[] = {
		"ips=192.0.2.10/24\ngateway=192.0.2.1\npackages=git, tig\n",
		("# INI with the default block named\n[default]\nips = 192.0.2.10/24\n"
		 "gateway = 192.0.2.1\npackages = git, tig\n"),
		"ips: 192.0.2.10/24\ngateway: 192.0.2.1\npackages: git, tig\n",
		"ips 192.0.2.10/24\ngateway 192.0.2.1\npackages git, tig\n",
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct parsed *p = good(texts[i]);

		assert_int_equal(p->c.n_ips, 1);
		assert_string_equal(p->c.gateway.text, "192.0.2.1/24");
		assert_int_equal(p->c.n_packages, 2);
		done(p);
	}
}

static void test_warnings(void **state)
{
	struct parsed *p = parse("size=10G\n" NET "size=20G\nship_logs_to=localhost\n"
				 "pkey_loc=/home/me/.ssh/id_rsa\n");

	assert_int_equal(p->rc, 0);
	assert_int_equal(p->d.warnings, 3);
	assert_int_equal(p->c.size, 20ULL << 30);
	assert_non_null(strstr(p->out, PATH ":4: size: warning: also set on line 1; this line "
					    "wins (the last one does, as in Config::Simple)\n"));
	assert_non_null(strstr(p->out, PATH ":5: ship_logs_to: warning: obsolete key, ignored: "
					    "upstream read it in one version and never used it"));
	assert_non_null(strstr(p->out,
			       PATH ":6: pkey_loc: warning: obsolete key, ignored: tuap "
				    "reaches existing hosts with the operator's own SSH key"));
	done(p);
	/* The top of an INI file and [default] are one block. */
	p = parse("ips=192.0.2.9\n[default]\nips=192.0.2.10/24\ngateway=192.0.2.1\n");
	assert_int_equal(p->rc, 0);
	assert_non_null(strstr(p->out, PATH ":3: ips: warning: also set on line 1"));
	assert_string_equal(p->c.ips[0].text, "192.0.2.10/24");
	done(p);
	/* Only the value that wins is checked. */
	p = parse("cpus=lots\ncpus=4\n" NET);
	assert_int_equal(p->rc, 0);
	assert_int_equal(p->c.cpus, 4);
	done(p);
}

static void test_unknown_keys(void **state)
{
	bad(NET "IPS=192.0.2.10\n", PATH ":3: IPS: unknown key 'IPS' (did you mean 'ips'?)");
	bad(NET "gatway6=2001:db8::1\n",
	    PATH ":3: gatway6: unknown key 'gatway6' (did you mean 'gateway6'?)");
	bad(NET "contact-email=a@b.example\n",
	    PATH ":3: contact-email: unknown key 'contact-email' (did you mean 'contact_email'?)");
	bad(NET "mmeory=4G\n", PATH ":3: mmeory: unknown key 'mmeory' (did you mean 'memory'?)");
	bad(NET "disk_iothreads=1\n",
	    PATH ":3: disk_iothreads: unknown key 'disk_iothreads' (provision.conf(5) lists the "
		 "keys)");
	/* Control characters never reach a message. */
	bad(NET "a\001b=1\n", PATH ":3: a?b: unknown key 'a?b' (provision.conf(5) lists the keys)");
	bad(NET "[web]\nsize=10G\n", PATH ":4: web.size: block [web] is not used: provision.conf "
					  "keys go at the top of the file or under [default]");
}

static void test_every_error_reported(void **state)
{
	struct parsed *p = parse("size=big\ncpus=0\nmemory=x\nfoo=1\nnot a pair here\n");

	assert_int_equal(p->rc, -1);
	/* size, cpus, memory, foo, the syntax error and the missing ips. */
	assert_int_equal(p->d.errors, 6);
	done(p);
}

static void test_domain_name(void **state)
{
	struct domain_conf c;
	struct diags d;

	diags_init(&d);
	assert_int_equal(domain_conf_parse(PATH, "bad_name", NET, strlen(NET), &c, &d), -1);
	assert_int_equal(d.errors, 1);
	assert_string_equal(d.v[0].e.msg, "the directory name 'bad_name' is not a domain name: it "
					  "holds '_' (only a-z, 0-9, '-' and '.')");
	assert_string_equal(c.name, "");
	domain_conf_free(&c);
	diags_free(&d);
	diags_init(&d);
	assert_int_equal(domain_conf_parse(PATH, NULL, NET, strlen(NET), &c, &d), 0);
	domain_conf_free(&c);
	diags_free(&d);
}

static void test_mac(void **state)
{
	char mac[18];

	/* Expected values computed independently at development time:
	 *   printf 'example.test/0' | sha256sum  -> 1769fc118c53...
	 *   printf 'example.test/1' | sha256sum  -> d85dca4cba8b...
	 * and the MAC is 52:54:00 followed by the first three bytes of that hex digest. */
	domain_mac("example.test", 0, mac);
	assert_string_equal(mac, "52:54:00:17:69:fc");
	domain_mac("example.test", 1, mac);
	assert_string_equal(mac, "52:54:00:d8:5d:ca");
}

/* Each tests/data/bad/conf/NAME.conf must fail with NAME.expect as its first error. */
static void test_bad_corpus(void **state)
{
	const char *src = getenv("TUAP_SRC");
	char dir[4096], first[1024];
	struct dirent *de;
	DIR *dp;
	int n = 0;

	assert_non_null(src);
	snprintf(dir, sizeof(dir), "%s/tests/data/bad/conf", src);
	dp = opendir(dir);
	assert_non_null(dp);
	while ((de = readdir(dp))) {
		char *text, *expect;
		struct parsed *p;

		if (!corpus_is_input(de->d_name, ".conf"))
			continue;
		text = corpus_read(dir, de->d_name, ".conf", NULL);
		expect = corpus_read(dir, de->d_name, ".expect", NULL);
		expect[strcspn(expect, "\n")] = '\0';
		p = parse(text);
		first[0] = '\0';
		for (size_t i = 0; i < p->d.n && !first[0]; i++)
			if (p->d.v[i].level == DIAG_ERROR)
				err_str(&p->d.v[i].e, first, sizeof(first));
		if (p->rc != -1 || strcmp(first, expect) != 0 || !strstr(p->out, expect))
			fail_msg("%s: expected first error\n  %s\ngot\n%s", de->d_name, expect,
				 p->out);
		done(p);
		free(text);
		free(expect);
		n++;
	}
	closedir(dp);
	assert_true(n >= 25);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_upstream_example),
		cmocka_unit_test(test_upstream_later_keys),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_memory_cpus_modes),
		cmocka_unit_test(test_image),
		cmocka_unit_test(test_paths_and_names),
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_network),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_syntaxes),
		cmocka_unit_test(test_warnings),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_every_error_reported),
		cmocka_unit_test(test_domain_name),
		cmocka_unit_test(test_mac),
		cmocka_unit_test(test_bad_corpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
