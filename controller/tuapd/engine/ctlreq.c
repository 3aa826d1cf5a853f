/* The job engine's requests from tuap-ctl: provision, resume, run, status, log, watch,
 * enroll (job.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "domain.h"
#include "fsutil.h"
#include "hash.h"
#include "agentconf.h"
#include "job_impl.h"
#include "journal.h"
#include "keys.h"
#include "log.h"
#include "users.h"

static void start_job(struct engine *e, struct job *job, const struct ctl_peer *peer)
{
	char detail[512];

	job->state = JOB_RUNNING;
	job->started_ms = engine_now_ms();
	job_set_data_path(e, job);
	job_created_detail(job, detail, sizeof(detail));
	job_journal(e, job, "job", "-", "created", detail);
	if (peer)
		job_subscribe(job, peer);
	log_job(LOG_LVL_INFO, JOB_ABOUT(job), "job %s started (%s)", job->id, detail);
	job_enter_phase(e, job, PH_UPLOAD);
}

static bool sha_arg(const ProtobufCBinaryData *b, char hex[SHA256_HEX_LEN])
{
	if (b->len != 32)
		return false;
	sha256_digest_hex(b->data, hex);
	return true;
}

/* Continues the domain's last failed job from the phase that failed. */
static void ctl_resume(struct engine *e, const struct ctl_peer *peer,
		       const Tuap__ProvisionRequest *r)
{
	struct job *job = engine_last_job(e, r->domain);
	char flags[64];

	if (!job || job->state != JOB_FAILED) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__NOT_FOUND,
				   "%s: no failed job to resume%s", r->domain,
				   job ? " (the last one finished)" : "");
		return;
	}
	job->state = JOB_RUNNING;
	job->resumed = true;
	job->rerun_make = r->has_rerun_make && r->rerun_make;
	job->force_users = r->has_force_users && r->force_users;
	job->started_ms = engine_now_ms();
	snprintf(flags, sizeof(flags), "%s%s", job->rerun_make ? "rerun_make=1 " : "",
		 job->force_users ? "force_users=1" : "");
	job_journal(e, job, "job", "-", "resumed", flags[0] ? flags : NULL);
	job_subscribe(job, peer);
	job_enter_phase(e, job, job->phase);
}

static void ctl_provision(struct engine *e, const struct ctl_peer *peer,
			  const Tuap__ProvisionRequest *r, enum job_kind kind)
{
	struct job *job = engine_running_job(e, r->domain);
	char id[32], why[128];

	if (engine_domain_ok(r->domain, why, sizeof(why)) < 0) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INVALID,
				   "'%s' is not a domain name: %s", r->domain, why);
		return;
	}
	if (job) {
		if (r->resume) { /* attach to it */
			job_subscribe(job, peer);
			job_emit_phase(e, job, TUAP__PHASE_EVENT__STATE__STARTED, "attached", 0, 0,
				       NULL, 0);
			return;
		}
		engine_reply_error(
			e, peer, TUAP__ERROR__CODE__BUSY,
			"%s: job %s is running (phase %s); follow it with 'tuap-ctl watch %s'",
			r->domain, job->id, job_phase_name(job->phase), r->domain);
		return;
	}
	if (r->resume && kind == KIND_PROVISION) {
		ctl_resume(e, peer, r);
		return;
	}
	job_new_id(id, sizeof(id));
	if (!(job = job_alloc(e, r->domain, id))) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INTERNAL, "out of memory");
		return;
	}
	job->kind = kind;
	job->state = JOB_FAILED; /* until it starts */
	if (engine_load_inputs(e, peer, r->domain, r->conf_path, (const char *)r->conf_text.data,
			       r->conf_text.len, r->users_path,
			       r->has_users_text ? (const char *)r->users_text.data : NULL,
			       r->users_text.len, &job->dom) < 0)
		goto drop;
	job->existing = r->has_existing && r->existing;
	job->rebuild = r->has_rebuild && r->rebuild;
	/* Not forced for update-data: its make is a new job's, which the agent runs once anyway
	 * (its journal is per job); forcing it made a resumed job start its make a second time. */
	job->rerun_make = r->has_rerun_make && r->rerun_make;
	job->force_users = r->has_force_users && r->force_users;
	job->has_data = sha_arg(&r->data_sha256, job->data_sha);
	job->data_size = r->data_size;
	if (kind == KIND_UPDATE_DATA && !job->has_data) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INVALID,
				   "%s: no data.tar.gz to send", r->domain);
		goto drop;
	}
	if (job->has_data && job->data_size == 0) {
		/* nothing could ever be uploaded: the job would wait for the upload deadline */
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INVALID,
				   "%s: data.tar.gz is empty (0 bytes)", r->domain);
		goto drop;
	}
	if (job_make_dir(e, job) < 0 ||
	    job_save_input(e, job, "provision.conf", r->conf_text.data, r->conf_text.len) < 0 ||
	    (r->has_users_text &&
	     job_save_input(e, job, "users.yaml", r->users_text.data, r->users_text.len) < 0)) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INTERNAL,
				   "cannot store the job's inputs under %s", job->dir);
		goto drop;
	}
	start_job(e, job, peer);
	return;
drop:
	e->jobs = job->next; /* job_alloc put it first */
	job_free(job);
}

static void ctl_run(struct engine *e, const struct ctl_peer *peer, const Tuap__RunRequest *r)
{
	struct job *prev = engine_last_job(e, r->domain), *job;
	char id[32];

	if (!prev) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__NOT_FOUND,
				   "%s: never provisioned; nothing to run", r->domain);
		return;
	}
	if (engine_running_job(e, r->domain)) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__BUSY, "%s: a job is running",
				   r->domain);
		return;
	}
	job_new_id(id, sizeof(id));
	if (!(job = job_alloc(e, r->domain, id)))
		return;
	job->kind = KIND_RUN;
	job->existing = prev->existing;
	/* a new job: the agent runs its make once without being told to rerun (see above) */
	job->rerun_make = false;
	snprintf(job->make_target, sizeof(job->make_target), "%s", r->target ? r->target : "");
	/* the domain as last provisioned (pre_make_script comes from there), kept with the job
	 * so that a restarted tuapd can resume it */
	if (job_make_dir(e, job) < 0 || job_copy_inputs(e, peer, prev, job) < 0) {
		e->jobs = job->next;
		job_free(job);
		return;
	}
	start_job(e, job, peer);
}

const char *job_state_name(const struct job *job)
{
	switch (job->state) {
	case JOB_RUNNING:
		return "running";
	case JOB_DONE:
		return "done";
	default:
		return "failed";
	}
}

/* The steps of the job (users .. make) that it reached, with how each went. */
struct step_list {
	Tuap__StepRecord rec[PH_MAKE - PH_USERS + 1];
	Tuap__StepRecord *ptr[PH_MAKE - PH_USERS + 1];
	size_t n;
};

static void job_steps(struct engine *e, struct job *j, struct step_list *sl)
{
	sl->n = 0;
	for (enum job_phase ph = PH_USERS; ph <= PH_MAKE; ph++) {
		Tuap__StepRecord *r = &sl->rec[sl->n];

		if (!job_phase_applies(e, j, ph) || (ph > j->phase && j->state != JOB_DONE))
			continue;
		tuap__step_record__init(r);
		r->job_id = j->id;
		r->step = job_step_of(ph);
		if (j->state == JOB_DONE || ph < j->phase)
			r->state = TUAP__STEP_STATE__STATE_DONE;
		else if (j->state == JOB_FAILED)
			r->state = TUAP__STEP_STATE__STATE_FAILED;
		else
			r->state = TUAP__STEP_STATE__STATE_STARTED;
		sl->n++;
	}
}

static void add_enrolled(struct engine *e, const char *domain, const char *pub, void *arg)
{
	strlist_add(arg, domain);
}

/* The domains tuapd knows, sorted, each once: those with a job, those enrolled
 * (STATE_DIR/keys/DOMAIN.pub: keys made by provision or enroll) and the hypervisor's VMs of
 * ours (a journal lost or purged while the VM was kept). */
static void known_domains(struct engine *e, struct strlist *names)
{
	for (struct job *j = e->jobs; j; j = j->next)
		strlist_add(names, j->domain);
	engine_each_enrolled(e, add_enrolled, names);
	if (e->has_provider && e->provider.domains)
		e->provider.domains(e->provider.ctx, names);
	strlist_sort(names, true);
}

/* Fills d (and sl, which d->steps will point into) for domain; returns whether tuapd has a job
 * for it or the hypervisor a VM of ours by that name. */
static bool domain_status(struct engine *e, const char *domain, Tuap__DomainStatus *d,
			  struct step_list *sl)
{
	struct job *j = engine_last_job(e, domain);
	struct agent_info *a;
	bool known;

	tuap__domain_status__init(d);
	sl->n = 0;
	d->domain = (char *)domain;
	d->vm_state = (char *)(e->has_provider && e->provider.vm_state
				       ? e->provider.vm_state(e->provider.ctx, domain)
				       : NULL);
	known = j || d->vm_state;
	if (e->has_provider && e->provider.hypervisor &&
	    !(j && (j->existing || j->dom.conf.depends_on[0])))
		d->hypervisor = (char *)e->provider.hypervisor(e->provider.ctx, domain);
	if (!d->vm_state)
		d->vm_state =
			j && (j->existing || j->dom.conf.depends_on[0]) ? "existing host" : "-";
	if (j) {
		job_steps(e, j, sl);
		d->job_id = j->id;
		d->job_state = (char *)job_state_name(j);
		d->phase = (char *)job_phase_name(j->phase);
	}
	if ((a = engine_agent(e, domain, false)) && a->hello_seen) {
		d->agent_version = a->version;
		d->agent_host = a->host;
		d->has_agent_last_seen_unix = 1;
		d->agent_last_seen_unix = (uint64_t)(a->last_seen_ms / 1000);
	}
	for (size_t k = 0; k < sl->n; k++)
		sl->ptr[k] = &sl->rec[k];
	d->steps = sl->ptr;
	d->n_steps = sl->n;
	return known;
}

static void ctl_status(struct engine *e, const struct ctl_peer *peer, const char *only, bool list)
{
	Tuap__CtlEvent ev = TUAP__CTL_EVENT__INIT;
	Tuap__StatusReply st = TUAP__STATUS_REPLY__INIT;
	Tuap__ListReply lr = TUAP__LIST_REPLY__INIT;
	Tuap__DomainStatus *v, **pv;
	struct step_list *sl;
	struct strlist names = {0};
	size_t n, m = 0;

	/* one domain: asked about directly, without listing every VM of the hypervisor */
	if (!only)
		known_domains(e, &names);
	n = only ? 1 : names.n;

	v = calloc(n ? n : 1, sizeof(*v));
	sl = calloc(n ? n : 1, sizeof(*sl));
	pv = calloc(n ? n : 1, sizeof(*pv));
	if (!v || !sl || !pv)
		abort();
	for (size_t i = 0; i < n; i++) {
		const char *name = only ? only : names.v[i];

		if (!domain_status(e, name, &v[m], &sl[m]) && only && !engine_enrolled(e, only))
			continue;
		pv[m] = &v[m];
		m++;
	}
	if (only && m == 0) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__NOT_FOUND,
				   "%s: tuapd knows no such domain", only);
		goto out;
	}
	st.tuapd_version = (char *)TUAP_VERSION;
	st.domains = lr.domains = pv;
	st.n_domains = lr.n_domains = m;
	ev.has_final = ev.has_exit_code = ev.final = 1;
	ev.exit_code = 0;
	if (list) {
		ev.ev_case = TUAP__CTL_EVENT__EV_LIST;
		ev.list = &lr;
	} else {
		ev.ev_case = TUAP__CTL_EVENT__EV_STATUS;
		ev.status = &st;
	}
	e->io.ctl_send(e->io.ctx, peer, &ev);
out:
	strlist_free(&names);
	free(pv);
	free(sl);
	free(v);
}

/* One batch of text lines about a job; the last batch ends the request. */
static void send_lines(struct engine *e, const struct ctl_peer *peer, struct job *job, char **lines,
		       size_t n, bool final)
{
	Tuap__CtlEvent ev;
	Tuap__TextReply t = TUAP__TEXT_REPLY__INIT;

	job_event_init(job, &ev);
	t.lines = lines;
	t.n_lines = n;
	ev.ev_case = TUAP__CTL_EVENT__EV_TEXT;
	ev.text = &t;
	if (final) {
		ev.has_final = ev.has_exit_code = ev.final = 1;
		ev.exit_code = 0;
	}
	e->io.ctl_send(e->io.ctx, peer, &ev);
}

/* The last max bytes of path (all of it when shorter), from a line start; "" when absent. */
static char *read_tail(const char *path, size_t max, size_t *len, struct tuap_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char *data;
	off_t from;
	ssize_t r;

	*len = 0;
	if (fd < 0 && errno == ENOENT)
		return strdup("");
	if (fd < 0 || fstat(fd, &st) < 0) {
		err_set(err, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	from = st.st_size > (off_t)max ? st.st_size - (off_t)max : 0;
	if (!(data = malloc(max + 1)))
		abort();
	while (*len < max && (r = pread(fd, data + *len, max - *len, from + (off_t)*len)) > 0)
		*len += (size_t)r;
	close(fd);
	data[*len] = '\0';
	if (from > 0) { /* a cut first line is dropped */
		char *nl = memchr(data, '\n', *len);
		size_t cut = nl ? (size_t)(nl - data) + 1 : *len;

		memmove(data, data + cut, *len - cut + 1);
		*len -= cut;
	}
	return data;
}

/* Sends the last job's setup log (make's output and the other steps'), in batches that fit
 * the message size limit; a log larger than MAX_LOG (an older tuapd's) is read from its end. */
static void ctl_log(struct engine *e, const struct ctl_peer *peer, const Tuap__DomainRequest *r)
{
	enum { BATCH = 256, MAX_LOG = 16 << 20 };
	struct job *job = engine_last_job(e, r->domain);
	char path[PATH_MAX], *data, *save = NULL, *lines[BATCH];
	size_t len = 0, n = 0, total = 0, skip = 0;
	struct tuap_err err;

	if (!job) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__NOT_FOUND, "%s: no job known",
				   r->domain);
		return;
	}
	if (fs_path(path, sizeof(path), &err, "%s/setup.log", job->dir) < 0)
		return;
	data = read_tail(path, MAX_LOG, &len, &err);
	if (!data) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INTERNAL, "%s", err.msg);
		return;
	}
	for (size_t i = 0; i < len; i++)
		total += data[i] == '\n';
	if (r->has_lines && r->lines && r->lines < total)
		skip = total - r->lines;
	for (char *l = strtok_r(data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (skip) {
			skip--;
			continue;
		}
		lines[n++] = l;
		if (n == BATCH) {
			send_lines(e, peer, job, lines, n, false);
			n = 0;
		}
	}
	send_lines(e, peer, job, lines, n, true);
	free(data);
}

static void ctl_watch(struct engine *e, const struct ctl_peer *peer, const char *domain)
{
	struct job *job = engine_running_job(e, domain);
	char msg[256];

	if (!job) {
		struct job *last = engine_last_job(e, domain);

		if (last)
			snprintf(msg, sizeof(msg), "%s: no job running; the last one (%s) %s in %s",
				 domain, last->id, job_state_name(last),
				 job_phase_name(last->phase));
		else
			snprintf(msg, sizeof(msg), "%s: no job known", domain);
		job_send_final(e, peer, last, last && last->state == JOB_FAILED ? 1 : 0, msg);
		return;
	}
	job_subscribe(job, peer);
	job_emit_phase(e, job, TUAP__PHASE_EVENT__STATE__STARTED, "watching", 0, 0, NULL, 0);
}

static void ctl_enroll(struct engine *e, const struct ctl_peer *peer, const Tuap__EnrollRequest *r);

void engine_ctl_event(struct engine *e, const struct ctl_peer *peer, const Tuap__CtlEvent *ev)
{
	e->io.ctl_send(e->io.ctx, peer, ev);
}

void engine_reply(struct engine *e, const struct ctl_peer *peer, int exit_code,
		  const char *const *lines, size_t n)
{
	Tuap__CtlEvent ev = TUAP__CTL_EVENT__INIT;
	Tuap__TextReply t = TUAP__TEXT_REPLY__INIT;

	t.lines = (char **)lines;
	t.n_lines = n;
	ev.ev_case = TUAP__CTL_EVENT__EV_TEXT;
	ev.text = &t;
	ev.has_final = ev.has_exit_code = ev.final = 1;
	ev.exit_code = exit_code;
	e->io.ctl_send(e->io.ctx, peer, &ev);
}

/* The domain a request names (its body's "domain" field, whatever the request), or NULL. */
static const char *request_domain(const Tuap__CtlRequest *r)
{
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
		&tuap__ctl_request__descriptor, r->req_case);
	const ProtobufCMessage *body, *const *slot;
	const ProtobufCFieldDescriptor *d;

	if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return NULL;
	slot = (const ProtobufCMessage *const *)((const char *)r + f->offset);
	if (!(body = *slot) ||
	    !(d = protobuf_c_message_descriptor_get_field_by_name(body->descriptor, "domain")) ||
	    d->type != PROTOBUF_C_TYPE_STRING || d->label == PROTOBUF_C_LABEL_REPEATED)
		return NULL;
	return *(char *const *)((const char *)body + d->offset);
}

void engine_ctl_request(struct engine *e, const struct ctl_peer *peer, const Tuap__CtlRequest *r)
{
	const char *domain = request_domain(r);
	char why[160];

	/* checked once for every request: "../../x" must not become a path (keys/../../x.pub) */
	if (domain && *domain && valid_domain_name(domain, why, sizeof(why)) < 0) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INVALID,
				   "'%s' is not a domain name: %s", domain, why);
		return;
	}
	switch (r->req_case) {
	case TUAP__CTL_REQUEST__REQ_PROVISION:
		ctl_provision(e, peer, r->provision, KIND_PROVISION);
		break;
	case TUAP__CTL_REQUEST__REQ_UPDATE_DATA:
		ctl_provision(e, peer, r->update_data, KIND_UPDATE_DATA);
		break;
	case TUAP__CTL_REQUEST__REQ_RUN:
		ctl_run(e, peer, r->run);
		break;
	case TUAP__CTL_REQUEST__REQ_STATUS:
		ctl_status(e, peer,
			   r->status->domain && *r->status->domain ? r->status->domain : NULL,
			   false);
		break;
	case TUAP__CTL_REQUEST__REQ_LIST:
		ctl_status(e, peer, NULL, true);
		break;
	case TUAP__CTL_REQUEST__REQ_LOG:
		ctl_log(e, peer, r->log);
		break;
	case TUAP__CTL_REQUEST__REQ_WATCH:
		ctl_watch(e, peer, r->watch->domain);
		break;
	case TUAP__CTL_REQUEST__REQ_ENROLL:
		ctl_enroll(e, peer, r->enroll);
		break;
	default:
		if (e->has_provider && e->provider.ctl_request)
			e->provider.ctl_request(e->provider.ctx, e, peer, r);
		else
			engine_reply_error(e, peer, TUAP__ERROR__CODE__NOT_ALLOWED,
					   "this request needs the VM manager, which this tuapd "
					   "does not run");
		break;
	}
}

int engine_enroll_keys(struct engine *e, const char *domain, const char *endpoint,
		       struct agentconf *ac, struct tuap_err *err)
{
	char dir[PATH_MAX], pub[PATH_MAX];
	struct agent_info *a = engine_agent(e, domain, false);

	/* the agent holding the old key is locked out: the next hello is the new agent's */
	if (a)
		a->hello_seen = false;
	agentconf_init(ac);
	if (fs_path(dir, sizeof(dir), err, "%s/keys", e->state_dir) < 0 ||
	    fs_path(pub, sizeof(pub), err, "%s/keys/%s.pub", e->state_dir, domain) < 0 ||
	    fs_mkdir_p(dir, 0700, err) < 0 || keys_keypair(ac->public_key, ac->secret_key, err) < 0)
		return -1;
	snprintf(ac->endpoint, sizeof(ac->endpoint), "%s",
		 endpoint && *endpoint ? endpoint : e->endpoint);
	snprintf(ac->server_public_key, sizeof(ac->server_public_key), "%s", e->server_pub);
	snprintf(ac->domain, sizeof(ac->domain), "%s", domain);
	snprintf(ac->state_dir, sizeof(ac->state_dir), "/var/lib/tuap-agent");
	/* only the public half is kept here: the secret goes to the host and nowhere else */
	if (fs_write_atomic(pub, ac->public_key, strlen(ac->public_key), 0644, err) < 0 ||
	    e->io.agent_allow(e->io.ctx, domain, ac->public_key) < 0) {
		agentconf_wipe(ac);
		return err_set(err, "%s: cannot store or allow the new key", domain);
	}
	return 0;
}

static void ctl_enroll(struct engine *e, const struct ctl_peer *peer, const Tuap__EnrollRequest *r)
{
	Tuap__CtlEvent ev = TUAP__CTL_EVENT__INIT;
	Tuap__TextReply t = TUAP__TEXT_REPLY__INIT;
	char why[128], *lines[32], *save = NULL;
	struct buf text = BUF_INIT;
	struct agentconf ac;
	struct tuap_err err;

	if (engine_domain_ok(r->domain, why, sizeof(why)) < 0) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INVALID,
				   "'%s' is not a domain name: %s", r->domain, why);
		return;
	}
	if (engine_enrolled(e, r->domain) && !(r->has_rotate && r->rotate)) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__REFUSED,
				   "%s is already enrolled; --rotate makes new keys (the agent "
				   "holding the old ones is refused from then on)",
				   r->domain);
		return;
	}
	if (engine_enroll_keys(e, r->domain, r->endpoint, &ac, &err) < 0 ||
	    agentconf_format(&ac, &text, &err) < 0) {
		agentconf_wipe(&ac);
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INTERNAL, "%s", err.msg);
		return;
	}
	agentconf_wipe(&ac);
	log_info("%s: enrolled (new agent key)", r->domain);
	for (char *l = strtok_r(text.s, "\n", &save); l && t.n_lines < 32;
	     l = strtok_r(NULL, "\n", &save))
		lines[t.n_lines++] = l;
	t.lines = lines;
	ev.ev_case = TUAP__CTL_EVENT__EV_TEXT;
	ev.text = &t;
	ev.has_final = ev.has_exit_code = ev.final = 1;
	e->io.ctl_send(e->io.ctx, peer, &ev);
	keys_wipe(text.s, text.cap);
	buf_free(&text);
}
