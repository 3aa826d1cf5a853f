/*
 * virt against a real libvirtd (the qemu driver): runs only when TUAP_LIBVIRT_URI is set, as
 * tests/integration/test_virt.sh does after starting a private libvirtd + virtlogd inside a
 * network namespace; TUAP_VIRT_WORK is its scratch directory holding base.qcow2 (made with
 * qemu-img). Without the variables every test skips.
 *
 * The tests run in order and build on each other: pools, upload of the base image, a qcow2
 * overlay on it, a seed ISO (seed_write) uploaded, the NAT network and its bridge, a domain
 * (type qemu, 64 MiB, boots nothing) defined with our metadata, lifecycle events on
 * define/start/destroy/undefine, internal snapshots live and offline, undefine with nvram, and
 * the teardown of everything.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "hash.h"
#include "seed.h"
#include "virt.h"

#define DOM	"tuap-virt-test"
#define NET	"tuap-test"
#define BRIDGE	"virbr-tuapt"
#define SUBNET	"10.199.77.0/24"
#define DPOOL	"tuap-t.example"
#define IPOOL	"tuap-images"
#define DISK_SZ (256ULL << 20)

#define OK(call)                                                                                   \
	do {                                                                                       \
		if ((call) < 0)                                                                    \
			fail_msg("%s: %s", #call, err.msg);                                        \
	} while (0)

static const char *uri, *work;
static struct virt *v;
static struct tuap_err err;
static char base_vol[128], base_path[4096], overlay_path[4096], seed_path[4096];
static char console[512];

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_event(const char *domain, int event, int detail, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	struct virt_event ev;
	char buf[64];

	for (;;) {
		while (virt_event_next(&ev) == 1) {
			fprintf(stderr, "event: %s %s\n", ev.domain,
				virt_event_str(&ev, buf, sizeof(buf)));
			if (ev.kind == VIRT_EV_LIFECYCLE && !strcmp(ev.domain, domain) &&
			    ev.event == event && ev.detail == detail)
				return 1;
		}
		long long left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = virt_event_fd(), .events = POLLIN};
		poll(&p, 1, (int)left);
	}
}

/* stdout of argv (caller frees), exit status must be 0 */
static char *run(char *const argv[])
{
	int p[2], st;
	pid_t pid;
	char *out = NULL, chunk[4096];
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	while ((n = read(p[0], chunk, sizeof(chunk))) > 0)
		fwrite(chunk, 1, (size_t)n, f);
	close(p[0]);
	fclose(f);
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("%s failed: %s", argv[0], out);
	return out;
}

static void need_env(void)
{
	if (!uri || !work) {
		fprintf(stderr, "TUAP_LIBVIRT_URI/TUAP_VIRT_WORK not set: skipped (run "
				"tests/integration/test_virt.sh)\n");
		skip();
	}
	if (!v)
		fail_msg("no connection (an earlier test failed)");
}

static int setup(void **state)
{
	uri = getenv("TUAP_LIBVIRT_URI");
	work = getenv("TUAP_VIRT_WORK");
	if (!uri || !work)
		return 0;
	if (virt_event_start(&err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	v = virt_open(uri, &err);
	if (!v) {
		fprintf(stderr, "%s\n", err.msg);
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

struct prog {
	uint64_t done, total;
	int calls;
	int stop_at; /* the call that says stop; 0: never */
};

static bool on_progress(uint64_t done, uint64_t total, void *arg)
{
	struct prog *p = arg;

	p->done = done;
	p->total = total;
	p->calls++;
	return p->calls != p->stop_at;
}

static void test_pools(void **state)
{
	char dir[512];
	struct stat sb;

	need_env();
	snprintf(dir, sizeof(dir), "%s/pools/images", work);
	OK(virt_pool_ensure(v, IPOOL, dir, &err));
	OK(virt_pool_ensure(v, IPOOL, dir, &err));
	assert_int_equal(stat(dir, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	snprintf(dir, sizeof(dir), "%s/pools/t.example", work);
	OK(virt_pool_ensure(v, DPOOL, dir, &err));
	assert_int_equal(stat(dir, &sb), 0);
	assert_int_equal(virt_pool_ensure(v, DPOOL, "/elsewhere", &err), -1);
}

static void test_upload(void **state)
{
	char src[512], sha[SHA256_HEX_LEN], got[SHA256_HEX_LEN];
	struct virt_vol_info info;
	struct prog p = {0};
	uint64_t size;

	need_env();
	snprintf(src, sizeof(src), "%s/base.qcow2", work);
	OK(sha256_file_hex(src, sha, &size, &err));
	OK(virt_vol_name(base_vol, sizeof(base_vol), "base", sha, "qcow2", &err));
	OK(virt_vol_upload(v, IPOOL, base_vol, src, on_progress, &p, &err));
	assert_int_equal(p.done, size);
	assert_int_equal(p.total, size);
	assert_int_equal(virt_vol_lookup(v, IPOOL, base_vol, &info, &err), 1);
	snprintf(base_path, sizeof(base_path), "%s", info.path);
	assert_int_equal(info.physical, size);
	assert_int_equal(info.capacity, 64ULL << 20); /* qemu-img create ... 64M: probed */
	OK(sha256_file_hex(base_path, got, NULL, &err));
	assert_string_equal(got, sha);

	/* the refresh after the upload let libvirt probe the format */
	virStoragePoolPtr pool = virStoragePoolLookupByName(virt_conn(v), IPOOL);
	virStorageVolPtr vol = virStorageVolLookupByName(pool, base_vol);
	char *xml = virStorageVolGetXMLDesc(vol, 0);
	assert_non_null(strstr(xml, "<format type='qcow2'/>"));
	free(xml);
	virStorageVolFree(vol);
	virStoragePoolFree(pool);

	/* same name and size: kept, not uploaded again */
	memset(&p, 0, sizeof(p));
	OK(virt_vol_upload(v, IPOOL, base_vol, src, on_progress, &p, &err));
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.done, size);

	/* what a tuapd killed mid-upload leaves: the volume with the first half of the bytes */
	OK(virt_vol_delete(v, IPOOL, base_vol, &err));
	pool = virStoragePoolLookupByName(virt_conn(v), IPOOL);
	char vxml[512];
	snprintf(vxml, sizeof(vxml),
		 "<volume><name>%s</name><capacity unit='bytes'>0</capacity>"
		 "<target><format type='raw'/></target></volume>",
		 base_vol);
	vol = virStorageVolCreateXML(pool, vxml, 0);
	assert_non_null(vol);
	virStreamPtr st = virStreamNew(virt_conn(v), 0);
	assert_int_equal(virStorageVolUpload(vol, st, 0, size / 2, 0), 0);
	char *half = malloc(size / 2);
	FILE *f = fopen(src, "r");
	assert_int_equal(fread(half, 1, size / 2, f), size / 2);
	fclose(f);
	for (size_t off = 0; off < size / 2;) {
		int sent = virStreamSend(st, half + off, size / 2 - off);
		assert_true(sent > 0);
		off += (size_t)sent;
	}
	assert_int_equal(virStreamFinish(st), 0);
	virStreamFree(st);
	free(half);
	virStorageVolFree(vol);
	virStoragePoolFree(pool);
	assert_int_equal(virt_vol_lookup(v, IPOOL, base_vol, &info, &err), 1);
	assert_int_equal(info.physical, size / 2);
	memset(&p, 0, sizeof(p));
	OK(virt_vol_upload(v, IPOOL, base_vol, src, on_progress, &p, &err));
	assert_true(p.calls >= 2);
	OK(sha256_file_hex(base_path, got, NULL, &err));
	assert_string_equal(got, sha);

	/* an upload its task gives up (17.5: nobody waits for it) fails and leaves no volume */
	p = (struct prog){.stop_at = 2};
	assert_int_equal(virt_vol_upload(v, IPOOL, "stopped.qcow2", src, on_progress, &p, &err),
			 -1);
	assert_non_null(strstr(err.msg, FILE_STOPPED));
	assert_int_equal(virt_vol_lookup(v, IPOOL, "stopped.qcow2", NULL, &err), 0);
}

static void test_overlay(void **state)
{
	struct virt_vol_info info;

	need_env();
	assert_int_equal(
		virt_vol_create_overlay(v, DPOOL, "disk.qcow2", base_path, 1ULL << 20, &err), -1);
	assert_non_null(strstr(err.msg, "is smaller than the base image's 67108864 bytes"));
	OK(virt_vol_create_overlay(v, DPOOL, "disk.qcow2", base_path, DISK_SZ, &err));
	assert_int_equal(virt_vol_lookup(v, DPOOL, "disk.qcow2", &info, &err), 1);
	assert_int_equal(info.capacity, DISK_SZ);
	snprintf(overlay_path, sizeof(overlay_path), "%s", info.path);

	/* qemu-img's view: qcow2 on the base, resized */
	char *argv[] = {"qemu-img", "info", "-U", "--output=json", overlay_path, NULL};
	char *out = run(argv);
	char want[4200];
	assert_non_null(strstr(out, "\"virtual-size\": 268435456"));
	assert_non_null(strstr(out, "\"format\": \"qcow2\""));
	snprintf(want, sizeof(want), "\"backing-filename\": \"%s\"", base_path);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "\"backing-filename-format\": \"qcow2\""));
	free(out);
}

static void test_seed_upload(void **state)
{
	struct seed_file f[] = {
		{"meta-data", "instance-id: i-1\n", 17, NULL, 0644},
		{"user-data", "#cloud-config\n", 14, NULL, 0644},
	};
	char iso[512], sha[SHA256_HEX_LEN], name[64];
	struct virt_vol_info info;

	need_env();
	snprintf(iso, sizeof(iso), "%s/seed.iso", work);
	OK(seed_write(f, 2, iso, sha, &err));
	OK(seed_name(sha, name, sizeof(name), &err));
	OK(virt_vol_upload(v, DPOOL, name, iso, NULL, NULL, &err));
	assert_int_equal(virt_vol_lookup(v, DPOOL, name, &info, &err), 1);
	snprintf(seed_path, sizeof(seed_path), "%s", info.path);
	char got[SHA256_HEX_LEN];
	OK(sha256_file_hex(seed_path, got, NULL, &err));
	assert_string_equal(got, sha);
}

static void test_network(void **state)
{
	need_env();
	OK(virt_network_ensure_nat(v, NET, SUBNET, BRIDGE, &err));
	OK(virt_network_ensure_nat(v, NET, SUBNET, BRIDGE, &err));
	/* we run in libvirtd's network namespace: its bridge is visible here */
	OK(virtdef_bridge_check(BRIDGE, &err));
	assert_int_equal(virtdef_bridge_check("lo", &err), -1);
	char *argv[] = {"ip", "-4", "-o", "addr", "show", "dev", BRIDGE, NULL};
	char *out = run(argv);
	assert_non_null(strstr(out, "inet 10.199.77.1/24"));
	free(out);
	assert_int_equal(virt_network_ensure_nat(v, NET, "10.199.78.0/24", BRIDGE, &err), -1);
}

static char *domain_xml(const struct tuap_meta *m)
{
	static char buf[16384];
	char *meta = NULL;

	/* Test-controlled paths only (mktemp names under /var/tmp): nothing needs escaping. */
	assert_null(strpbrk(work, "<>&'\""));
	OK(meta_xml(m, true, &meta, &err));
	snprintf(buf, sizeof(buf),
		 "<domain type='qemu'>\n"
		 "  <name>" DOM "</name>\n"
		 "  <metadata>%s</metadata>\n"
		 "  <memory unit='MiB'>64</memory>\n"
		 "  <vcpu>1</vcpu>\n"
		 "  <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>\n"
		 "  <devices>\n"
		 "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
		 "    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
		 "<source file='%s'/><target dev='vda' bus='virtio'/></disk>\n"
		 "    <controller type='scsi' model='virtio-scsi'/>\n"
		 "    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
		 "<source file='%s'/><target dev='sda' bus='scsi'/><readonly/></disk>\n"
		 "    <interface type='network'><source network='" NET "'/>"
		 "<mac address='52:54:00:7a:00:01'/><model type='virtio'/></interface>\n"
		 "    <serial type='file'><source path='%s'/><target port='0'/></serial>\n"
		 "    <memballoon model='none'/>\n"
		 "  </devices>\n"
		 "</domain>\n",
		 meta, overlay_path, seed_path, console);
	free(meta);
	return buf;
}

static void test_domain(void **state)
{
	struct tuap_meta m = {0}, got;
	enum virt_state st;
	char path[512];
	struct strlist names = {0};

	need_env();
	snprintf(console, sizeof(console), "%s/console.log", work);
	snprintf(m.version, sizeof(m.version), "%s", TUAP_VERSION);
	snprintf(m.provision_id, sizeof(m.provision_id), "p-1");
	snprintf(m.instance_id, sizeof(m.instance_id), "i-1");
	snprintf(m.agent_key, sizeof(m.agent_key), "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID");
	snprintf(m.image, sizeof(m.image), "base");

	while (virt_event_next(&(struct virt_event){0}) == 1)
		;
	OK(virt_domain_define(v, domain_xml(&m), &err));
	if (!wait_event(DOM, VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_DEFINED_ADDED, 30000))
		fail_msg("no defined/added event within 30 s");
	assert_int_equal(virt_domain_is_ours(v, DOM, &got, &err), 1);
	assert_memory_equal(&got, &m, sizeof(m));
	OK(virt_domain_list_ours(v, &names, &err));
	assert_int_equal(names.n, 1);
	assert_string_equal(names.v[0], DOM);
	strlist_free(&names);
	assert_int_equal(virt_domain_console_log(v, DOM, path, sizeof(path), &err), 1);
	assert_string_equal(path, console);
	OK(virt_domain_set_autostart(v, DOM, 1, &err));

	OK(virt_domain_start(v, DOM, &err));
	if (!wait_event(DOM, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED, 120000))
		fail_msg("no started/booted event within 120 s");
	OK(virt_domain_state(v, DOM, &st, &err));
	assert_int_equal(st, VIRT_STATE_RUNNING);
	assert_int_equal(fs_exists(console), 1); /* virtlogd opened it */

	/* metadata changed while running: persistent and live */
	snprintf(m.provision_id, sizeof(m.provision_id), "p-2");
	OK(virt_domain_set_meta(v, DOM, &m, &err));
	assert_int_equal(virt_domain_is_ours(v, DOM, &got, &err), 1);
	assert_string_equal(got.provision_id, "p-2");
	virDomainPtr d = virDomainLookupByName(virt_conn(v), DOM);
	char *inactive = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
	assert_non_null(strstr(inactive, "<tuap:provision-id>p-2</tuap:provision-id>"));
	free(inactive);
	virDomainFree(d);
}

static void test_snapshots(void **state)
{
	struct virt_snapshot *list;
	char name[VIRT_NAME_MAX], stamp[VIRT_NAME_MAX];
	enum virt_state st;
	size_t n;

	need_env();
	/* live: internal, with memory (qemu savevm); the raw seed cdrom is left out */
	OK(virt_snapshot_create(v, DOM, "before", name, sizeof(name), &err));
	OK(virt_snapshot_create(v, DOM, NULL, stamp, sizeof(stamp), &err));
	OK(virt_snapshot_list(v, DOM, &list, &n, &err));
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "before");
	assert_string_equal(list[0].state, "running");
	assert_string_equal(list[1].name, stamp);
	assert_int_equal(list[1].current, 1);
	free(list);
	/* the snapshots live inside the overlay */
	char *argv[] = {"qemu-img", "snapshot", "-U", "-l", overlay_path, NULL};
	char *out = run(argv);
	assert_non_null(strstr(out, "before"));
	free(out);

	OK(virt_snapshot_revert(v, DOM, "before", 0, &err));
	OK(virt_domain_state(v, DOM, &st, &err));
	assert_int_equal(st, VIRT_STATE_RUNNING);
	OK(virt_snapshot_delete(v, DOM, stamp, &err));

	OK(virt_domain_destroy(v, DOM, &err));
	if (!wait_event(DOM, VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_DESTROYED, 60000))
		fail_msg("no stopped/destroyed event within 60 s");
	OK(virt_domain_destroy(v, DOM, &err)); /* not running: fine */

	/* offline: qemu-img snapshot on the overlay */
	OK(virt_snapshot_create(v, DOM, "offline", name, sizeof(name), &err));
	OK(virt_snapshot_list(v, DOM, &list, &n, &err));
	assert_int_equal(n, 2);
	assert_string_equal(list[1].name, "offline");
	assert_string_equal(list[1].state, "shutoff");
	free(list);
	/* reverting to the live one starts the domain again */
	OK(virt_snapshot_revert(v, DOM, "before", 0, &err));
	OK(virt_domain_state(v, DOM, &st, &err));
	assert_int_equal(st, VIRT_STATE_RUNNING);
	OK(virt_domain_destroy(v, DOM, &err));
}

/* The seed holds the agent's secret key: after the first hello tuapd ejects it (17.6), live
 * and in the definition, so a reboot does not bring it back; a second eject finds none. */
static void test_eject_seed(void **state)
{
	virDomainPtr d;
	char *xml;

	need_env();
	OK(virt_domain_start(v, DOM, &err));
	assert_int_equal(virt_domain_eject_cdroms(v, DOM, &err), 1);
	assert_non_null(d = virDomainLookupByName(virt_conn(v), DOM));
	for (int inactive = 0; inactive < 2; inactive++) {
		assert_non_null(
			xml = virDomainGetXMLDesc(d, inactive ? VIR_DOMAIN_XML_INACTIVE : 0));
		if (strstr(xml, seed_path))
			fail_msg("the seed is still in the %s XML:\n%s",
				 inactive ? "inactive" : "live", xml);
		assert_non_null(strstr(xml, "device='cdrom'")); /* the drive stays, empty */
		free(xml);
	}
	virDomainFree(d);
	assert_int_equal(virt_domain_eject_cdroms(v, DOM, &err), 0);
	OK(virt_domain_destroy(v, DOM, &err));
}

static void test_undefine(void **state)
{
	need_env();
	/* snapshot metadata goes with the domain (plain undefine would refuse) */
	OK(virt_domain_undefine(v, DOM, &err));
	if (!wait_event(DOM, VIR_DOMAIN_EVENT_UNDEFINED, VIR_DOMAIN_EVENT_UNDEFINED_REMOVED, 30000))
		fail_msg("no undefined/removed event within 30 s");
	assert_int_equal(virt_domain_exists(v, DOM, &err), 0);
	OK(virt_domain_undefine(v, DOM, &err));

	/* a domain with nvram: the file goes too */
	char nvram[512], xml[2048];
	snprintf(nvram, sizeof(nvram), "%s/uefi_VARS.fd", work);
	OK(fs_write_atomic(nvram, "vars", 4, 0600, &err));
	snprintf(xml, sizeof(xml),
		 "<domain type='qemu'><name>tuap-uefi</name><memory unit='MiB'>64</memory>"
		 "<features><acpi/></features>"
		 "<os><type arch='x86_64' machine='q35'>hvm</type>"
		 "<loader readonly='yes' type='pflash'>%s/code.fd</loader><nvram>%s</nvram></os>"
		 "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>",
		 work, nvram);
	if (virt_domain_define(v, xml, &err) < 0) {
		fprintf(stderr,
			"note: cannot define a UEFI domain here (%s): nvram undefine not "
			"tested\n",
			err.msg);
		return;
	}
	OK(virt_domain_undefine(v, "tuap-uefi", &err));
	assert_int_equal(fs_exists(nvram), 0);
}

static void test_teardown(void **state)
{
	char dir[512];
	struct virt_vol_info info;

	need_env();
	OK(virt_vol_delete(v, DPOOL, "disk.qcow2", &err));
	assert_int_equal(virt_vol_lookup(v, DPOOL, "disk.qcow2", &info, &err), 0);
	assert_int_equal(fs_exists(overlay_path), 0);
	OK(virt_pool_delete(v, DPOOL, &err)); /* takes the seed volume with it */
	snprintf(dir, sizeof(dir), "%s/pools/t.example", work);
	assert_int_equal(fs_exists(dir), 0);
	OK(virt_pool_delete(v, IPOOL, &err));
	assert_int_equal(fs_exists(base_path), 0);
	OK(virt_pool_delete(v, IPOOL, &err));
	OK(virt_network_delete(v, NET, &err));
	assert_int_equal(virtdef_bridge_check(BRIDGE, &err), -1);
	OK(virt_network_delete(v, NET, &err));
	assert_int_equal(virt_event_dropped(), 0);
}

/* Last: libvirtd goes away (the script passes the PID of the tini it started libvirtd under;
 * tini forwards SIGTERM) and the connection reports it as an event, not as a hung call. */
static void test_connection_closed(void **state)
{
	const char *pid = getenv("TUAP_LIBVIRTD_PID");
	struct virt_event ev;
	long long deadline = now_ms() + 30000;
	char buf[64];

	need_env();
	if (!pid) {
		fprintf(stderr, "TUAP_LIBVIRTD_PID not set: close event not tested\n");
		skip();
	}
	assert_int_equal(kill((pid_t)atoi(pid), SIGTERM), 0);
	for (;;) {
		while (virt_event_next(&ev) == 1) {
			if (ev.kind == VIRT_EV_CLOSED) {
				fprintf(stderr, "event: %s\n",
					virt_event_str(&ev, buf, sizeof(buf)));
				return;
			}
		}
		long long left = deadline - now_ms();
		if (left <= 0)
			fail_msg("no connection-closed event within 30 s of stopping libvirtd");
		struct pollfd p = {.fd = virt_event_fd(), .events = POLLIN};
		poll(&p, 1, (int)left);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pools),
		cmocka_unit_test(test_upload),
		cmocka_unit_test(test_overlay),
		cmocka_unit_test(test_seed_upload),
		cmocka_unit_test(test_network),
		cmocka_unit_test(test_domain),
		cmocka_unit_test(test_snapshots),
		cmocka_unit_test(test_eject_seed),
		cmocka_unit_test(test_undefine),
		cmocka_unit_test(test_teardown),
		cmocka_unit_test(test_connection_closed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
