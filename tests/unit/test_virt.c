/*
 * virt against libvirt's in-process test driver (test:///default): events, domains, metadata,
 * snapshots, pools, volumes and networks as far as that driver implements them. What it does
 * not implement (volume upload, resize, real disks) is covered by test_virt_real.c against a
 * private libvirtd (tests/integration/test_virt.sh); those cases skip here with a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/virterror.h>

#include "virt.h"

#define URI "test:///default"

/* A call that must succeed; its error message is shown when it does not. */
#define OK(call)                                                                                   \
	do {                                                                                       \
		if ((call) < 0)                                                                    \
			fail_msg("%s: %s", #call, err.msg);                                        \
	} while (0)

static struct virt *v;

static int setup(void **state)
{
	struct tuap_err err;

	if (virt_event_start(&err) < 0) {
		fprintf(stderr, "virt_event_start: %s\n", err.msg);
		return -1;
	}
	v = virt_open(URI, &err);
	if (!v) {
		fprintf(stderr, "virt_open: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	virt_close(v);
	virt_event_stop();
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits (poll on the event fd, deadline timeout_ms) for domain's event/detail. Other events are
 * skipped. 1 when seen. */
static int wait_event(const char *domain, int event, int detail, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	struct virt_event ev;

	for (;;) {
		while (virt_event_next(&ev) == 1)
			if (ev.kind == VIRT_EV_LIFECYCLE && !strcmp(ev.domain, domain) &&
			    ev.event == event && ev.detail == detail)
				return 1;
		long long left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = virt_event_fd(), .events = POLLIN};
		poll(&p, 1, (int)left);
	}
}

static void drain(void)
{
	struct virt_event ev;

	while (virt_event_next(&ev) == 1)
		;
}

static char *domain_xml(const char *name, const char *extra)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf),
		 "<domain type='test'><name>%s</name><memory unit='MiB'>64</memory>"
		 "<os><type>hvm</type></os><devices>%s</devices></domain>",
		 name, extra ? extra : "");
	return buf;
}

static void test_open_bad_uri(void **state)
{
	struct tuap_err err;

	assert_null(virt_open("nosuchdriver:///x", &err));
	assert_non_null(strstr(err.msg, "cannot connect to libvirt at nosuchdriver:///x: "));
	/* libvirt's own words follow the colon */
	assert_true(strlen(strstr(err.msg, ": ") + 2) > 5);
	assert_string_equal(virt_uri(v), URI);
	assert_non_null(virt_conn(v));
}

/* A remote URI whose host takes no TCP connection fails at once, naming host and port, before
 * libvirt's own connect (which has no deadline). Loopback only: a port nothing listens on. */
static void test_open_unreachable(void **state)
{
	struct tuap_err err;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	char uri[128];
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	/* a port that was free a moment ago */
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	snprintf(uri, sizeof(uri), "qemu+tcp://127.0.0.1:%u/system", ntohs(a.sin_port));
	assert_null(virt_open(uri, &err));
	if (!strstr(err.msg, "Connection refused") || !strstr(err.msg, "127.0.0.1:"))
		fail_msg("%s", err.msg);
}

static void test_lifecycle_events(void **state)
{
	struct tuap_err err;
	enum virt_state st;
	struct virt_event ev;
	char buf[128];

	drain();
	OK(virt_domain_exists(v, "tuap-ev", &err));
	OK(virt_domain_define(v, domain_xml("tuap-ev", NULL), &err));
	assert_true(wait_event("tuap-ev", VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_DEFINED_ADDED,
			       5000));
	assert_int_equal(virt_domain_exists(v, "tuap-ev", &err), 1);
	OK(virt_domain_state(v, "tuap-ev", &st, &err));
	assert_int_equal(st, VIRT_STATE_SHUTOFF);

	OK(virt_domain_set_autostart(v, "tuap-ev", 1, &err));
	OK(virt_domain_start(v, "tuap-ev", &err));
	assert_true(wait_event("tuap-ev", VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED,
			       5000));
	OK(virt_domain_state(v, "tuap-ev", &st, &err));
	assert_int_equal(st, VIRT_STATE_RUNNING);
	assert_string_equal(virt_state_name(st), "running");
	/* starting a running domain is a no-op, not an error */
	OK(virt_domain_start(v, "tuap-ev", &err));

	OK(virt_domain_destroy(v, "tuap-ev", &err));
	assert_true(wait_event("tuap-ev", VIR_DOMAIN_EVENT_STOPPED,
			       VIR_DOMAIN_EVENT_STOPPED_DESTROYED, 5000));
	OK(virt_domain_destroy(v, "tuap-ev", &err));
	OK(virt_domain_undefine(v, "tuap-ev", &err));
	assert_true(wait_event("tuap-ev", VIR_DOMAIN_EVENT_UNDEFINED,
			       VIR_DOMAIN_EVENT_UNDEFINED_REMOVED, 5000));
	OK(virt_domain_undefine(v, "tuap-ev", &err)); /* gone: fine */
	OK(virt_domain_exists(v, "tuap-ev", &err));

	/* no event pending: the fd is not readable, next returns 0 */
	drain();
	struct pollfd p = {.fd = virt_event_fd(), .events = POLLIN};
	assert_int_equal(poll(&p, 1, 0), 0);
	assert_int_equal(virt_event_next(&ev), 0);
	assert_int_equal(virt_event_dropped(), 0);

	ev = (struct virt_event){.kind = VIRT_EV_LIFECYCLE,
				 .event = VIR_DOMAIN_EVENT_STOPPED,
				 .detail = VIR_DOMAIN_EVENT_STOPPED_CRASHED};
	assert_string_equal(virt_event_str(&ev, buf, sizeof(buf)), "stopped/crashed");
	ev.event = 99;
	assert_string_equal(virt_event_str(&ev, buf, sizeof(buf)), "event 99/2");
	ev = (struct virt_event){.kind = VIRT_EV_CLOSED, .detail = VIR_CONNECT_CLOSE_REASON_EOF};
	assert_string_equal(virt_event_str(&ev, buf, sizeof(buf)), "connection closed/eof");
}

static void test_define_errors(void **state)
{
	struct tuap_err err;

	/* schema validation is on: an unknown element is refused by name */
	assert_int_equal(virt_domain_define(v, domain_xml("tuap-bad", "<bogus/>"), &err), -1);
	assert_non_null(strstr(err.msg, "cannot define the domain: "));
	assert_int_equal(virt_domain_define(v, "<domain", &err), -1);
	assert_int_equal(virt_domain_start(v, "tuap-missing", &err), -1);
	assert_non_null(strstr(err.msg, "cannot find domain tuap-missing: "));
	assert_int_equal(virt_domain_destroy(v, "tuap-missing", &err), -1);
}

static void test_metadata(void **state)
{
	struct tuap_err err;
	struct tuap_meta m = {0}, got;
	struct strlist names = {0};

	OK(virt_domain_define(v, domain_xml("tuap-meta", NULL), &err));
	OK(virt_domain_is_ours(v, "tuap-meta", &got, &err));
	/* the driver's own "test" domain is not ours either */
	OK(virt_domain_is_ours(v, "test", NULL, &err));

	snprintf(m.version, sizeof(m.version), "0.1.0");
	snprintf(m.provision_id, sizeof(m.provision_id), "p-42");
	snprintf(m.instance_id, sizeof(m.instance_id), "i-0123456789abcdef");
	snprintf(m.agent_key, sizeof(m.agent_key), "rq:rM>}U?@Lns47E1%%kR.o@n%%FcmmsL/@{H8]yf7");
	snprintf(m.image, sizeof(m.image), "debian-12");
	OK(virt_domain_set_meta(v, "tuap-meta", &m, &err));
	assert_int_equal(virt_domain_is_ours(v, "tuap-meta", &got, &err), 1);
	assert_memory_equal(&got, &m, sizeof(m));

	/* running: the live definition gets it too */
	OK(virt_domain_start(v, "tuap-meta", &err));
	snprintf(m.provision_id, sizeof(m.provision_id), "p-43");
	OK(virt_domain_set_meta(v, "tuap-meta", &m, &err));
	assert_int_equal(virt_domain_is_ours(v, "tuap-meta", &got, &err), 1);
	assert_string_equal(got.provision_id, "p-43");

	OK(virt_domain_define(v, domain_xml("tuap-meta2", NULL), &err));
	OK(virt_domain_set_meta(v, "tuap-meta2", &m, &err));
	OK(virt_domain_list_ours(v, &names, &err));
	assert_int_equal(names.n, 2);
	assert_string_equal(names.v[0], "tuap-meta");
	assert_string_equal(names.v[1], "tuap-meta2");
	strlist_free(&names);

	assert_int_equal(virt_domain_is_ours(v, "tuap-nope", NULL, &err), -1);
	OK(virt_domain_destroy(v, "tuap-meta", &err));
	OK(virt_domain_undefine(v, "tuap-meta", &err));
	OK(virt_domain_undefine(v, "tuap-meta2", &err));
	OK(virt_domain_list_ours(v, &names, &err));
	assert_int_equal(names.n, 0);
	strlist_free(&names);
}

static void test_meta_xml(void **state)
{
	struct tuap_err err;
	struct tuap_meta m = {0}, got;
	char *xml;
	const char *prefixed =
		"<t:domain xmlns:t='" META_NS "'><t:version>1</t:version>"
		"<t:future>x</t:future><other xmlns='urn:x'><image>no</image>"
		"</other><t:image>img &amp; co</t:image><instance-id>i-1</instance-id>"
		"</t:domain>";
	char big[512];

	snprintf(m.version, sizeof(m.version), "0.1.0");
	snprintf(m.image, sizeof(m.image), "a<b>&\"c'");
	OK(meta_xml(&m, true, &xml, &err));
	assert_non_null(strstr(xml, "<tuap:domain xmlns:tuap=\"" META_NS "\">"));
	assert_non_null(strstr(xml, "<tuap:image>a&lt;b&gt;&amp;&quot;c'</tuap:image>"));
	assert_null(strstr(xml, "provision-id")); /* empty fields are left out */
	OK(meta_parse(xml, strlen(xml), &got, &err));
	assert_memory_equal(&got, &m, sizeof(m));
	free(xml);

	/* any prefix; unknown and foreign elements ignored */
	OK(meta_parse(prefixed, strlen(prefixed), &got, &err));
	assert_string_equal(got.version, "1");
	assert_string_equal(got.image, "img & co");
	assert_string_equal(got.instance_id, "i-1");

	const char *bare = "<domain><version>2</version></domain>";
	assert_int_equal(meta_parse(bare, strlen(bare), &got, &err), 0);
	assert_string_equal(got.version, "2");
	const char *wrong_root = "<tuap:dom xmlns:tuap='" META_NS "'/>";
	assert_int_equal(meta_parse(wrong_root, strlen(wrong_root), &got, &err), -1);
	const char *wrong_ns = "<domain xmlns='urn:other'><version>1</version></domain>";
	assert_int_equal(meta_parse(wrong_ns, strlen(wrong_ns), &got, &err), -1);
	assert_non_null(strstr(err.msg, "root element is not {" META_NS "}domain"));
	assert_int_equal(meta_parse("<x", 2, &got, &err), -1);
	assert_non_null(strstr(err.msg, "cannot parse the tuap metadata XML"));

	memset(big, 'k', 100);
	big[100] = '\0';
	char doc[1024];
	snprintf(doc, sizeof(doc), "<domain xmlns='%s'><agent-key>%s</agent-key></domain>", META_NS,
		 big);
	assert_int_equal(meta_parse(doc, strlen(doc), &got, &err), -1);
	assert_non_null(strstr(err.msg, "<agent-key> is too long (100 bytes, at most 63)"));

	/* the key is written as domxml_render writes it; the older name is still read */
	snprintf(m.agent_key, sizeof(m.agent_key), "rq:rM>}U?@Lns47E1%%kR.o@n%%FcmmsL/@{H8]yf7");
	OK(meta_xml(&m, true, &xml, &err));
	assert_non_null(strstr(xml, "<tuap:agent-public-key>rq:rM&gt;}U?@Lns47E1"));
	free(xml);
	snprintf(doc, sizeof(doc), "<domain xmlns='%s'><agent-key>k1</agent-key></domain>",
		 META_NS);
	OK(meta_parse(doc, strlen(doc), &got, &err));
	assert_string_equal(got.agent_key, "k1");

	/* an image as long as provision.conf allows is written and read back (the reader once
	 * capped it at 127 bytes while the writer took 2047) */
	char image[DOMAIN_IMAGE_MAX];
	memset(image, 'i', sizeof(image) - 1);
	image[0] = '/';
	image[sizeof(image) - 1] = '\0';
	OK(meta_set(&m, "0.1.0", "p-1", "i-1", "key", image, &err));
	OK(meta_xml(&m, true, &xml, &err));
	OK(meta_parse(xml, strlen(xml), &got, &err));
	assert_string_equal(got.image, image);
	free(xml);
	char longer[DOMAIN_IMAGE_MAX + 1];
	memset(longer, 'i', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	assert_int_equal(meta_set(&m, "0.1.0", "p-1", "i-1", "key", longer, &err), -1);
	assert_non_null(strstr(err.msg, "<image> is too long (2048 bytes, at most 2047)"));
}

static void test_snapshots(void **state)
{
	struct tuap_err err;
	struct virt_snapshot *list;
	size_t n;
	char name[VIRT_NAME_MAX];

	OK(virt_domain_define(v, domain_xml("tuap-snap", NULL), &err));
	OK(virt_domain_start(v, "tuap-snap", &err));
	if (virt_snapshot_create(v, "tuap-snap", "first", name, sizeof(name), &err) < 0) {
		fprintf(stderr, "snapshots unsupported by %s: %s\n", URI, err.msg);
		virt_domain_destroy(v, "tuap-snap", &err);
		virt_domain_undefine(v, "tuap-snap", &err);
		skip();
	}
	assert_string_equal(name, "first");
	OK(virt_snapshot_create(v, "tuap-snap", NULL, name, sizeof(name), &err));
	assert_int_equal(strncmp(name, "tuap-20", 7), 0);
	assert_int_equal(strlen(name), strlen("tuap-20261125-093000"));
	assert_int_equal(virt_snapshot_create(v, "tuap-snap", "bad/name", name, sizeof(name), &err),
			 -1);
	assert_non_null(strstr(err.msg, "not a valid snapshot name"));
	assert_int_equal(virt_snapshot_create(v, "tuap-snap", "first", name, sizeof(name), &err),
			 -1);

	OK(virt_snapshot_list(v, "tuap-snap", &list, &n, &err));
	assert_int_equal(n, 2);
	assert_true(list[0].created <= list[1].created);
	assert_true(list[0].created > 1700000000);
	int cur = 0;
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(list[i].state, "running");
		cur += list[i].current;
		if (list[i].current)
			assert_string_not_equal(list[i].name, "first");
	}
	assert_int_equal(cur, 1);
	free(list);

	OK(virt_domain_destroy(v, "tuap-snap", &err));
	OK(virt_snapshot_revert(v, "tuap-snap", "first", 0, &err));
	enum virt_state st;
	OK(virt_domain_state(v, "tuap-snap", &st, &err));
	assert_int_equal(st, VIRT_STATE_RUNNING); /* the snapshot was of a running domain */
	assert_int_equal(virt_snapshot_revert(v, "tuap-snap", "nope", 0, &err), -1);
	assert_non_null(strstr(err.msg, "cannot find snapshot nope of domain tuap-snap: "));
	OK(virt_snapshot_delete(v, "tuap-snap", "first", &err));
	OK(virt_snapshot_list(v, "tuap-snap", &list, &n, &err));
	assert_int_equal(n, 1);
	free(list);

	/* undefine takes the remaining snapshot's metadata with it */
	OK(virt_domain_destroy(v, "tuap-snap", &err));
	OK(virt_domain_undefine(v, "tuap-snap", &err));
	OK(virt_domain_exists(v, "tuap-snap", &err));
}

static void test_console_log(void **state)
{
	struct tuap_err err;
	char path[256];

	assert_int_equal(virt_domain_define(v,
					    domain_xml("tuap-con",
						       "<serial type='file'><source "
						       "path='/var/log/tuap/con.log'/></serial>"),
					    &err),
			 0);
	assert_int_equal(virt_domain_console_log(v, "tuap-con", path, sizeof(path), &err), 1);
	assert_string_equal(path, "/var/log/tuap/con.log");
	assert_int_equal(virt_domain_console_log(v, "tuap-con", path, 10, &err), -1);
	assert_non_null(strstr(err.msg, "console log path is too long"));
	OK(virt_domain_undefine(v, "tuap-con", &err));

	assert_int_equal(virt_domain_define(v,
					    domain_xml("tuap-con",
						       "<serial type='pty'><log "
						       "file='/var/log/tuap/pty.log'/></serial>"),
					    &err),
			 0);
	assert_int_equal(virt_domain_console_log(v, "tuap-con", path, sizeof(path), &err), 1);
	assert_string_equal(path, "/var/log/tuap/pty.log");
	OK(virt_domain_undefine(v, "tuap-con", &err));

	OK(virt_domain_define(v, domain_xml("tuap-con", NULL), &err));
	OK(virt_domain_console_log(v, "tuap-con", path, sizeof(path), &err));
	OK(virt_domain_undefine(v, "tuap-con", &err));
}

static void test_pools_and_volumes(void **state)
{
	struct tuap_err err;
	struct virt_vol_info info;

	OK(virt_pool_ensure(v, "tuap-images", "/vms/images", &err));
	OK(virt_pool_ensure(v, "tuap-images", "/vms/images/", &err));
	assert_int_equal(virt_pool_ensure(v, "tuap-images", "/elsewhere", &err), -1);
	assert_string_equal(err.msg,
			    "storage pool tuap-images exists at /vms/images, not at /elsewhere; "
			    "remove it (virsh pool-undefine tuap-images) or point the pool root "
			    "there");
	assert_int_equal(virt_pool_ensure(v, "tuap-images", "relative", &err), -1);
	assert_int_equal(virt_pool_ensure(v, "bad/name", "/x", &err), -1);

	virStoragePoolPtr p = virStoragePoolLookupByName(virt_conn(v), "tuap-images");
	assert_non_null(p);
	int autostart = 0;
	assert_int_equal(virStoragePoolIsActive(p), 1);
	assert_int_equal(virStoragePoolGetAutostart(p, &autostart), 0);
	assert_int_equal(autostart, 1);

	/* a base volume made directly (the test driver cannot take uploads) */
	const char *base = "<volume><name>base-0123456789abcdef.qcow2</name>"
			   "<capacity unit='bytes'>1073741824</capacity>"
			   "<target><format type='qcow2'/></target></volume>";
	virStorageVolPtr bv = virStorageVolCreateXML(p, base, 0);
	assert_non_null(bv);
	virStorageVolFree(bv);
	virStoragePoolFree(p);

	assert_int_equal(
		virt_vol_lookup(v, "tuap-images", "base-0123456789abcdef.qcow2", &info, &err), 1);
	assert_int_equal(info.capacity, 1073741824ULL);
	assert_string_equal(info.path, "/vms/images/base-0123456789abcdef.qcow2");
	OK(virt_vol_lookup(v, "tuap-images", "nope", NULL, &err));
	assert_int_equal(virt_vol_lookup(v, "no-pool", "nope", NULL, &err), -1);
	assert_non_null(strstr(err.msg, "cannot find storage pool no-pool: "));

	OK(virt_pool_ensure(v, "tuap-d", "/vms/d.example", &err));
	/* smaller than the base is refused before anything is created */
	assert_int_equal(virt_vol_create_overlay(v, "tuap-d", "disk.qcow2", info.path, 1024, &err),
			 -1);
	assert_non_null(strstr(err.msg, "disk size 1024 bytes is smaller than the base image's"));
	assert_int_equal(
		virt_vol_create_overlay(v, "tuap-d", "disk.qcow2", "/nope.qcow2", 1ULL << 30, &err),
		-1);
	assert_non_null(strstr(err.msg, "base image /nope.qcow2 is not a volume of any storage "
					"pool: "));
	/* same size: no resize needed, which the test driver can do */
	OK(virt_vol_create_overlay(v, "tuap-d", "disk.qcow2", info.path, 1ULL << 30, &err));
	struct virt_vol_info oi;
	assert_int_equal(virt_vol_lookup(v, "tuap-d", "disk.qcow2", &oi, &err), 1);
	assert_int_equal(oi.capacity, 1ULL << 30);
	assert_int_equal(
		virt_vol_create_overlay(v, "tuap-d", "disk.qcow2", info.path, 1ULL << 30, &err),
		-1);
	assert_string_equal(err.msg, "volume disk.qcow2 already exists in storage pool tuap-d");
	if (virt_vol_create_overlay(v, "tuap-d", "big.qcow2", info.path, 2ULL << 30, &err) < 0)
		fprintf(stderr,
			"note: overlay resize not supported by %s (%s); covered by "
			"test_virt_real\n",
			URI, err.msg);

	OK(virt_vol_delete(v, "tuap-d", "disk.qcow2", &err));
	OK(virt_vol_delete(v, "tuap-d", "disk.qcow2", &err));
	OK(virt_vol_lookup(v, "tuap-d", "disk.qcow2", NULL, &err));

	if (virt_vol_upload(v, "tuap-d", "seed.iso", "/etc/hostname", NULL, NULL, &err) < 0)
		fprintf(stderr,
			"note: volume upload not supported by %s (%s); covered by "
			"test_virt_real\n",
			URI, err.msg);
	OK(virt_vol_lookup(v, "tuap-d", "seed.iso", NULL, &err));
	assert_int_equal(virt_vol_upload(v, "tuap-d", "x.iso", "/nonexistent", NULL, NULL, &err),
			 -1);
	assert_non_null(strstr(err.msg, "cannot open /nonexistent: "));

	OK(virt_pool_delete(v, "tuap-d", &err));
	OK(virt_pool_delete(v, "tuap-d", &err));
	OK(virt_pool_delete(v, "tuap-images", &err));
	assert_null(virStoragePoolLookupByName(virt_conn(v), "tuap-images"));
}

static void test_vol_name(void **state)
{
	struct tuap_err err;
	char out[64];
	const char *sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

	OK(virt_vol_name(out, sizeof(out), "debian-12", sha, "qcow2", &err));
	assert_string_equal(out, "debian-12-0123456789abcdef.qcow2");
	OK(virt_vol_name(out, sizeof(out), "seed", sha, "iso", &err));
	assert_string_equal(out, "seed-0123456789abcdef.iso");
	assert_int_equal(virt_vol_name(out, sizeof(out), "../x", sha, "iso", &err), -1);
	assert_int_equal(virt_vol_name(out, sizeof(out), "a b", sha, "iso", &err), -1);
	assert_int_equal(virt_vol_name(out, sizeof(out), "seed", "ABC", "iso", &err), -1);
	assert_int_equal(virt_vol_name(out, sizeof(out), "seed", sha, "i/o", &err), -1);
	assert_int_equal(virt_vol_name(out, 10, "seed", sha, "iso", &err), -1);
}

static void test_network(void **state)
{
	struct tuap_err err;

	OK(virt_network_ensure_nat(v, "tuap-mgmt", "10.77.77.0/24", "virbr-tuap", &err));
	OK(virt_network_ensure_nat(v, "tuap-mgmt", "10.77.77.0/24", "virbr-tuap", &err));
	virNetworkPtr net = virNetworkLookupByName(virt_conn(v), "tuap-mgmt");
	assert_non_null(net);
	char *xml = virNetworkGetXMLDesc(net, 0);
	assert_non_null(strstr(xml, "<forward mode='nat'"));
	assert_non_null(strstr(xml, "<ip address='10.77.77.1' prefix='24'>"));
	assert_non_null(strstr(xml, "<range start='10.77.77.2' end='10.77.77.254'"));
	free(xml);
	int autostart = 0;
	assert_int_equal(virNetworkIsActive(net), 1);
	assert_int_equal(virNetworkGetAutostart(net, &autostart), 0);
	assert_int_equal(autostart, 1);
	virNetworkFree(net);

	assert_int_equal(
		virt_network_ensure_nat(v, "tuap-mgmt", "10.88.0.0/16", "virbr-tuap", &err), -1);
	assert_string_equal(err.msg, "network tuap-mgmt exists with address 10.77.77.1/24, not "
				     "10.88.0.1/16; fix the subnet setting or remove the network "
				     "(virsh net-undefine tuap-mgmt)");
	assert_int_equal(virt_network_ensure_nat(v, "tuap-mgmt", "10.77.77.0/24", "virbr9", &err),
			 -1);
	assert_string_equal(err.msg, "network tuap-mgmt exists on bridge virbr-tuap, not virbr9");
	/* the driver's "default" network is NAT on 192.168.122.0/24 */
	assert_int_equal(virt_network_ensure_nat(v, "default", "10.1.0.0/24", "virbr0", &err), -1);
	/* ... written with netmask='255.255.255.0', which is prefix 24 */
	OK(virt_network_ensure_nat(v, "default", "192.168.122.0/24", "virbr0", &err));
	assert_int_equal(virt_network_ensure_nat(v, "default", "192.168.0.0/16", "virbr0", &err),
			 -1);
	assert_string_equal(err.msg, "network default exists with address 192.168.122.1/24, not "
				     "192.168.0.1/16; fix the subnet setting or remove the "
				     "network (virsh net-undefine default)");

	assert_int_equal(virt_network_ensure_nat(v, "n", "10.77.77.5/24", "br", &err), -1);
	assert_string_equal(
		err.msg, "subnet '10.77.77.5/24' has host bits set (did you mean 10.77.77.0/24?)");
	assert_int_equal(virt_network_ensure_nat(v, "n", "10.77.77.0", "br", &err), -1);
	assert_int_equal(virt_network_ensure_nat(v, "n", "10.77.77.0/30", "br", &err), -1);
	assert_string_equal(err.msg, "subnet '10.77.77.0/30': prefix must be 8..29");
	assert_int_equal(virt_network_ensure_nat(v, "n", "10.77.300.0/24", "br", &err), -1);
	assert_int_equal(virt_network_ensure_nat(v, "n", "10.77.77.0/24x", "br", &err), -1);
	assert_int_equal(
		virt_network_ensure_nat(v, "n", "10.0.0.0/8", "a-very-long-bridge-name", &err), -1);
	assert_int_equal(virt_network_ensure_nat(v, "n", "10.0.0.0/8", "../x", &err), -1);

	OK(virt_network_delete(v, "tuap-mgmt", &err));
	OK(virt_network_delete(v, "tuap-mgmt", &err));
	assert_null(virNetworkLookupByName(virt_conn(v), "tuap-mgmt"));
}

static void test_bridge_check(void **state)
{
	struct tuap_err err;

	assert_int_equal(virtdef_bridge_check("lo", &err), -1);
	assert_string_equal(err.msg, "network interface lo exists but is not a bridge (no "
				     "/sys/class/net/lo/bridge)");
	assert_int_equal(virtdef_bridge_check("tuapnobr0", &err), -1);
	assert_non_null(strstr(err.msg, "bridge tuapnobr0 does not exist on this host"));
	assert_int_equal(virtdef_bridge_check("../../etc", &err), -1);
}

static void test_undefine_nvram(void **state)
{
	struct tuap_err err;

	/* With <nvram> the nvram flag is passed; drivers that cannot remove nvram say so. */
	OK(virt_domain_define(v,
			      "<domain type='test'><name>tuap-uefi</name>"
			      "<memory unit='MiB'>64</memory><os><type>hvm</type>"
			      "<loader readonly='yes' type='pflash'>/usr/share/OVMF/"
			      "OVMF_CODE.fd</loader><nvram>/var/lib/libvirt/qemu/"
			      "nvram/tuap-uefi_VARS.fd</nvram></os></domain>",
			      &err));
	if (virt_domain_undefine(v, "tuap-uefi", &err) < 0) {
		fprintf(stderr,
			"note: %s refuses the nvram undefine flag (%s); covered by "
			"test_virt_real\n",
			URI, err.msg);
		assert_int_equal(
			virDomainUndefine(virDomainLookupByName(virt_conn(v), "tuap-uefi")), 0);
	}
	OK(virt_domain_exists(v, "tuap-uefi", &err));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_bad_uri),	  cmocka_unit_test(test_open_unreachable),
		cmocka_unit_test(test_lifecycle_events),  cmocka_unit_test(test_define_errors),
		cmocka_unit_test(test_metadata),	  cmocka_unit_test(test_meta_xml),
		cmocka_unit_test(test_snapshots),	  cmocka_unit_test(test_console_log),
		cmocka_unit_test(test_pools_and_volumes), cmocka_unit_test(test_vol_name),
		cmocka_unit_test(test_network),		  cmocka_unit_test(test_bridge_check),
		cmocka_unit_test(test_undefine_nvram),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
