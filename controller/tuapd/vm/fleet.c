/*
 * The hypervisors behind one phase provider (fleet.h): where each site is, placement, routing.
 */
#include "fleet.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "domain.h"
#include "fsutil.h"
#include "log.h"
#include "place.h"
#include "virt.h"
#include "virtdef.h"
#include "vmjob.h"

/* Seconds list and status wait before asking a hypervisor that did not answer again (each
 * attempt may take the connect timeout); placement and requests always ask. */
#define FLEET_RETRY_S 10

struct fleet_hv {
	const struct settings_hv *conf;
	struct settings set;				      /* settings_for_hv */
	char label[SETTINGS_NAME_MAX + SETTINGS_STR_MAX + 4]; /* "NAME (URI)" */
	struct vmjob *vj;
	struct phase_provider p; /* the vmjob's hooks */
	bool down;
	char why_down[512];
	int64_t down_at_ms;
};

/* Where a site is, as last seen; with the resources a provision still running there was
 * placed with (its VM not defined yet, so libvirt does not count it). */
struct where {
	struct where *next;
	char domain[DOMAIN_NAME_MAX + 1];
	size_t hv;
	bool reserved;
	unsigned memory_mib, cpus;
	uint64_t size;
};

struct fleet {
	const struct settings *set;
	struct fleet_hv *hv;
	size_t n;
	int epfd;
	struct where *where;
};

/* ---- life ---- */

struct fleet *fleet_new(const struct settings *set, struct tuap_err *err)
{
	struct fleet *f = calloc(1, sizeof(*f));

	if (!f || !(f->hv = calloc(set->n_hv, sizeof(*f->hv)))) {
		free(f);
		err_set(err, "out of memory");
		return NULL;
	}
	f->set = set;
	f->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (f->epfd < 0) {
		err_set(err, "VM manager: %s", strerror(errno));
		fleet_free(f);
		return NULL;
	}
	for (size_t i = 0; i < set->n_hv; i++) {
		struct fleet_hv *h = &f->hv[i];
		struct epoll_event ev = {.events = EPOLLIN};

		h->conf = &set->hv[i];
		settings_for_hv(set, h->conf, &h->set);
		snprintf(h->label, sizeof(h->label), "%s (%s)", h->conf->name,
			 h->conf->libvirt_uri);
		if (!(h->vj = vmjob_new(&h->set, err))) {
			fleet_free(f);
			return NULL;
		}
		f->n++;
		vmjob_attach(h->vj, set, set->hv_listed ? h->label : "");
		vmjob_provider(h->vj, &h->p);
		ev.data.fd = vmjob_fd(h->vj);
		if (epoll_ctl(f->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0) {
			err_set(err, "VM manager: epoll: %s", strerror(errno));
			fleet_free(f);
			return NULL;
		}
	}
	return f;
}

void fleet_free(struct fleet *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		vmjob_free(f->hv[i].vj);
	virt_event_stop(); /* the vmjobs' connections are closed: the one event thread goes */
	while (f->where) {
		struct where *w = f->where;

		f->where = w->next;
		free(w);
	}
	if (f->epfd >= 0)
		close(f->epfd);
	free(f->hv);
	free(f);
}

int fleet_fd(const struct fleet *f)
{
	return f->epfd;
}

void fleet_dispatch(struct fleet *f, struct engine *e)
{
	struct virt_event ev;

	for (size_t i = 0; i < f->n; i++)
		vmjob_dispatch(f->hv[i].vj, e);
	for (int k = 0; k < VIRT_EVENT_QUEUE && virt_event_next(&ev) == 1; k++)
		for (size_t i = 0; i < f->n; i++)
			if (ev.conn && vmjob_conn(f->hv[i].vj) == ev.conn) {
				vmjob_event(f->hv[i].vj, e, &ev);
				break;
			}
}

/* ---- reachability ---- */

/* The hypervisor's connection; NULL when it does not answer (h->why_down says why). fresh:
 * ask again even if it failed a moment ago. */
static struct virt *hv_virt(struct fleet_hv *h, bool fresh)
{
	struct tuap_err err = {0};
	struct virt *v;

	if (!fresh && h->down && engine_now_ms() - h->down_at_ms < FLEET_RETRY_S * 1000)
		return NULL;
	if ((v = vmjob_connect(h->vj, &err))) {
		if (h->down)
			log_info("hypervisor %s answers again", h->label);
		h->down = false;
		return v;
	}
	if (!h->down)
		log_warn("hypervisor %s does not answer: %s", h->label, err.msg);
	h->down = true;
	h->down_at_ms = engine_now_ms();
	snprintf(h->why_down, sizeof(h->why_down), "%s", err.msg);
	return NULL;
}

/* ---- where sites are ---- */

static struct where *where_find(struct fleet *f, const char *domain)
{
	for (struct where *w = f->where; w; w = w->next)
		if (!strcmp(w->domain, domain))
			return w;
	return NULL;
}

static struct where *where_set(struct fleet *f, const char *domain, size_t hv)
{
	struct where *w = where_find(f, domain);

	if (!w) {
		if (!(w = calloc(1, sizeof(*w))))
			abort();
		snprintf(w->domain, sizeof(w->domain), "%s", domain);
		w->next = f->where;
		f->where = w;
	}
	if (w->hv != hv)
		w->reserved = false;
	w->hv = hv;
	return w;
}

/* 1 when hypervisor h holds the site: tuap's VM of that name, or the site's pool (made by the
 * disk phase, before the VM); what was found goes to what. 0 when not, -1 on error. */
static int holds(struct virt *v, const char *domain, const char **what, struct tuap_err *err)
{
	char pool[VIRT_NAME_MAX];
	int rc = virt_domain_exists(v, domain, err);

	if (rc < 0)
		return -1;
	if (rc == 1 && (rc = virt_domain_is_ours(v, domain, NULL, err)) != 0) {
		*what = "its VM";
		return rc;
	}
	snprintf(pool, sizeof(pool), VIRTDEF_POOL_PREFIX "%s", domain);
	if ((rc = virt_pool_exists(v, pool, err)) == 1)
		*what = "its storage pool";
	return rc;
}

enum locate { LOC_FOUND, LOC_NOWHERE, LOC_MAYBE_DOWN, LOC_ERROR };

/* Which hypervisor holds the site: asked of every one unless known (fresh: ask all the same, and
 * ask again those that did not answer a moment ago; status and list are not fresh).
 * LOC_MAYBE_DOWN: none that answered holds it, but some did not answer; why says which.
 * LOC_ERROR: a lookup failed, or two hypervisors hold it. */
static enum locate locate(struct fleet *f, const char *domain, bool fresh, size_t *idx,
			  const char **what, char *why, size_t len)
{
	struct where *w = where_find(f, domain);
	size_t found = f->n, down = 0;
	struct tuap_err err = {0};

	*what = "";
	why[0] = '\0';
	if (f->n == 1) {
		*idx = 0;
		return LOC_FOUND;
	}
	if (w && !fresh) {
		*idx = w->hv;
		*what = "known";
		return LOC_FOUND;
	}
	for (size_t i = 0; i < f->n; i++) {
		struct virt *v = hv_virt(&f->hv[i], fresh);
		const char *here = "";
		int rc;

		if (!v) {
			snprintf(why + strlen(why), len - strlen(why),
				 "%s%s is unreachable (%.400s)", down++ ? "; " : "", f->hv[i].label,
				 f->hv[i].why_down);
			continue;
		}
		if ((rc = holds(v, domain, &here, &err)) < 0) {
			snprintf(why, len, "%s: %s", f->hv[i].label, err.msg);
			return LOC_ERROR;
		}
		if (!rc)
			continue;
		if (found < f->n) {
			snprintf(why, len,
				 "%s is on two hypervisors: %s (%s) and %s (%s); tuap touches "
				 "neither until one is removed by hand",
				 domain, f->hv[found].conf->name, *what, f->hv[i].conf->name, here);
			return LOC_ERROR;
		}
		found = i;
		*what = here;
	}
	if (found < f->n) {
		*idx = found;
		where_set(f, domain, found);
		return LOC_FOUND;
	}
	if (w && f->hv[w->hv].down) { /* seen there before: it is there, unreachable */
		*idx = w->hv;
		*what = "seen there before";
		return LOC_FOUND;
	}
	return down ? LOC_MAYBE_DOWN : LOC_NOWHERE;
}

/* ---- placement ---- */

/* What placement needs of hypervisor h, from libvirt now; with the provisions that run there and
 * have no VM yet. */
static void hv_figures(struct fleet *f, struct engine *e, size_t i, struct place_hv *p)
{
	struct fleet_hv *h = &f->hv[i];
	struct virt_capacity cap = {0};
	struct tuap_err err = {0};
	struct virt *v = hv_virt(h, true);

	memset(p, 0, sizeof(*p));
	p->conf = h->conf;
	if (!v) {
		snprintf(p->why_down, sizeof(p->why_down), "%s", h->why_down);
		return;
	}
	if (virt_capacity(v, VIRTDEF_IMAGES_POOL, &cap, &err) < 0) {
		snprintf(p->why_down, sizeof(p->why_down), "%s", err.msg);
		strlist_free(&cap.domains);
		return;
	}
	p->up = true;
	p->memory_mib = cap.memory_kib / 1024;
	p->committed_mib = cap.committed_kib / 1024;
	p->cpus = cap.cpus;
	p->committed_vcpus = cap.committed_vcpus;
	p->guests = cap.guests;
	p->disk_known = cap.disk_known;
	p->disk_available = cap.disk_available;
	for (struct where *w = f->where; w; w = w->next) {
		const struct job *j = engine_domain_job(e, w->domain);
		bool defined = false;

		if (!w->reserved || w->hv != i || !j || job_get_state(j) != JOB_RUNNING)
			continue;
		for (size_t k = 0; k < cap.domains.n && !defined; k++)
			defined = !strcmp(cap.domains.v[k], w->domain);
		if (defined)
			continue;
		p->pending_mib += w->memory_mib;
		p->pending_vcpus += w->cpus;
		p->pending_disk += w->size;
		p->pending_guests++;
	}
	strlist_free(&cap.domains);
}

/* Whether tuapd knew the site before job_id (NULL: before now): its agent key, or a job of its
 * in the journal. A site it never knew cannot be on a hypervisor that is down. */
static bool known_before(struct fleet *f, struct engine *e, const char *domain, const char *job_id)
{
	char dir[PATH_MAX];
	struct dirent *de;
	bool known = false;
	DIR *d;

	if (engine_enrolled(e, domain))
		return true;
	if (fs_path(dir, sizeof(dir), NULL, "%s/domains/%s", f->set->state_dir, domain) < 0)
		return true;
	if (!(d = opendir(dir)))
		return errno != ENOENT;
	while (!known && (de = readdir(d)))
		known = strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
			(!job_id || strcmp(de->d_name, job_id));
	closedir(d);
	return known;
}

/* The hypervisor the site c goes on, for a provision (record: remembered, with its resources
 * reserved while the provision runs) or a dry run. Its index, with why (what was found, or
 * placement's reason); -1 with why when it cannot go anywhere. */
static int decide(struct fleet *f, struct engine *e, const struct domain_conf *c,
		  const char *job_id, bool record, char *why, size_t len)
{
	const char *labels[DOMAIN_MAX_LABELS], *what = "";
	struct place_need need = {
		.memory_mib = c->memory_mib,
		.cpus = c->cpus,
		.size = c->size,
		.pin = c->hypervisor,
		.labels = labels,
		.n_labels = c->n_hypervisor_labels,
		.check = f->set->hv_listed,
	};
	struct place_hv *hvs;
	char reason[2048];
	size_t idx = 0;
	int pick;

	if (!f->set->hv_listed) { /* one hypervisor, as tuapd has always had */
		if (c->hypervisor[0] && strcmp(c->hypervisor, f->hv[0].conf->name)) {
			snprintf(why, len,
				 "provision.conf pins hypervisor=%s, and tuapd.conf lists no "
				 "hypervisors (this tuapd has one, named %s): add a hypervisors "
				 "list, or remove the key",
				 c->hypervisor, f->hv[0].conf->name);
			return -1;
		}
		snprintf(why, len, "%s (the only one)", f->hv[0].conf->name);
		return 0;
	}
	switch (locate(f, c->name, true, &idx, &what, reason, sizeof(reason))) {
	case LOC_FOUND:
		if (c->hypervisor[0] && strcmp(c->hypervisor, f->hv[idx].conf->name)) {
			snprintf(why, len,
				 "%s is on %s (%s is there) but provision.conf says "
				 "hypervisor=%s: tuap does not move a site ('tuap-ctl destroy "
				 "--purge %s' first, or fix the key)",
				 c->name, f->hv[idx].label, what, c->hypervisor, c->name);
			return -1;
		}
		snprintf(why, len, "%s: %s is there already (%s)", f->hv[idx].conf->name, c->name,
			 what);
		return (int)idx;
	case LOC_ERROR:
		snprintf(why, len, "%s", reason);
		return -1;
	case LOC_MAYBE_DOWN:
		if (!c->hypervisor[0] && known_before(f, e, c->name, job_id)) {
			snprintf(why, len,
				 "not placed: %.1500s; %s, which tuapd has provisioned before, may "
				 "be there, and tuap does not risk two VMs of one site: retry when "
				 "it answers, or pin the site with hypervisor=",
				 reason, c->name);
			return -1;
		}
		break;
	case LOC_NOWHERE:
		break;
	}
	for (size_t i = 0; i < c->n_hypervisor_labels; i++)
		labels[i] = c->hypervisor_labels[i];
	if (!(hvs = calloc(f->n, sizeof(*hvs))))
		abort();
	for (size_t i = 0; i < f->n; i++)
		hv_figures(f, e, i, &hvs[i]);
	pick = place_choose(hvs, f->n, &need, reason, sizeof(reason));
	free(hvs);
	if (pick < 0) {
		snprintf(why, len, "no hypervisor takes %s: %.1900s", c->name, reason);
		return -1;
	}
	snprintf(why, len, "%s", reason);
	if (record) {
		struct where *w = where_set(f, c->name, (size_t)pick);

		w->reserved = true;
		w->memory_mib = c->memory_mib;
		w->cpus = c->cpus;
		w->size = c->size;
	}
	return pick;
}

/* ---- the provider's hooks ---- */

static bool applies(void *ctx, struct job *job)
{
	(void)ctx;
	(void)job;
	return true;
}

/* The hypervisor a job's phase runs on: where the site is, or where plan put it; a job resumed
 * at a later phase after a restart of tuapd finds its site's pool, or is placed again. */
static int job_hv(struct fleet *f, struct engine *e, struct job *job, char *why, size_t len)
{
	const char *what;
	size_t idx;

	switch (locate(f, job_domain(job), false, &idx, &what, why, len)) {
	case LOC_FOUND:
		return (int)idx;
	case LOC_NOWHERE:
		return decide(f, e, job_conf(job), job_id(job), true, why, len);
	default:
		return -1;
	}
}

static int run(void *ctx, struct engine *e, struct job *job, enum job_phase ph)
{
	struct fleet *f = ctx;
	char why[2048], note[2100];
	int i;

	if (ph == PH_PLAN)
		i = decide(f, e, job_conf(job), job_id(job), true, why, sizeof(why));
	else
		i = job_hv(f, e, job, why, sizeof(why));
	if (i < 0) {
		engine_phase_failed(e, job, why, NULL, 0);
		return -1;
	}
	if (ph == PH_PLAN && f->set->hv_listed) {
		snprintf(note, sizeof(note), "on %s", why);
		vmjob_set_plan_note(f->hv[i].vj, note);
		log_info("%s: plan: %s", job_domain(job), note);
	}
	return f->hv[i].p.run(f->hv[i].p.ctx, e, job, ph);
}

/* The hypervisor of a known site, for status and the small hooks: -1 when it is on none that
 * answers (or not known). */
static int site_hv(struct fleet *f, const char *domain)
{
	const char *what;
	char why[1024];
	size_t idx;

	if (locate(f, domain, false, &idx, &what, why, sizeof(why)) != LOC_FOUND)
		return -1;
	return (int)idx;
}

static const char *vm_state(void *ctx, const char *domain)
{
	struct fleet *f = ctx;
	int i = site_hv(f, domain);

	if (i < 0)
		return NULL;
	if (f->n > 1 && !hv_virt(&f->hv[i], false))
		return "unreachable";
	return f->hv[i].p.vm_state(f->hv[i].p.ctx, domain);
}

static size_t console_tail(void *ctx, const char *domain, char **lines, size_t max)
{
	struct fleet *f = ctx;
	int i = site_hv(f, domain);
	const struct phase_provider *p = &f->hv[i < 0 ? 0 : i].p;

	return p->console_tail(p->ctx, domain, lines, max);
}

static void domains(void *ctx, struct strlist *names)
{
	struct fleet *f = ctx;

	for (size_t i = 0; i < f->n; i++) {
		struct strlist here = {0};

		if (f->n > 1 && !hv_virt(&f->hv[i], false))
			continue;
		f->hv[i].p.domains(f->hv[i].p.ctx, &here);
		for (size_t k = 0; k < here.n; k++) {
			struct where *w = where_find(f, here.v[k]);

			if (w && w->hv != i && !f->hv[w->hv].down)
				log_warn("%s has a VM of tuap's on %s and on %s", here.v[k],
					 f->hv[w->hv].label, f->hv[i].label);
			else
				where_set(f, here.v[k], i);
			strlist_add(names, here.v[k]);
		}
		strlist_free(&here);
	}
}

static const char *hypervisor(void *ctx, const char *domain)
{
	struct fleet *f = ctx;
	struct where *w = f->n == 1 ? NULL : where_find(f, domain);

	if (f->n == 1)
		return f->hv[0].conf->name;
	return w ? f->hv[w->hv].conf->name : NULL;
}

static void agent_hello(void *ctx, struct engine *e, struct job *job)
{
	struct fleet *f = ctx;
	int i = site_hv(f, job_domain(job));

	if (i >= 0)
		f->hv[i].p.agent_hello(f->hv[i].p.ctx, e, job);
}

static void phase_stopped(void *ctx, struct engine *e, struct job *job)
{
	struct fleet *f = ctx;

	/* each worker drops what it holds of the job (only one holds anything) */
	for (size_t i = 0; i < f->n; i++)
		f->hv[i].p.phase_stopped(f->hv[i].p.ctx, e, job);
}

/* ---- requests: hypervisors, place (provision --dry-run), and the VM requests ---- */

static void hv_info(struct fleet *f, size_t i, Tuap__HypervisorInfo *o, char ***labels)
{
	struct fleet_hv *h = &f->hv[i];
	struct virt_capacity cap = {0};
	struct strlist ours = {0};
	struct tuap_err err = {0};
	struct virt *v = hv_virt(h, true);

	tuap__hypervisor_info__init(o);
	o->name = (char *)h->conf->name;
	o->uri = (char *)h->conf->libvirt_uri;
	o->has_memory_reserved_mib = o->has_cpus_reserved = o->has_cpu_overcommit = 1;
	o->has_max_guests = o->has_disk_reserved_bytes = 1;
	o->memory_reserved_mib = h->conf->reserve_memory_mib;
	o->cpus_reserved = h->conf->reserve_cpus;
	o->cpu_overcommit = h->conf->cpu_overcommit;
	o->max_guests = h->conf->max_guests;
	o->disk_reserved_bytes = (uint64_t)h->conf->reserve_disk_gib << 30;
	*labels = calloc(h->conf->n_labels + 1, sizeof(char *));
	if (!*labels)
		abort();
	for (size_t k = 0; k < h->conf->n_labels; k++)
		(*labels)[k] = (char *)h->conf->labels[k];
	o->labels = *labels;
	o->n_labels = h->conf->n_labels;
	if (!v || virt_capacity(v, VIRTDEF_IMAGES_POOL, &cap, &err) < 0) {
		o->state = "unreachable";
		o->error = strdup(v ? err.msg : h->why_down);
		strlist_free(&cap.domains);
		return;
	}
	h->p.domains(h->p.ctx, &ours);
	for (size_t k = 0; k < ours.n; k++)
		where_set(f, ours.v[k], i);
	o->state = "up";
	o->has_memory_total_mib = o->has_memory_committed_mib = o->has_cpus = 1;
	o->has_vcpus_committed = o->has_guests = o->has_sites = o->has_disk_known = 1;
	o->memory_total_mib = cap.memory_kib / 1024;
	o->memory_committed_mib = cap.committed_kib / 1024;
	o->cpus = cap.cpus;
	o->vcpus_committed = cap.committed_vcpus;
	o->guests = cap.guests;
	o->sites = (uint32_t)ours.n;
	o->disk_known = cap.disk_known;
	if (cap.disk_known) {
		o->has_disk_free_bytes = 1;
		o->disk_free_bytes = cap.disk_available;
	}
	strlist_free(&ours);
	strlist_free(&cap.domains);
}

static void reply_hypervisors(struct fleet *f, struct engine *e, const struct ctl_peer *peer)
{
	Tuap__CtlEvent ev = TUAP__CTL_EVENT__INIT;
	Tuap__HypervisorsReply r = TUAP__HYPERVISORS_REPLY__INIT;
	Tuap__HypervisorInfo *v = calloc(f->n, sizeof(*v)), **pv = calloc(f->n, sizeof(*pv));
	char ***labels = calloc(f->n, sizeof(*labels));

	if (!v || !pv || !labels)
		abort();
	for (size_t i = 0; i < f->n; i++) {
		hv_info(f, i, &v[i], &labels[i]);
		pv[i] = &v[i];
	}
	r.hypervisors = pv;
	r.n_hypervisors = f->n;
	ev.ev_case = TUAP__CTL_EVENT__EV_HYPERVISORS;
	ev.hypervisors = &r;
	ev.has_final = ev.has_exit_code = ev.final = 1;
	ev.exit_code = 0;
	engine_ctl_event(e, peer, &ev);
	for (size_t i = 0; i < f->n; i++) {
		free(v[i].error);
		free(labels[i]);
	}
	free(labels);
	free(pv);
	free(v);
}

/* provision --dry-run: where the site would go, and why; nothing is created or reserved. */
static void reply_place(struct fleet *f, struct engine *e, const struct ctl_peer *peer,
			const Tuap__ProvisionRequest *r)
{
	struct domain_conf c;
	struct diags d;
	char why[2300], line[2400], first[1024];
	const char *lines[1] = {line};
	int i;

	diags_init(&d);
	memset(&c, 0, sizeof(c));
	if (domain_conf_parse(r->conf_path ? r->conf_path : "provision.conf", r->domain,
			      (const char *)r->conf_text.data, r->conf_text.len, &c, &d) < 0) {
		err_str(d.n ? &d.v[0].e : &(struct tuap_err){.msg = "invalid"}, first,
			sizeof(first));
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INVALID, "%s", first);
		goto out;
	}
	i = decide(f, e, &c, NULL, false, why, sizeof(why));
	/* "hypervisor: none fits: ...", not "hypervisor: no hypervisor takes D: none fits: ..." */
	snprintf(first, sizeof(first), "no hypervisor takes %s: ", c.name);
	snprintf(line, sizeof(line), "hypervisor: %s",
		 strncmp(why, first, strlen(first)) ? why : why + strlen(first));
	engine_reply(e, peer, i < 0 ? 1 : 0, lines, 1);
out:
	domain_conf_free(&c);
	diags_free(&d);
}

/* The domain of a VM request (destroy, snapshot, restore, console-log). */
static const char *vm_request_domain(const Tuap__CtlRequest *r)
{
	switch (r->req_case) {
	case TUAP__CTL_REQUEST__REQ_DESTROY:
		return r->destroy->domain;
	case TUAP__CTL_REQUEST__REQ_SNAPSHOT:
		return r->snapshot->domain;
	case TUAP__CTL_REQUEST__REQ_RESTORE:
		return r->restore->domain;
	case TUAP__CTL_REQUEST__REQ_CONSOLE_LOG:
		return r->console_log->domain;
	default:
		return NULL;
	}
}

static void ctl_request(void *ctx, struct engine *e, const struct ctl_peer *peer,
			const Tuap__CtlRequest *r)
{
	struct fleet *f = ctx;
	const char *domain = vm_request_domain(r), *what;
	char why[2048];
	size_t idx = 0;

	if (r->req_case == TUAP__CTL_REQUEST__REQ_HYPERVISORS) {
		reply_hypervisors(f, e, peer);
		return;
	}
	if (r->req_case == TUAP__CTL_REQUEST__REQ_PLACE) {
		reply_place(f, e, peer, r->place);
		return;
	}
	if (domain && f->n > 1) {
		switch (locate(f, domain, true, &idx, &what, why, sizeof(why))) {
		case LOC_FOUND:
			if (!hv_virt(&f->hv[idx], true)) {
				engine_reply_error(e, peer, TUAP__ERROR__CODE__INTERNAL,
						   "%s is on %s, which does not answer: %s", domain,
						   f->hv[idx].label, f->hv[idx].why_down);
				return;
			}
			break;
		case LOC_NOWHERE: /* no VM anywhere: the first one answers (keys, journal) */
			idx = 0;
			break;
		case LOC_MAYBE_DOWN:
			engine_reply_error(e, peer, TUAP__ERROR__CODE__INTERNAL,
					   "%s is on no hypervisor that answers: %s; nothing done",
					   domain, why);
			return;
		case LOC_ERROR:
			engine_reply_error(e, peer, TUAP__ERROR__CODE__INTERNAL, "%s", why);
			return;
		}
	}
	f->hv[idx].p.ctl_request(f->hv[idx].p.ctx, e, peer, r);
}

void fleet_provider(struct fleet *f, struct phase_provider *p)
{
	*p = (struct phase_provider){
		.applies = applies,
		.run = run,
		.ctl_request = ctl_request,
		.vm_state = vm_state,
		.console_tail = console_tail,
		.domains = domains,
		.hypervisor = hypervisor,
		.agent_hello = agent_hello,
		.phase_stopped = phase_stopped,
		.ctx = f,
	};
}

void fleet_scan(struct fleet *f)
{
	struct strlist names = {0};

	if (f->n < 2)
		return;
	domains(f, &names);
	log_info("%zu hypervisors; %zu sites of tuap's found on those that answer", f->n, names.n);
	strlist_free(&names);
}
