/*
 * The VM phases of a job (ARCHITECTURE.md, phases 3-8), their main-thread half: look the domain up,
 * decide, make the keys and render the seed's files, then hand the slow part to the worker
 * (vmjob_task.c) and report its result to the engine when it comes back.
 *
 * Resuming: every phase first looks at libvirt. A domain that exists and is ours makes the
 * creation phases no-ops (the job continues with that VM; define only makes sure it runs); the
 * overlay is named after the job, so a resumed disk phase finds its own; what a phase needs from
 * an earlier one and was lost with a restart of tuapd (the agent's secret above all, which is
 * never stored) is made again: new keys and a new seed, before the VM exists.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "render.h"
#include "vmjob_impl.h"

static int fail(struct vmjob *vj, struct engine *e, struct job *job, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Fails the job's phase; with several hypervisors the message starts with the one it is on. */
static int fail(struct vmjob *vj, struct engine *e, struct job *job, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vmjob_phase_failed(vj, e, job, msg);
	return -1;
}

void vmjob_phase_failed(struct vmjob *vj, struct engine *e, struct job *job, const char *msg)
{
	char full[sizeof(vj->label) + 1400];

	if (vj->label[0] && strncmp(msg, vj->label, strlen(vj->label))) {
		snprintf(full, sizeof(full), "%s: %.1300s", vj->label, msg);
		msg = full;
	}
	engine_phase_failed(e, job, msg, NULL, 0);
}

/* A plan's message, after what the fleet said of the hypervisor (vmjob_set_plan_note). */
static void plan_done(struct vmjob *vj, struct engine *e, struct job *job, const char *note,
		      const char *msg)
{
	char full[2600];

	if (note && *note) {
		snprintf(full, sizeof(full), "%.1500s; %.1000s", note, msg);
		msg = full;
	}
	engine_phase_done(e, job, msg);
}

static int submit(struct vmjob *vj, struct engine *e, struct job *job, struct task *t)
{
	struct tuap_err err;

	t->phase = job_current_phase(job);
	if (task_submit(vj, t, &err) < 0)
		return fail(vj, e, job, "%s", err.msg);
	return 0;
}

static const char *image_value(const struct vmjob *vj, const struct job *job)
{
	const struct domain_conf *c = job_conf(job);

	return c->image[0] ? c->image : vj->set->default_image;
}

/* A task of this job with its copies of the site's settings and of what earlier phases found. */
static struct task *phase_task(struct vmjob *vj, struct engine *e, struct job *job,
			       enum task_kind kind, const struct vmstate *st)
{
	struct task *t = task_new(vj, kind, e, job_domain(job), job_id(job));

	t->conf = *job_conf(job);
	memset(t->conf.packages, 0, sizeof(t->conf.packages));
	t->conf.n_packages = 0;
	snprintf(t->image_value, sizeof(t->image_value), "%s", image_value(vj, job));
	if (st->have_image) {
		t->have_image = true;
		t->img = st->img;
		snprintf(t->base_path, sizeof(t->base_path), "%s", st->base_path);
	}
	if (st->have_disk) {
		t->have_disk = true;
		snprintf(t->disk_path, sizeof(t->disk_path), "%s", st->disk_path);
	}
	if (st->have_seed)
		snprintf(t->seed_path, sizeof(t->seed_path), "%s", st->seed_path);
	snprintf(t->agent_pub, sizeof(t->agent_pub), "%s", st->agent_pub);
	return t;
}

/* ---- plan ---- */

static int plan(struct vmjob *vj, struct engine *e, struct job *job, struct virt *v)
{
	const char *d = job_domain(job);
	struct tuap_meta meta = {0};
	struct tuap_err err;
	struct task *t;
	char msg[512];
	int rc = vmjob_lookup(v, d, &meta, &err);

	if (rc == -1)
		return fail(vj, e, job, "%s", err.msg);
	switch (vmjob_plan_decide(rc != -2, rc == 1, &meta, job_id(job), job_get_flags(job))) {
	case VMJOB_CREATE:
		snprintf(msg, sizeof(msg), "no VM named %s yet: it is created", d);
		break;
	case VMJOB_CONTINUE:
		if (!strcmp(meta.provision_id, job_id(job)))
			snprintf(msg, sizeof(msg), "the VM of this job exists: continuing");
		else
			snprintf(msg, sizeof(msg),
				 "the VM exists (made by job %s): continuing with it, nothing is "
				 "created again",
				 meta.provision_id[0] ? meta.provision_id : "?");
		break;
	case VMJOB_REFUSE_FOREIGN:
		return fail(vj, e, job,
			    "a libvirt domain named %s exists and is not tuap's (it has no tuap "
			    "metadata); tuap leaves it alone: pick another name or remove that "
			    "domain yourself",
			    d);
	case VMJOB_REFUSE_OURS:
		return fail(vj, e, job,
			    "%s already has a VM made by tuap (job %s); 'tuap-ctl provision "
			    "--resume %s' continues with it, 'tuap-ctl provision --rebuild %s' "
			    "makes it anew (after a snapshot, with new keys and instance-id)",
			    d, meta.provision_id[0] ? meta.provision_id : "?", d, d);
	case VMJOB_REBUILD:
		t = task_new(vj, T_REBUILD, e, d, job_id(job));
		snprintf(t->old_job, sizeof(t->old_job), "%s", meta.provision_id);
		snprintf(t->note, sizeof(t->note), "%s", vj->plan_note);
		vj->plan_note[0] = '\0';
		return submit(vj, e, job, t);
	}
	plan_done(vj, e, job, vj->plan_note, msg);
	vj->plan_note[0] = '\0';
	return 0;
}

/* ---- keys and seed (main thread: they need the engine and the job's users) ---- */

static int make_keys(struct vmjob *vj, struct engine *e, struct job *job, struct vmstate *st,
		     struct tuap_err *err)
{
	if (engine_enroll_keys(e, job_domain(job), vj->set->agent_endpoint, &st->ac, err) < 0)
		return -1;
	st->have_keys = true;
	snprintf(st->agent_pub, sizeof(st->agent_pub), "%s", st->ac.public_key);
	return 0;
}

static int need_file(const char *what, const char *path, struct tuap_err *err)
{
	if (access(path, R_OK) < 0)
		return err_set(err, "%s %s: %s (tuapd.conf)", what, path, strerror(errno));
	return 0;
}

/* Renders the seed's files into t: cloud-init's three, the agent with its config (the secret
 * key: wiped with the task) and unit, the installer, the apt source. */
static int seed_files(struct vmjob *vj, struct engine *e, struct job *job, struct vmstate *st,
		      struct task *t, struct tuap_err *err)
{
	const struct settings *set = vj->set;
	int (*fn[3])(const struct render_input *, struct buf *, struct tuap_err *) = {
		cloudinit_meta_data, cloudinit_network_config, cloudinit_user_data};
	static const char *const names[3] = {"meta-data", "network-config", "user-data"};
	char mac0[18], mac1[18], instance[64], install[PATH_MAX], unit[PATH_MAX];
	struct buf doc = BUF_INIT, conf = BUF_INIT;
	struct render_input in;
	int rc = -1;

	if (fs_path(install, sizeof(install), err, "%s/install", set->seed_dir) < 0 ||
	    fs_path(unit, sizeof(unit), err, "%s/tuap-agent.service", set->seed_dir) < 0 ||
	    need_file("agent_binary", set->agent_binary, err) < 0 ||
	    need_file("seed_dir: the installer", install, err) < 0 ||
	    need_file("seed_dir: the agent's unit", unit, err) < 0)
		return -1;
	if (!st->have_keys && make_keys(vj, e, job, st, err) < 0)
		return -1;
	domain_mac(job_domain(job), 0, mac0);
	domain_mac(job_domain(job), 1, mac1);
	vmjob_instance_id(job_id(job), instance, sizeof(instance));
	in = (struct render_input){
		.conf = job_conf(job),
		.users = &job_domain_model(job)->users,
		.set = set,
		.instance_id = instance,
		.provision_id = job_id(job),
		.mac_mgmt = mac0,
		.mac_public = mac1,
		.agent_public_key = st->agent_pub,
	};
	for (int i = 0; i < 3; i++) {
		buf_reset(&doc);
		if (fn[i](&in, &doc, err) < 0)
			goto out;
		task_add_file(t, names[i], doc.s, doc.len, NULL, 0644, false);
	}
	if (agentconf_format(&st->ac, &conf, err) < 0)
		goto out;
	task_add_file(t, "tuap/agent.conf", conf.s, conf.len, NULL, 0600, true);
	task_add_file(t, "tuap/tuap-agent", NULL, 0, set->agent_binary, 0755, false);
	task_add_file(t, "tuap/install", NULL, 0, install, 0755, false);
	task_add_file(t, "tuap/tuap-agent.service", NULL, 0, unit, 0644, false);
	if (set->apt_source[0]) {
		buf_reset(&doc);
		buf_addf(&doc, "# written by tuap (tuapd.conf apt_source)\n%s\n", set->apt_source);
		task_add_file(t, SEED_APT_SOURCE, doc.s, doc.len, NULL, 0644, false);
	}
	snprintf(t->agent_pub, sizeof(t->agent_pub), "%s", st->agent_pub);
	rc = 0;
out:
	if (conf.s)
		keys_wipe(conf.s, conf.cap);
	buf_free(&conf);
	buf_free(&doc);
	return rc;
}

/* ---- the phases ---- */

static int creation_phase(struct vmjob *vj, struct engine *e, struct job *job, enum job_phase ph)
{
	struct vmstate *st = vmjob_state(vj, job_domain(job), job_id(job));
	struct tuap_err err;
	struct task *t;
	char msg[256];

	switch (ph) {
	case PH_IMAGE:
		return submit(vj, e, job, phase_task(vj, e, job, T_IMAGE, st));
	case PH_DISK:
		return submit(vj, e, job, phase_task(vj, e, job, T_DISK, st));
	case PH_KEYS:
		if (make_keys(vj, e, job, st, &err) < 0)
			return fail(vj, e, job, "%s", err.msg);
		snprintf(msg, sizeof(msg),
			 "new agent key %.8s…, allowed on the agent socket (any older key of the "
			 "domain is refused from now on)",
			 st->agent_pub);
		engine_phase_done(e, job, msg);
		return 0;
	case PH_SEED:
	case PH_DEFINE:
		t = phase_task(vj, e, job, ph == PH_SEED ? T_SEED : T_DEFINE, st);
		/* define without this run's seed: tuapd restarted in between */
		if ((ph == PH_SEED || !st->have_seed) && seed_files(vj, e, job, st, t, &err) < 0) {
			task_free(t);
			agentconf_wipe(&st->ac);
			st->have_keys = false;
			return fail(vj, e, job, "%s", err.msg);
		}
		return submit(vj, e, job, t);
	default:
		return fail(vj, e, job, "internal: phase %s is not the VM manager's",
			    job_phase_name(ph));
	}
}

int vmjob_run(void *ctx, struct engine *e, struct job *job, enum job_phase ph)
{
	struct vmjob *vj = ctx;
	struct tuap_meta meta = {0};
	struct tuap_err err;
	struct virt *v = vmjob_virt(vj, &err);
	char msg[512];
	int rc;

	if (!v)
		return fail(vj, e, job, "%s", err.msg);
	if (ph == PH_PLAN)
		return plan(vj, e, job, v);
	rc = vmjob_lookup(v, job_domain(job), &meta, &err);
	if (rc == -1)
		return fail(vj, e, job, "%s", err.msg);
	if (rc == 0)
		return fail(vj, e, job,
			    "a libvirt domain named %s appeared meanwhile and is not tuap's; "
			    "nothing more is done",
			    job_domain(job));
	if (rc == -2)
		return creation_phase(vj, e, job, ph);
	/* the VM exists: made by this job before a restart, or the one a --resume continues */
	if (ph == PH_DEFINE && !strcmp(meta.provision_id, job_id(job)))
		return submit(vj, e, job, task_new(vj, T_START, e, job_domain(job), job_id(job)));
	snprintf(msg, sizeof(msg), "the VM exists (made by job %s): nothing to %s",
		 meta.provision_id[0] ? meta.provision_id : "?",
		 ph == PH_DEFINE ? "define" : "create");
	engine_phase_done(e, job, msg);
	return 0;
}

/* ---- results ---- */

void vmjob_phase_progress(struct vmjob *vj, const struct task_progress *p)
{
	struct job *job = engine_find_job(p->e, p->domain, p->job_id);

	if (job && job_current_phase(job) == p->phase && job_phase_is_running(job))
		engine_phase_progress(p->e, job, p->done, p->total, p->stage);
}

void vmjob_phase_finished(struct vmjob *vj, struct task *t)
{
	struct job *job = engine_find_job(t->e, t->domain, t->job_id);
	struct vmstate *st;

	if (!job || job_current_phase(job) != t->phase || !job_phase_is_running(job)) {
		log_info("%s: the %s work of job %s ended (%s) after the job moved on; dropped",
			 t->domain, job_phase_name(t->phase), t->job_id, t->rc ? t->msg : "ok");
		if (t->kind == T_SEED)
			vmjob_state_drop(vj, t->domain);
		return;
	}
	st = vmjob_state(vj, t->domain, t->job_id);
	if (t->kind == T_SEED || t->kind == T_DEFINE) { /* the secret is on the seed or lost */
		agentconf_wipe(&st->ac);
		st->have_keys = false;
	}
	if (t->rc < 0) {
		vmjob_phase_failed(vj, t->e, job, t->msg);
		return;
	}
	if (t->have_image) {
		st->img = t->img;
		snprintf(st->base_path, sizeof(st->base_path), "%s", t->base_path);
		st->have_image = true;
	}
	if (t->have_disk) {
		snprintf(st->disk_path, sizeof(st->disk_path), "%s", t->disk_path);
		st->have_disk = true;
	}
	if (t->kind == T_SEED) {
		snprintf(st->seed_path, sizeof(st->seed_path), "%s", t->seed_path);
		st->have_seed = true;
	}
	if (t->kind == T_DEFINE || t->kind == T_START)
		vmjob_state_drop(vj, t->domain);
	if (t->kind == T_REBUILD) {
		plan_done(vj, t->e, job, t->note, t->msg);
		return;
	}
	engine_phase_done(t->e, job, t->msg); /* may start the next phase at once */
}
