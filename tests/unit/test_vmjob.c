/*
 * The VM manager (controller/vmjob*.c) with the real job engine, against libvirt's in-process
 * test driver (test:///default): plan's decisions (new, ours, not ours, --resume, --rebuild),
 * the metadata domxml writes and plan reads, a VM that stops while its job waits for hello,
 * status's VM state, and the requests (destroy [--purge], snapshot, restore, console-log).
 * The worker's results come back through vmjob_fd()/vmjob_dispatch as in tuapd.
 *
 * The test driver has no real storage (no uploads, no overlays): jobs here stop at the image
 * phase (no catalog), and what the driver cannot do is skipped, never faked. The image, disk,
 * seed and define phases on a real libvirtd are tests/e2e/test_provision_vm.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "job.h"
#include "render.h"
#include "settings.h"
#include "virt.h"
#include "vmjob.h"

#define URI	 "test:///default"
#define MAX_SEEN 512

#define OK(call)                                                                                   \
	do {                                                                                       \
		if ((call) < 0)                                                                    \
			fail_msg("%s: %s", #call, err.msg);                                        \
	} while (0)

struct seen {
	struct ctl_peer peer;
	Tuap__CtlEvent *ev;
};

static struct {
	struct seen ctl[MAX_SEEN];
	size_t n_ctl;
	char dir[64], state[128], pool[128];
	struct settings set;
	struct engine *e;
	struct vmjob *vj;
	struct virt *v; /* the test's own connection: the "operator" */
	struct phase_provider p;
	char peer_n;
	unsigned image_deadline_s; /* 0: the built-in one */
} T;

static int fake_agent_send(void *ctx, const char *domain, Tuap__Envelope *env)
{
	return -1; /* no agent ever connects here */
}

static int fake_ctl_send(void *ctx, const struct ctl_peer *peer, const Tuap__CtlEvent *ev)
{
	static uint8_t buf[1 << 20];
	size_t n;

	assert_true(T.n_ctl < MAX_SEEN);
	n = tuap__ctl_event__pack(ev, buf);
	T.ctl[T.n_ctl].peer = *peer;
	T.ctl[T.n_ctl++].ev = tuap__ctl_event__unpack(NULL, n, buf);
	return 0;
}

static int fake_allow(void *ctx, const char *domain, const char *key)
{
	return 0;
}

/* A fresh tuap-ctl connection for each request, so answers are told apart. */
static struct ctl_peer new_peer(void)
{
	struct ctl_peer p = {{'c', 't', 'l', 0}, 4};

	p.id[3] = (unsigned char)++T.peer_n;
	return p;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- what tuap-ctl saw ---- */

static const Tuap__CtlEvent *final_of(const struct ctl_peer *peer)
{
	for (size_t i = 0; i < T.n_ctl; i++)
		if (T.ctl[i].peer.len == peer->len &&
		    !memcmp(T.ctl[i].peer.id, peer->id, peer->len) && T.ctl[i].ev->final)
			return T.ctl[i].ev;
	return NULL;
}

static const Tuap__PhaseEvent *phase_ev(const char *domain, const char *phase,
					Tuap__PhaseEvent__State st)
{
	for (size_t i = 0; i < T.n_ctl; i++) {
		const Tuap__CtlEvent *ev = T.ctl[i].ev;

		if (ev->ev_case == TUAP__CTL_EVENT__EV_PHASE && ev->domain &&
		    !strcmp(ev->domain, domain) && !strcmp(ev->phase->phase, phase) &&
		    ev->phase->state == st)
			return ev->phase;
	}
	return NULL;
}

static const char *text_of(const Tuap__CtlEvent *ev)
{
	static char buf[8192];
	size_t k = 0;

	buf[0] = '\0';
	if (ev->ev_case == TUAP__CTL_EVENT__EV_ERROR)
		snprintf(buf, sizeof(buf), "%s", ev->error->message);
	else if (ev->ev_case == TUAP__CTL_EVENT__EV_TEXT)
		for (size_t i = 0; i < ev->text->n_lines && k < sizeof(buf); i++)
			k += (size_t)snprintf(buf + k, sizeof(buf) - k, "%s\n", ev->text->lines[i]);
	return buf;
}

static void assert_has(const char *hay, const char *needle)
{
	if (!hay || !strstr(hay, needle))
		fail_msg("'%s' not found in '%s'", needle, hay ? hay : "(nothing)");
}

/* ---- the main loop's part, as tuapd runs it ---- */

static const struct ctl_peer *wait_peer;
static const char *wait_domain, *wait_phase;
static Tuap__PhaseEvent__State wait_state;

static int answered(void)
{
	return final_of(wait_peer) != NULL;
}

static int phase_seen(void)
{
	return phase_ev(wait_domain, wait_phase, wait_state) != NULL;
}

/* Polls vmjob_fd, dispatches and checks the engine's deadlines until done() or 20 s. */
static void pump(int (*done)(void))
{
	long long deadline = now_ms() + 20000;

	engine_commit(T.e); /* what the request wrote, as tuapd's loop does after each pass */
	while (!done()) {
		long long left = deadline - now_ms();
		struct pollfd p = {.fd = vmjob_fd(T.vj), .events = POLLIN};
		long next = engine_tick(T.e, engine_now_ms());

		if (left <= 0)
			fail_msg("timeout after 20 s waiting for the VM manager");
		poll(&p, 1, next >= 0 && next < left ? (int)next : (int)left);
		vmjob_dispatch(T.vj, T.e);
		engine_commit(T.e); /* as tuapd's loop does at the end of each pass */
	}
}

static void wait_answer(const struct ctl_peer *peer)
{
	wait_peer = peer;
	pump(answered);
}

static const Tuap__PhaseEvent *wait_phase_ev(const char *domain, const char *phase,
					     Tuap__PhaseEvent__State st)
{
	wait_domain = domain;
	wait_phase = phase;
	wait_state = st;
	pump(phase_seen);
	return phase_ev(domain, phase, st);
}

/* ---- requests ---- */

static const char site_conf[] = "ips=192.0.2.10/24\ngateway=192.0.2.1\nmemory=256\ncpus=1\n";

static struct ctl_peer provision_conf(const char *domain, const char *conf, bool resume,
				      bool rebuild)
{
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__ProvisionRequest p = TUAP__PROVISION_REQUEST__INIT;
	struct ctl_peer peer = new_peer();

	p.domain = (char *)domain;
	p.conf_path = "provision.conf";
	p.conf_text.data = (uint8_t *)conf;
	p.conf_text.len = strlen(conf);
	p.has_resume = p.has_rebuild = 1;
	p.resume = resume;
	p.rebuild = rebuild;
	r.req_case = TUAP__CTL_REQUEST__REQ_PROVISION;
	r.provision = &p;
	engine_ctl_request(T.e, &peer, &r);
	engine_commit(T.e);
	return peer;
}

static struct ctl_peer provision(const char *domain, bool resume, bool rebuild)
{
	return provision_conf(domain, site_conf, resume, rebuild);
}

static const Tuap__CtlEvent *destroy(const char *domain, bool purge)
{
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__DestroyRequest d = TUAP__DESTROY_REQUEST__INIT;
	struct ctl_peer peer = new_peer();

	d.domain = (char *)domain;
	d.has_purge = 1;
	d.purge = purge;
	r.req_case = TUAP__CTL_REQUEST__REQ_DESTROY;
	r.destroy = &d;
	engine_ctl_request(T.e, &peer, &r);
	engine_commit(T.e);
	wait_answer(&peer);
	return final_of(&peer);
}

static const Tuap__CtlEvent *snapshot_req(const char *domain, const char *name, bool restore,
					  bool oldest, bool list)
{
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__SnapshotRequest s = TUAP__SNAPSHOT_REQUEST__INIT;
	struct ctl_peer peer = new_peer();

	s.domain = (char *)domain;
	s.name = (char *)name;
	s.has_oldest = s.has_list = 1;
	s.oldest = oldest;
	s.list = list;
	r.req_case = restore ? TUAP__CTL_REQUEST__REQ_RESTORE : TUAP__CTL_REQUEST__REQ_SNAPSHOT;
	if (restore)
		r.restore = &s;
	else
		r.snapshot = &s;
	engine_ctl_request(T.e, &peer, &r);
	engine_commit(T.e);
	wait_answer(&peer);
	return final_of(&peer);
}

static const Tuap__CtlEvent *snapshot(const char *domain, const char *name, bool restore,
				      bool oldest)
{
	return snapshot_req(domain, name, restore, oldest, false);
}

static const Tuap__CtlEvent *console_log(const char *domain, uint32_t lines)
{
	Tuap__CtlRequest r = TUAP__CTL_REQUEST__INIT;
	Tuap__DomainRequest d = TUAP__DOMAIN_REQUEST__INIT;
	struct ctl_peer peer = new_peer();

	d.domain = (char *)domain;
	d.has_lines = lines > 0;
	d.lines = lines;
	r.req_case = TUAP__CTL_REQUEST__REQ_CONSOLE_LOG;
	r.console_log = &d;
	engine_ctl_request(T.e, &peer, &r);
	engine_commit(T.e);
	wait_answer(&peer);
	return final_of(&peer);
}

/* ---- domains the "operator" makes in the test driver ---- */

static void define(const char *name, const char *devices)
{
	char xml[2048];
	struct tuap_err err;

	snprintf(xml, sizeof(xml),
		 "<domain type='test'><name>%s</name><memory unit='MiB'>64</memory>"
		 "<os><type>hvm</type></os><devices>%s</devices></domain>",
		 name, devices ? devices : "");
	OK(virt_domain_define(T.v, xml, &err));
}

/* A domain as tuap would have left it: our metadata, made by job_id. */
static void define_ours(const char *name, const char *job_id, const char *devices)
{
	struct tuap_meta m = {0};
	struct tuap_err err;

	define(name, devices);
	snprintf(m.version, sizeof(m.version), "0.1.0");
	snprintf(m.provision_id, sizeof(m.provision_id), "%s", job_id);
	snprintf(m.instance_id, sizeof(m.instance_id), "tuap-%s", job_id);
	snprintf(m.agent_key, sizeof(m.agent_key), "rq:rM>}U?@Lns47E1%%kR.o@n%%FcmmsL/@{H8]yf7");
	snprintf(m.image, sizeof(m.image), "debian-12");
	OK(virt_domain_set_meta(T.v, name, &m, &err));
}

static int exists(const char *name)
{
	struct tuap_err err;
	int rc = virt_domain_exists(T.v, name, &err);

	assert_true(rc >= 0);
	return rc;
}

/* ---- fixtures ---- */

static int setup(void **state)
{
	struct engine_conf c = {0};
	struct engine_io io = {fake_agent_send, fake_ctl_send, fake_allow, NULL};
	struct tuap_err err;

	unsigned image_deadline_s = T.image_deadline_s;

	memset(&T, 0, sizeof(T));
	T.image_deadline_s = image_deadline_s;
	snprintf(T.dir, sizeof(T.dir), "/tmp/tuap-vmjob-XXXXXX");
	assert_non_null(mkdtemp(T.dir));
	snprintf(T.state, sizeof(T.state), "%s/state", T.dir);
	snprintf(T.pool, sizeof(T.pool), "%s/vms", T.dir);
	settings_defaults(&T.set);
	snprintf(T.set.libvirt_uri, sizeof(T.set.libvirt_uri), URI);
	snprintf(T.set.state_dir, sizeof(T.set.state_dir), "%s", T.state);
	snprintf(T.set.pool_root, sizeof(T.set.pool_root), "%s", T.pool);
	snprintf(T.set.image_catalog, sizeof(T.set.image_catalog), "%s/no-images.conf", T.dir);
	snprintf(T.set.image_dir, sizeof(T.set.image_dir), "%s", T.dir);
	c.state_dir = T.state;
	c.deadline_s[PH_IMAGE] = T.image_deadline_s;
	c.pool_root = T.pool;
	c.server_public_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
	T.e = engine_new(&c, &io, &err);
	assert_non_null(T.e);
	T.vj = vmjob_new(&T.set, &err);
	assert_non_null(T.vj);
	vmjob_provider(T.vj, &T.p);
	engine_set_provider(T.e, &T.p);
	/* events first, so that the test's connection is set up like tuapd's */
	if (virt_event_start(&err) < 0 || !(T.v = virt_open(URI, &err)))
		fail_msg("%s", err.msg);
	return 0;
}

/* The image phase's deadline at 2 s. */
static int setup_short_image(void **state)
{
	T.image_deadline_s = 2;
	return setup(state);
}

static int teardown(void **state)
{
	char cmd[128];

	virt_close(T.v);
	vmjob_free(T.vj);
	engine_free(T.e);
	virt_event_stop();
	for (size_t i = 0; i < T.n_ctl; i++)
		tuap__ctl_event__free_unpacked(T.ctl[i].ev, NULL);
	T.image_deadline_s = 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* ---- tests ---- */

static void test_plan_decide(void **state)
{
	struct tuap_meta m = {0};
	struct job_flags none = {0}, resumed = {.resumed = true}, rebuild = {.rebuild = true},
			 both = {.resumed = true, .rebuild = true};

	snprintf(m.provision_id, sizeof(m.provision_id), "J1");
	assert_int_equal(vmjob_plan_decide(false, false, NULL, "J2", none), VMJOB_CREATE);
	assert_int_equal(vmjob_plan_decide(false, false, NULL, "J2", rebuild), VMJOB_CREATE);
	assert_int_equal(vmjob_plan_decide(true, false, NULL, "J2", none), VMJOB_REFUSE_FOREIGN);
	assert_int_equal(vmjob_plan_decide(true, false, NULL, "J2", both), VMJOB_REFUSE_FOREIGN);
	assert_int_equal(vmjob_plan_decide(true, true, &m, "J2", none), VMJOB_REFUSE_OURS);
	assert_int_equal(vmjob_plan_decide(true, true, &m, "J2", resumed), VMJOB_CONTINUE);
	assert_int_equal(vmjob_plan_decide(true, true, &m, "J2", rebuild), VMJOB_REBUILD);
	assert_int_equal(vmjob_plan_decide(true, true, &m, "J2", both), VMJOB_REBUILD);
	/* this job's own VM (a restart, a resumed define): never refused nor rebuilt twice */
	assert_int_equal(vmjob_plan_decide(true, true, &m, "J1", none), VMJOB_CONTINUE);
	assert_int_equal(vmjob_plan_decide(true, true, &m, "J1", rebuild), VMJOB_CONTINUE);
}

static void test_new_domain(void **state)
{
	struct ctl_peer peer = provision("new.test", false, false);
	const Tuap__PhaseEvent *ph;

	ph = phase_ev("new.test", "plan", TUAP__PHASE_EVENT__STATE__DONE);
	assert_non_null(ph);
	assert_has(ph->message, "no VM named new.test yet: it is created");
	/* the image phase runs on the worker; without a catalog it fails, naming it */
	ph = wait_phase_ev("new.test", "image", TUAP__PHASE_EVENT__STATE__FAILED);
	assert_has(ph->message, "/no-images.conf: cannot read the image catalog");
	wait_answer(&peer);
	assert_int_equal(final_of(&peer)->exit_code, 1);
	assert_false(exists("new.test"));
}

static void test_foreign_domain(void **state)
{
	struct ctl_peer peer;
	const Tuap__PhaseEvent *ph;
	const Tuap__CtlEvent *ev;

	define("foreign.test", NULL);
	peer = provision("foreign.test", false, false);
	ph = phase_ev("foreign.test", "plan", TUAP__PHASE_EVENT__STATE__FAILED);
	assert_non_null(ph);
	assert_has(ph->message, "a libvirt domain named foreign.test exists and is not tuap's");
	assert_int_equal(final_of(&peer)->exit_code, 1);
	assert_null(phase_ev("foreign.test", "image", TUAP__PHASE_EVENT__STATE__STARTED));
	/* not even --rebuild or destroy touch it */
	provision("foreign.test", false, true);
	ev = destroy("foreign.test", true);
	assert_int_equal(ev->ev_case, TUAP__CTL_EVENT__EV_ERROR);
	assert_int_equal(ev->error->code, TUAP__ERROR__CODE__REFUSED);
	assert_has(ev->error->message, "foreign.test is a libvirt domain that tuap did not make");
	assert_true(exists("foreign.test"));
	assert_null(T.p.vm_state(T.p.ctx, "foreign.test")); /* not a VM of ours */
}

/* Ours, made by another job: refused; --resume continues with it (nothing is created, its
 * agent keeps its key); the VM stopping while the job waits for hello fails the job at once. */
static void test_ours_resume_and_stop(void **state)
{
	const char *d = "ours.test";
	struct ctl_peer peer;
	const Tuap__PhaseEvent *ph;
	char path[256];
	struct tuap_err err;

	define_ours(d, "20260101T000000-0a0b0c", NULL);
	OK(virt_domain_start(T.v, d, &err));
	peer = provision(d, false, false);
	ph = phase_ev(d, "plan", TUAP__PHASE_EVENT__STATE__FAILED);
	assert_non_null(ph);
	assert_has(ph->message, "ours.test already has a VM made by tuap (job "
				"20260101T000000-0a0b0c); 'tuap-ctl provision --resume ours.test'");
	assert_int_equal(final_of(&peer)->exit_code, 1);

	peer = provision(d, true, false);
	ph = phase_ev(d, "plan", TUAP__PHASE_EVENT__STATE__DONE);
	assert_non_null(ph);
	assert_has(ph->message, "the VM exists (made by job 20260101T000000-0a0b0c): continuing");
	for (const char *const *p = (const char *const[]){"image", "disk", "keys", "seed", NULL};
	     *p; p++) {
		ph = phase_ev(d, *p, TUAP__PHASE_EVENT__STATE__DONE);
		assert_non_null(ph);
		assert_has(ph->message, "nothing to create");
	}
	ph = phase_ev(d, "define", TUAP__PHASE_EVENT__STATE__DONE);
	assert_non_null(ph);
	assert_has(ph->message, "nothing to define");
	assert_non_null(phase_ev(d, "hello", TUAP__PHASE_EVENT__STATE__STARTED));
	snprintf(path, sizeof(path), "%s/keys/%s.pub", T.state, d);
	assert_false(fs_exists(path)); /* the existing agent's key stays the valid one */
	assert_string_equal(T.p.vm_state(T.p.ctx, d), "running");

	/* the operator (or a crash) stops it: the job fails now, not at the hello deadline */
	OK(virt_domain_destroy(T.v, d, &err));
	ph = wait_phase_ev(d, "hello", TUAP__PHASE_EVENT__STATE__FAILED);
	assert_has(ph->message, "the VM stopped (stopped/destroyed) before its agent said hello");
	assert_true(ph->n_lines >= 1); /* the console tail, or why there is none */
	assert_has(ph->lines[0], "logs no serial console to a file");
	assert_int_equal(final_of(&peer)->exit_code, 1);
	assert_string_equal(T.p.vm_state(T.p.ctx, d), "shut off");
}

static void test_rebuild(void **state)
{
	const char *d = "rebuild.test", *old = "20260101T000000-0d0e0f";
	const Tuap__PhaseEvent *ph;
	struct ctl_peer peer;
	struct tuap_err err;
	char name[VIRT_NAME_MAX];

	/* can this driver snapshot at all? */
	define("probe.test", NULL);
	if (virt_snapshot_create(T.v, "probe.test", "p", name, sizeof(name), &err) < 0) {
		fprintf(stderr, "snapshots unsupported by %s: %s\n", URI, err.msg);
		skip();
	}
	OK(virt_domain_undefine(T.v, "probe.test", &err));

	define_ours(d, old, NULL);
	OK(virt_domain_start(T.v, d, &err));
	peer = provision(d, false, true);
	ph = wait_phase_ev(d, "plan", TUAP__PHASE_EVENT__STATE__DONE);
	assert_has(ph->message, "old VM (job 20260101T000000-0d0e0f) powered off, snapshot "
				"tuap-before-");
	assert_has(ph->message, "undefined; its disk disk-20260101T000000-0d0e0f.qcow2 stays in "
				"pool tuap-rebuild.test");
	assert_false(exists(d));
	/* then a new VM would be made: here the image phase stops it (no catalog) */
	wait_phase_ev(d, "image", TUAP__PHASE_EVENT__STATE__FAILED);
	wait_answer(&peer);
	assert_int_equal(final_of(&peer)->exit_code, 1);
}

/* What domxml_render writes into <metadata> is what plan and the requests read. */
static void test_metadata(void **state)
{
	struct domain_conf c = {0};
	struct tuap_meta m;
	struct buf xml = BUF_INIT;
	struct tuap_err err;
	char mac0[18], mac1[18];
	struct render_input in = {
		.conf = &c,
		.set = &T.set,
		.instance_id = "tuap-20260102T030405-a1b2c3",
		.provision_id = "20260102T030405-a1b2c3",
		.mac_mgmt = mac0,
		.mac_public = mac1,
		.disk_path = "/vms/meta.test/disk.qcow2",
		.backing_path = "/vms/images/base.qcow2",
		.seed_path = "/vms/meta.test/seed.iso",
		.console_log = "/vms/meta.test/console.log",
		.agent_public_key = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
	};

	snprintf(c.name, sizeof(c.name), "meta.test");
	snprintf(c.image, sizeof(c.image), "debian-12");
	c.memory_mib = 256;
	c.cpus = 1;
	domain_mac(c.name, 0, mac0);
	domain_mac(c.name, 1, mac1);
	OK(domxml_render(&in, &xml, &err));
	OK(virt_domain_define(T.v, xml.s, &err));
	buf_free(&xml);
	assert_int_equal(virt_domain_is_ours(T.v, "meta.test", &m, &err), 1);
	assert_string_equal(m.version, TUAP_VERSION);
	assert_string_equal(m.provision_id, "20260102T030405-a1b2c3");
	assert_string_equal(m.instance_id, "tuap-20260102T030405-a1b2c3");
	assert_string_equal(m.agent_key, "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID");
	assert_string_equal(m.image, "debian-12");
	assert_string_equal(T.p.vm_state(T.p.ctx, "meta.test"), "shut off");
	assert_null(T.p.vm_state(T.p.ctx, "nosuch.test"));
	OK(virt_domain_undefine(T.v, "meta.test", &err));
}

static void test_snapshot_restore(void **state)
{
	const char *d = "snap.test";
	const Tuap__CtlEvent *ev;
	struct tuap_err err;

	define_ours(d, "20260101T000000-0f0f0f", NULL);
	OK(virt_domain_start(T.v, d, &err));
	ev = snapshot(d, "first", false, false);
	if (ev->ev_case == TUAP__CTL_EVENT__EV_ERROR &&
	    strstr(ev->error->message, "not supported")) {
		fprintf(stderr, "snapshots unsupported by %s: %s\n", URI, ev->error->message);
		skip();
	}
	assert_int_equal(ev->exit_code, 0);
	assert_has(text_of(ev), "snapshot first of snap.test taken (running, with memory)");
	ev = snapshot(d, NULL, false, false);
	assert_int_equal(ev->exit_code, 0);
	assert_has(text_of(ev), "snapshot tuap-20");
	/* --list: NAME, then the day it was taken (what the bash completion reads), oldest first */
	ev = snapshot_req(d, NULL, false, false, true);
	assert_int_equal(ev->exit_code, 0);
	assert_int_equal(ev->text->n_lines, 2);
	assert_true(strncmp(ev->text->lines[0], "first ", 6) == 0);
	assert_non_null(strstr(ev->text->lines[0], " 20"));
	assert_true(strncmp(ev->text->lines[1], "tuap-20", 7) == 0);
	assert_has(ev->text->lines[1], "(current)");

	OK(virt_domain_destroy(T.v, d, &err));
	ev = snapshot(d, NULL, true, true); /* --oldest */
	assert_int_equal(ev->exit_code, 0);
	assert_has(text_of(ev), "snap.test restored to snapshot first (taken ");
	assert_string_equal(T.p.vm_state(T.p.ctx, d), "running");
	ev = snapshot(d, "nope", true, false);
	assert_int_equal(ev->exit_code, 1);
	assert_has(text_of(ev), "snap.test has no snapshot nope (it has 2; the newest is tuap-20");
	ev = snapshot("nosuch.test", NULL, false, false);
	assert_int_equal(ev->error->code, TUAP__ERROR__CODE__NOT_FOUND);
	define_ours("nosnap.test", "20260101T000000-0e0e0e", NULL);
	ev = snapshot_req("nosnap.test", NULL, false, false, true);
	assert_int_equal(ev->exit_code, 0);
	assert_has(text_of(ev), "nosnap.test has no snapshots");
	OK(virt_domain_undefine(T.v, "nosnap.test", &err));
	OK(virt_domain_destroy(T.v, d, &err));
	OK(virt_domain_undefine(T.v, d, &err));
}

static void test_console_log(void **state)
{
	const char *d = "con.test";
	const Tuap__CtlEvent *ev;
	char path[256], dev[512];
	static const char log[] = "[    0.000000] Linux version 6.1\n"
				  "\x1b[0;32m  OK  \x1b[0m] Started tuap agent.\r\n"
				  "caf\xc3\xa9\tdone\n"
				  "last line without newline";
	struct tuap_err err;

	define_ours("nocon.test", "20260101T000000-0c0c0c", NULL);
	ev = console_log("nocon.test", 0);
	assert_int_equal(ev->exit_code, 1);
	assert_has(text_of(ev), "nocon.test logs no serial console to a file");

	snprintf(path, sizeof(path), "%s/console.log", T.dir);
	snprintf(dev, sizeof(dev), "<serial type='file'><source path='%s'/></serial>", path);
	define_ours(d, "20260101T000000-0d0d0d", dev);
	ev = console_log(d, 0); /* not started yet: no file, no lines */
	assert_int_equal(ev->exit_code, 0);
	assert_int_equal(ev->text->n_lines, 0);
	OK(fs_write_atomic(path, log, strlen(log), 0644, &err));
	ev = console_log(d, 0);
	assert_int_equal(ev->exit_code, 0);
	assert_int_equal(ev->text->n_lines, 4);
	assert_string_equal(ev->text->lines[1], "  OK  ] Started tuap agent.");
	assert_string_equal(ev->text->lines[2], "caf?? done");
	assert_string_equal(ev->text->lines[3], "last line without newline");
	ev = console_log(d, 2);
	assert_int_equal(ev->text->n_lines, 2);
	assert_string_equal(ev->text->lines[0], "caf?? done");

	define("alien.test", NULL);
	ev = console_log("alien.test", 0);
	assert_int_equal(ev->error->code, TUAP__ERROR__CODE__REFUSED);
	OK(virt_domain_undefine(T.v, d, &err));
	OK(virt_domain_undefine(T.v, "nocon.test", &err));
	OK(virt_domain_undefine(T.v, "alien.test", &err));
}

/* destroy keeps disks, keys and journal; --purge removes what tuapd keeps of the domain too. */
static void test_destroy(void **state)
{
	const char *d = "gone.test";
	const Tuap__CtlEvent *ev;
	struct ctl_peer peer;
	char path[256];
	struct tuap_err err;

	define_ours(d, "20260101T000000-0e0e0e", NULL);
	OK(virt_domain_start(T.v, d, &err));
	/* a job that fails at plan leaves a journal, as a real one would */
	peer = provision(d, false, false);
	assert_int_equal(final_of(&peer)->exit_code, 1);
	snprintf(path, sizeof(path), "%s/domains/%s/journal", T.state, d);
	assert_true(fs_exists(path));

	/* continued with --resume, the job waits for hello when the domain is destroyed */
	peer = provision(d, true, false);
	assert_non_null(phase_ev(d, "hello", TUAP__PHASE_EVENT__STATE__STARTED));
	ev = destroy(d, false);
	assert_int_equal(ev->exit_code, 0);
	assert_has(text_of(ev), "cancelled (it was in phase hello)");
	assert_has(text_of(ev), "destroyed and undefined gone.test (it was running)");
	assert_int_equal(final_of(&peer)->exit_code, 1);
	assert_has(phase_ev(d, "hello", TUAP__PHASE_EVENT__STATE__FAILED)->message,
		   "cancelled: the domain is being destroyed");
	assert_has(text_of(ev), "kept: storage pool tuap-gone.test");
	assert_false(exists(d));
	assert_true(fs_exists(path));
	ev = destroy(d, false);
	assert_int_equal(ev->error->code, TUAP__ERROR__CODE__NOT_FOUND);
	assert_has(ev->error->message, "--purge deletes what is left of it");

	ev = destroy(d, true);
	assert_int_equal(ev->exit_code, 0);
	assert_has(text_of(ev), "removed the journal and job inputs");
	assert_false(fs_exists(path));
	snprintf(path, sizeof(path), "%s/domains/%s", T.state, d);
	assert_false(fs_exists(path));
	ev = destroy(d, true);
	assert_int_equal(ev->error->code, TUAP__ERROR__CODE__NOT_FOUND);
	assert_has(ev->error->message, "nothing of it is left to purge");
	ev = destroy("not a name", false);
	assert_int_equal(ev->error->code, TUAP__ERROR__CODE__INVALID);
}

/* 17.5: an image that takes longer than its phase's deadline (here a 1 TiB sparse file below
 * image_dir, hours of hashing) fails its job at the deadline, and the worker gives it up: the
 * next job's image phase and a destroy are not stuck behind it. */
static void test_image_deadline_frees_worker(void **state)
{
	char big[128], small[128], conf[512];
	const Tuap__PhaseEvent *ph;
	struct ctl_peer peer;
	struct tuap_err err;
	int fd;

	snprintf(big, sizeof(big), "%s/big.raw", T.dir);
	fd = open(big, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)1 << 40), 0);
	close(fd);
	snprintf(small, sizeof(small), "%s/small.raw", T.dir);
	OK(fs_write_atomic(small, "a small raw image", 17, 0644, &err));

	snprintf(conf, sizeof(conf), "%simage=%s\n", site_conf, big);
	peer = provision_conf("big.test", conf, false, false);
	ph = wait_phase_ev("big.test", "image", TUAP__PHASE_EVENT__STATE__STALLED);
	assert_has(ph->message, "not done within 2 s");
	wait_answer(&peer);
	assert_int_equal(final_of(&peer)->exit_code, 1);

	/* the worker is free for the next job: its image phase ends on the worker's own answer */
	snprintf(conf, sizeof(conf), "%simage=%s\n", site_conf, small);
	peer = provision_conf("small.test", conf, false, false);
	wait_answer(&peer);
	assert_null(phase_ev("small.test", "image", TUAP__PHASE_EVENT__STATE__STALLED));
	ph = phase_ev("small.test", "image", TUAP__PHASE_EVENT__STATE__FAILED);
	if (!ph)
		ph = phase_ev("small.test", "image", TUAP__PHASE_EVENT__STATE__DONE);
	assert_non_null(ph);
	print_message("small.test's image phase: %s\n", ph->message);

	/* a destroy cancels a job whose image is being hashed, and is answered */
	snprintf(conf, sizeof(conf), "%simage=%s\n", site_conf, big);
	peer = provision_conf("big2.test", conf, false, false);
	wait_phase_ev("big2.test", "image", TUAP__PHASE_EVENT__STATE__STARTED);
	assert_has(text_of(destroy("big2.test", false)), "job ");
	wait_answer(&peer);
	assert_int_equal(final_of(&peer)->exit_code, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_decide),
		cmocka_unit_test_setup_teardown(test_new_domain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_domain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ours_resume_and_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_restore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_console_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_deadline_frees_worker, setup_short_image,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
