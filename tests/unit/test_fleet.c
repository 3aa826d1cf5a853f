/*
 * Several hypervisors (controller/tuapd/vm/fleet.c) on libvirt's test driver: two hypervisors
 * from custom driver files (different memory, CPUs and domains) and one that does not exist,
 * read from a tuapd.conf `hypervisors` list. Checks what `provision --dry-run` is told (the place
 * request: by free memory, pinned, by label, nothing fits, a hypervisor down), what `tuap-ctl
 * hypervisors` is told, and that a site already on a hypervisor stays there. The real two-libvirtd
 * test with guests is tests/e2e/test_hypervisors.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fleet.h"
#include "fsutil.h"
#include "job.h"
#include "settings.h"
#include "virt.h"

#define MAX_SEEN 64

static struct {
	Tuap__CtlEvent *ev[MAX_SEEN];
	size_t n;
	char dir[64];
	struct settings set;
	struct engine *e;
	struct fleet *f;
	struct phase_provider p;
} T;

static int fake_agent_send(void *ctx, const char *domain, Tuap__Envelope *env)
{
	return -1;
}

static int fake_ctl_send(void *ctx, const struct ctl_peer *peer, const Tuap__CtlEvent *ev)
{
	static uint8_t buf[1 << 20];
	size_t n;

	assert_true(T.n < MAX_SEEN);
	n = tuap__ctl_event__pack(ev, buf);
	T.ev[T.n++] = tuap__ctl_event__unpack(NULL, n, buf);
	return 0;
}

static int fake_allow(void *ctx, const char *domain, const char *key)
{
	return 0;
}

static void assert_has(const char *hay, const char *needle)
{
	if (!hay || !strstr(hay, needle))
		fail_msg("'%s' not found in '%s'", needle, hay ? hay : "(nothing)");
}

/* A test-driver node: mem_kib of memory, cpus CPUs, and one shut-off domain of dom_kib (none
 * when 0), named NAME; tuap's metadata on it when ours. */
static void node_file(const char *path, unsigned long long mem_kib, unsigned cpus, const char *dom,
		      unsigned long long dom_kib, bool ours)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fprintf(fp,
		"<node>\n<cpu><nodes>1</nodes><sockets>1</sockets><cores>%u</cores>"
		"<threads>1</threads><active>%u</active><mhz>2000</mhz><model>i686</model></cpu>\n"
		"<memory>%llu</memory>\n",
		cpus, cpus, mem_kib);
	if (dom_kib)
		fprintf(fp,
			"<domain type='test'><name>%s</name><memory unit='KiB'>%llu</memory>"
			"<vcpu>2</vcpu>%s<os><type arch='i686'>hvm</type></os></domain>\n",
			dom, dom_kib,
			ours ? "<metadata><tuap:domain "
			       "xmlns:tuap='https://tuap.dev/xmlns/domain/1'>"
			       "<tuap:version>0.2.0</tuap:version><tuap:provision-id>j1"
			       "</tuap:provision-id></tuap:domain></metadata>"
			     : "");
	fprintf(fp, "</node>\n");
	fclose(fp);
}

static int setup(void **state)
{
	struct engine_conf c = {0};
	struct engine_io io = {fake_agent_send, fake_ctl_send, fake_allow, NULL};
	struct tuap_err err;
	char conf[4096], path[128], a[128], b[128];

	(void)state;
	memset(&T, 0, sizeof(T));
	snprintf(T.dir, sizeof(T.dir), "/tmp/tuap-fleet-XXXXXX");
	assert_non_null(mkdtemp(T.dir));
	snprintf(a, sizeof(a), "%s/hv-a.xml", T.dir);
	snprintf(b, sizeof(b), "%s/hv-b.xml", T.dir);
	/* hv-a: 8 GiB, 4 CPUs, a foreign 6 GiB domain; hv-b: 16 GiB, 8 CPUs, a site of tuap's */
	node_file(a, 8ull << 20, 4, "big", 6ull << 20, false);
	node_file(b, 16ull << 20, 8, "old.test", 1ull << 20, true);
	snprintf(conf, sizeof(conf),
		 "state_dir = \"%s/state\";\npool_root = \"%s/vms\";\n"
		 "hypervisors = (\n"
		 "  { name = \"hv-a\"; libvirt_uri = \"test://%s\"; reserve_memory = 0;"
		 " reserve_cpus = 0; labels = [\"ssd\"]; },\n"
		 "  { name = \"hv-b\"; libvirt_uri = \"test://%s\"; reserve_memory = 0;"
		 " reserve_cpus = 0; },\n"
		 "  { name = \"hv-c\"; libvirt_uri = \"test://%s/absent.xml\"; }\n"
		 ");\n",
		 T.dir, T.dir, a, b, T.dir);
	snprintf(path, sizeof(path), "%s/tuapd.conf", T.dir);
	if (settings_parse(path, conf, &T.set, &err) < 0)
		fail_msg("%s", err.msg);
	c.state_dir = T.set.state_dir;
	c.pool_root = T.set.pool_root;
	c.server_public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
	assert_non_null(T.e = engine_new(&c, &io, &err));
	assert_non_null(T.f = fleet_new(&T.set, &err));
	fleet_provider(T.f, &T.p);
	engine_set_provider(T.e, &T.p);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	fleet_free(T.f);
	engine_free(T.e);
	for (size_t i = 0; i < T.n; i++)
		tuap__ctl_event__free_unpacked(T.ev[i], NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* Asks where DOMAIN with provision.conf text would go; the answer's line and exit code. */
static const char *place(const char *domain, const char *text, int *code)
{
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__ProvisionRequest pr = TUAP__PROVISION_REQUEST__INIT;
	struct ctl_peer peer = {{'c'}, 1};
	const Tuap__CtlEvent *ev;

	pr.domain = (char *)domain;
	pr.conf_path = "provision.conf";
	pr.conf_text.data = (uint8_t *)text;
	pr.conf_text.len = strlen(text);
	r.req_case = TUAP__CTL_REQUEST__REQ_PLACE;
	r.place = &pr;
	engine_ctl_request(T.e, &peer, &r);
	assert_true(T.n > 0);
	ev = T.ev[T.n - 1];
	assert_true(ev->final);
	*code = ev->exit_code;
	if (ev->ev_case == TUAP__CTL_EVENT__EV_ERROR)
		return ev->error->message;
	assert_int_equal(ev->ev_case, TUAP__CTL_EVENT__EV_TEXT);
	assert_int_equal(ev->text->n_lines, 1);
	return ev->text->lines[0];
}

#define NET "ips=192.0.2.10\ngateway=192.0.2.1\n"

/* DOMAIN's agent key in the state dir, as a provision or enroll leaves it. */
static void mkdir_keys(const char *domain)
{
	char path[PATH_MAX + 64];
	struct tuap_err err;

	snprintf(path, sizeof(path), "%s/keys", T.set.state_dir);
	if (fs_mkdir_p(path, 0700, &err) < 0)
		fail_msg("%s", err.msg);
	snprintf(path, sizeof(path), "%s/keys/%s.pub", T.set.state_dir, domain);
	if (fs_write_atomic(path, "x", 1, 0644, &err) < 0)
		fail_msg("%s", err.msg);
}

static void test_settings(void **state)
{
	(void)state;
	assert_int_equal(T.set.n_hv, 3);
	assert_true(T.set.hv_listed);
	assert_string_equal(T.set.hv[1].name, "hv-b");
	/* left out: from the top level */
	assert_string_equal(T.set.hv[2].pool_root, T.set.pool_root);
	assert_string_equal(T.set.hv[2].agent_endpoint, T.set.agent_endpoint);
	assert_int_equal(T.set.hv[2].reserve_memory_mib, 2048);
	assert_false(T.set.hv[0].remote);
}

static void test_place_by_memory_pin_labels(void **state)
{
	const char *line;
	int code;

	(void)state;
	/* 2 GiB: hv-a has 2 GiB free (8 - 6), hv-b 15: hv-b; hv-c does not answer */
	line = place("new.test", NET "memory=2G\ncpus=1\nsize=2G\n", &code);
	assert_int_equal(code, 0);
	assert_has(line, "hypervisor: hv-b: placed");
	assert_has(line, "hv-c: unreachable");
	/* pinned to hv-a: fits exactly */
	line = place("new.test", NET "memory=2G\ncpus=1\nsize=2G\nhypervisor=hv-a\n", &code);
	assert_int_equal(code, 0);
	assert_has(line, "hypervisor: hv-a: pinned by hypervisor=hv-a");
	/* pinned to hv-a, 3 GiB: does not fit, exit 1 */
	line = place("new.test", NET "memory=3G\ncpus=1\nsize=2G\nhypervisor=hv-a\n", &code);
	assert_int_equal(code, 1);
	assert_has(line,
		   "hv-a (hypervisor=hv-a) does not fit: memory: 3072 MiB asked, 2048 MiB free");
	/* a label only hv-a has */
	line = place("new.test", NET "memory=1G\ncpus=1\nsize=2G\nhypervisor_labels=ssd\n", &code);
	assert_int_equal(code, 0);
	assert_has(line, "hypervisor: hv-a: placed");
	assert_has(line, "hv-b: has no label ssd");
	/* nothing has 20 GiB */
	line = place("new.test", NET "memory=20G\ncpus=1\nsize=2G\n", &code);
	assert_int_equal(code, 1);
	assert_has(line, "hypervisor: none fits: ");
	/* a bad provision.conf is an error naming the line */
	line = place("new.test", NET "memory=lots\n", &code);
	assert_int_equal(code, 1);
	assert_has(line, "provision.conf:3: memory:");
}

static void test_site_stays_and_down(void **state)
{
	const char *line;
	int code;

	(void)state;
	/* old.test has a VM of tuap's on hv-b: it stays there, whatever fits elsewhere */
	line = place("old.test", NET "memory=1G\ncpus=1\nsize=2G\n", &code);
	assert_int_equal(code, 0);
	assert_has(line, "hypervisor: hv-b: old.test is there already (its VM)");
	line = place("old.test", NET "memory=1G\ncpus=1\nsize=2G\nhypervisor=hv-a\n", &code);
	assert_int_equal(code, 1);
	assert_has(line, "old.test is on hv-b (");
	assert_has(line, "tuap does not move a site");
	/* a foreign domain on hv-a does not make "big" a site of hv-a: it is placed */
	line = place("big", NET "memory=1G\ncpus=1\nsize=2G\n", &code);
	assert_int_equal(code, 0);
	assert_has(line, "hypervisor: hv-b: placed");
	/* a site tuapd has provisioned before (its key) may be on hv-c, which does not answer: only
	 * pinned does it go anywhere */
	mkdir_keys("known.test");
	line = place("known.test", NET "memory=1G\ncpus=1\nsize=2G\n", &code);
	assert_int_equal(code, 1);
	assert_has(line, "not placed: hv-c (test://");
	assert_has(line, "may be there");
	line = place("known.test", NET "memory=1G\ncpus=1\nsize=2G\nhypervisor=hv-b\n", &code);
	assert_int_equal(code, 0);
	assert_has(line, "hypervisor: hv-b: pinned");
}

static void test_hypervisors_reply(void **state)
{
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__HypervisorsRequest hr = TUAP__HYPERVISORS_REQUEST__INIT;
	struct ctl_peer peer = {{'c'}, 1};
	const Tuap__HypervisorsReply *h;
	struct strlist names = {0};

	(void)state;
	r.req_case = TUAP__CTL_REQUEST__REQ_HYPERVISORS;
	r.hypervisors = &hr;
	engine_ctl_request(T.e, &peer, &r);
	assert_int_equal(T.ev[T.n - 1]->ev_case, TUAP__CTL_EVENT__EV_HYPERVISORS);
	h = T.ev[T.n - 1]->hypervisors;
	assert_int_equal(h->n_hypervisors, 3);
	assert_string_equal(h->hypervisors[0]->state, "up");
	assert_int_equal(h->hypervisors[0]->memory_total_mib, 8192);
	assert_int_equal(h->hypervisors[0]->memory_committed_mib, 6144);
	assert_int_equal(h->hypervisors[0]->cpus, 4);
	assert_int_equal(h->hypervisors[0]->guests, 1);
	assert_int_equal(h->hypervisors[0]->sites, 0);
	assert_int_equal(h->hypervisors[0]->n_labels, 1);
	assert_int_equal(h->hypervisors[1]->sites, 1);
	assert_int_equal(h->hypervisors[1]->vcpus_committed, 2);
	assert_string_equal(h->hypervisors[2]->state, "unreachable");
	assert_has(h->hypervisors[2]->error, "absent.xml");
	/* list: old.test with its hypervisor */
	T.p.domains(T.p.ctx, &names);
	assert_int_equal(names.n, 1);
	strlist_free(&names);
	assert_string_equal(T.p.hypervisor(T.p.ctx, "old.test"), "hv-b");
	assert_null(T.p.hypervisor(T.p.ctx, "new.test"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_place_by_memory_pin_labels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_site_stays_and_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hypervisors_reply, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
