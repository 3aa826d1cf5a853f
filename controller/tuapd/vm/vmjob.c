/*
 * The VM manager's frame (see vmjob.h): the lazily opened libvirt connection and its events,
 * the descriptor the main loop polls, what each job's phases learnt, the provider's small
 * hooks (VM state for status, the console tail of a stalled hello) and helpers shared by the
 * phases and the requests.
 */
#include "vmjob.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "vmjob_impl.h"

/* ---- life ---- */

struct vmjob *vmjob_new(const struct settings *set, struct tuap_err *err)
{
	struct vmjob *vj = calloc(1, sizeof(*vj));
	struct epoll_event ev = {.events = EPOLLIN};

	if (!vj) {
		err_set(err, "out of memory");
		return NULL;
	}
	vj->set = vj->host = set;
	vj->remote = settings_uri_is_remote(set->libvirt_uri) == 1;
	vj->w = worker_new(task_run, vj, err);
	if (!vj->w) {
		free(vj);
		return NULL;
	}
	vj->epfd = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = worker_fd(vj->w);
	if (vj->epfd < 0 || epoll_ctl(vj->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0) {
		err_set(err, "VM manager: %s", strerror(errno));
		if (vj->epfd >= 0)
			close(vj->epfd);
		worker_free(vj->w);
		free(vj);
		return NULL;
	}
	return vj;
}

static void free_task(struct worker_item *it)
{
	task_free((struct task *)it);
}

void vmjob_free(struct vmjob *vj)
{
	if (!vj)
		return;
	if (!worker_stop(vj->w, 5, free_task)) {
		log_warn("a VM task still runs after 5 s; left to end with tuapd (its phase is "
			 "done again at the next start)");
		return; /* the thread still uses all of it; the process ends anyway */
	}
	while (vj->states) {
		struct vmstate *s = vj->states;

		vj->states = s->next;
		agentconf_wipe(&s->ac);
		free(s);
	}
	virt_close(vj->v);
	if (vj->events_added && !vj->routed)
		virt_event_stop();
	close(vj->epfd);
	worker_free(vj->w);
	free(vj);
}

int vmjob_fd(const struct vmjob *vj)
{
	return vj->epfd;
}

void vmjob_attach(struct vmjob *vj, const struct settings *host, const char *label)
{
	vj->host = host;
	snprintf(vj->label, sizeof(vj->label), "%s", label ? label : "");
	vj->routed = true;
}

const void *vmjob_conn(const struct vmjob *vj)
{
	return vj->v ? (const void *)virt_conn(vj->v) : NULL;
}

struct virt *vmjob_connect(struct vmjob *vj, struct tuap_err *err)
{
	return vmjob_virt(vj, err);
}

void vmjob_set_plan_note(struct vmjob *vj, const char *note)
{
	snprintf(vj->plan_note, sizeof(vj->plan_note), "%s", note ? note : "");
}

/* ---- the connection ---- */

struct virt *vmjob_virt(struct vmjob *vj, struct tuap_err *err)
{
	struct epoll_event ev = {.events = EPOLLIN};

	if (vj->v && vj->closed && worker_idle(vj->w)) {
		log_info("libvirt: connecting again to %s", vj->set->libvirt_uri);
		virt_close(vj->v);
		vj->v = NULL;
	}
	if (vj->v)
		return vj->v;
	if (virt_event_start(err) < 0)
		return NULL;
	if (!vj->events_added) {
		ev.data.fd = virt_event_fd();
		if (epoll_ctl(vj->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev) < 0) {
			err_set(err, "VM manager: epoll: %s", strerror(errno));
			return NULL;
		}
		vj->events_added = true;
	}
	vj->v = virt_open(vj->set->libvirt_uri, err);
	if (!vj->v) {
		vj->failed_at_ms = engine_now_ms();
		return NULL;
	}
	vj->closed = false;
	log_info("libvirt: connected to %s", vj->set->libvirt_uri);
	return vj->v;
}

int vmjob_lookup(struct virt *v, const char *domain, struct tuap_meta *m, struct tuap_err *err)
{
	int rc = virt_domain_exists(v, domain, err);

	if (rc <= 0)
		return rc < 0 ? -1 : -2;
	rc = virt_domain_is_ours(v, domain, m, err);
	/* undefined between the two calls */
	if (rc < 0 && virt_domain_exists(v, domain, NULL) == 0)
		return -2;
	return rc;
}

/* ---- per-job state ---- */

struct vmstate *vmjob_state(struct vmjob *vj, const char *domain, const char *job_id)
{
	struct vmstate *s;

	for (s = vj->states; s; s = s->next)
		if (!strcmp(s->domain, domain))
			break;
	if (s && strcmp(s->job_id, job_id)) {
		agentconf_wipe(&s->ac);
		struct vmstate *next = s->next;

		memset(s, 0, sizeof(*s));
		s->next = next;
	} else if (!s) {
		if (!(s = calloc(1, sizeof(*s))))
			abort();
		s->next = vj->states;
		vj->states = s;
	}
	snprintf(s->domain, sizeof(s->domain), "%s", domain);
	snprintf(s->job_id, sizeof(s->job_id), "%s", job_id);
	return s;
}

void vmjob_state_drop(struct vmjob *vj, const char *domain)
{
	for (struct vmstate **pp = &vj->states; *pp; pp = &(*pp)->next) {
		struct vmstate *s = *pp;

		if (strcmp(s->domain, domain))
			continue;
		*pp = s->next;
		agentconf_wipe(&s->ac);
		free(s);
		return;
	}
}

/* ---- names and paths ---- */

int vmjob_domain_dir(const struct vmjob *vj, const char *domain, char *out, size_t len,
		     struct tuap_err *err)
{
	return settings_domain_dir(vj->set, domain, out, len, err);
}

int vmjob_pool_name(const char *domain, char *out, size_t len, struct tuap_err *err)
{
	if ((size_t)snprintf(out, len, VMJOB_POOL_PREFIX "%s", domain) >= len)
		return err_set(err, "%s: pool name too long", domain);
	return 0;
}

void vmjob_disk_name(const char *job_id, char *out, size_t len)
{
	snprintf(out, len, "disk-%s.qcow2", job_id);
}

void vmjob_instance_id(const char *job_id, char *out, size_t len)
{
	snprintf(out, len, "tuap-%s", job_id);
}

/* ---- the console log ---- */

/* Copies one console line without terminal escape sequences and control characters; bytes
 * outside ASCII become '?' (the console is no text encoding we can trust). */
static char *clean_line(const char *s, size_t len)
{
	char *out = malloc(len + 1);
	size_t k = 0;

	if (!out)
		abort();
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == 0x1b) { /* ESC [ params final, or ESC and one more */
			if (i + 1 < len && s[i + 1] == '[') {
				i += 2;
				while (i < len && !(s[i] >= 0x40 && s[i] <= 0x7e))
					i++;
			} else {
				i++;
			}
			continue;
		}
		if (c == '\t')
			out[k++] = ' ';
		else if (c >= 0x20 && c < 0x7f)
			out[k++] = (char)c;
		else if (c >= 0x80)
			out[k++] = '?';
	}
	out[k] = '\0';
	return out;
}

/* The console log's last VMJOB_CONSOLE_MAX bytes into data (*len, from offset *from): the file
 * itself on this host, through libvirt (the domain's pool) on a remote one. 1 read, 0 none yet. */
static int console_read(struct vmjob *vj, struct virt *v, const char *domain, char *data,
			size_t *len, off_t *from, struct tuap_err *err)
{
	char path[PATH_MAX], pool[VIRT_NAME_MAX];
	struct stat st;
	uint64_t off;
	ssize_t r;
	int fd, found;

	*len = 0;
	*from = 0;
	if (vj->remote) {
		if (vmjob_pool_name(domain, pool, sizeof(pool), err) < 0 ||
		    (found = virt_vol_read_tail(v, pool, VMJOB_CONSOLE_LOG, VMJOB_CONSOLE_MAX, data,
						len, &off, err)) < 0)
			return -1;
		*from = (off_t)off;
		return found;
	}
	found = virt_domain_console_log(v, domain, path, sizeof(path), err);
	if (found <= 0)
		return found < 0 ? -1 : err_set(err, "%s logs no serial console to a file", domain);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) /* not started yet: no output */
			return 0;
		return err_set(err, "cannot read the console log %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		err_set(err, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	*from = st.st_size > (off_t)VMJOB_CONSOLE_MAX ? st.st_size - (off_t)VMJOB_CONSOLE_MAX : 0;
	while (*len < VMJOB_CONSOLE_MAX &&
	       (r = pread(fd, data + *len, VMJOB_CONSOLE_MAX - *len, *from + (off_t)*len)) > 0)
		*len += (size_t)r;
	close(fd);
	return 1;
}

int vmjob_console_lines(struct vmjob *vj, const char *domain, size_t n, struct strlist *lines,
			struct tuap_err *err)
{
	char *data = NULL;
	struct virt *v = vmjob_virt(vj, err);
	size_t len = 0, first, count = 0;
	off_t from;
	int rc = -1, found;

	if (!v)
		return -1;
	if (!(data = malloc(VMJOB_CONSOLE_MAX + 1)))
		return err_set(err, "out of memory");
	if ((found = console_read(vj, v, domain, data, &len, &from, err)) <= 0) {
		rc = found;
		goto out;
	}
	/* a cut first line is dropped; so is a last line without its newline only if empty */
	first = 0;
	if (from > 0)
		while (first < len && data[first++] != '\n')
			;
	for (size_t i = first; i < len; i++)
		count += data[i] == '\n';
	count += len > first && data[len - 1] != '\n';
	for (size_t i = first, l = 0; i < len; l++) {
		size_t e = i;

		while (e < len && data[e] != '\n')
			e++;
		if (!n || count - l <= n) {
			char *line = clean_line(data + i, e - i);

			strlist_add(lines, line);
			free(line);
		}
		i = e + 1;
	}
	rc = 0;
out:
	free(data);
	return rc;
}

/* ---- hooks ---- */

static bool applies(void *ctx, struct job *job)
{
	return true; /* the engine asks only for jobs that are not for an existing host */
}

/* The connection for status and list, which do not retry a hypervisor that failed within
 * VMJOB_RETRY_S (each retry may take seconds): NULL then, with err->msg empty (nothing new to
 * say), or NULL with err on a failure. */
static struct virt *virt_for_status(struct vmjob *vj, struct tuap_err *err)
{
	if (!vj->v && vj->failed_at_ms &&
	    engine_now_ms() - vj->failed_at_ms < VMJOB_RETRY_S * 1000) {
		err->msg[0] = '\0';
		return NULL;
	}
	return vmjob_virt(vj, err);
}

static const char *vm_state(void *ctx, const char *domain)
{
	struct vmjob *vj = ctx;
	struct tuap_err err;
	enum virt_state st;
	struct virt *v;

	if (!(v = virt_for_status(vj, &err)) || vmjob_lookup(v, domain, NULL, &err) != 1 ||
	    virt_domain_state(v, domain, &st, &err) < 0)
		return NULL;
	return virt_state_name(st);
}

static size_t console_tail(void *ctx, const char *domain, char **out, size_t max)
{
	struct vmjob *vj = ctx;
	struct tuap_err err;
	struct strlist lines = {0};
	size_t n = 0;

	if (vmjob_console_lines(vj, domain, max, &lines, &err) < 0) {
		strlist_free(&lines);
		out[0] = NULL;
		if (max == 0 || asprintf(&out[0], "(no console: %s)", err.msg) < 0)
			return 0;
		return 1;
	}
	for (; n < lines.n && n < max; n++) { /* the engine frees them */
		out[n] = lines.v[n];
		lines.v[n] = NULL;
	}
	for (size_t i = n; i < lines.n; i++)
		free(lines.v[i]);
	free(lines.v);
	return n;
}

static void domains(void *ctx, struct strlist *names)
{
	struct vmjob *vj = ctx;
	struct tuap_err err;
	struct virt *v;

	if ((!(v = virt_for_status(vj, &err)) || virt_domain_list_ours(v, names, &err) < 0) &&
	    err.msg[0])
		log_warn("listing the hypervisor's domains: %s", err.msg);
}

static void agent_hello(void *ctx, struct engine *e, struct job *job)
{
	struct vmjob *vj = ctx;
	struct tuap_err err;
	struct task *t;

	/* the worker uses the connection; it is opened here, on the main thread (after a restart
	 * that resumed at hello, nothing has opened it yet) */
	if (!vmjob_virt(vj, &err)) {
		log_warn("%s: the seed stays in the VM: %s", job_domain(job), err.msg);
		return;
	}
	t = task_new(vj, T_EJECT, e, job_domain(job), NULL);
	if (task_submit(vj, t, &err) < 0)
		log_warn("%s: the seed stays in the VM: %s", job_domain(job), err.msg);
}

struct job_ref {
	const char *domain, *job_id;
};

static bool task_of_job(const struct worker_item *it, void *arg)
{
	const struct task *t = (const struct task *)it;
	const struct job_ref *ref = arg;

	return t->job_id[0] && !strcmp(t->job_id, ref->job_id) && !strcmp(t->domain, ref->domain);
}

/* The job failed while the worker had (or was about to start) its image, disk, seed or define:
 * that work gives up, so later jobs and requests are not stuck behind it. */
static void phase_stopped(void *ctx, struct engine *e, struct job *job)
{
	struct vmjob *vj = ctx;
	struct job_ref ref = {job_domain(job), job_id(job)};
	unsigned n;

	(void)e;
	n = worker_cancel_if(vj->w, task_of_job, &ref);
	if (n)
		log_info("%s: the VM work of job %s (phase %s) is told to stop", ref.domain,
			 ref.job_id, job_phase_name(job_current_phase(job)));
}

void vmjob_provider(struct vmjob *vj, struct phase_provider *p)
{
	*p = (struct phase_provider){
		.applies = applies,
		.run = vmjob_run,
		.ctl_request = vmjob_ctl_request,
		.vm_state = vm_state,
		.console_tail = console_tail,
		.domains = domains,
		.agent_hello = agent_hello,
		.phase_stopped = phase_stopped,
		.ctx = vj,
	};
}

/* ---- events ---- */

/* A VM that stops while its job waits for the agent, or while the agent works, fails the job
 * at once (instead of at the deadline), with what its console said last. */
static void domain_stopped(struct vmjob *vj, struct engine *e, const struct virt_event *ev)
{
	struct job *job = engine_find_job(e, ev->domain, NULL);
	enum job_phase ph = job ? job_current_phase(job) : PH_DONE;
	struct tuap_err err;
	enum virt_state st;
	char *tail[VMJOB_TAIL_LINES], what[64], msg[256];
	size_t n;

	if (!job || ph < PH_HELLO || ph > PH_MAKE || ph == PH_PUSH || !job_phase_is_running(job) ||
	    job_get_flags(job).existing || job_conf(job)->depends_on[0])
		return;
	/* the event may be an older VM's (rebuild): what counts is the domain now */
	if (!vj->v || virt_domain_state(vj->v, ev->domain, &st, &err) < 0 ||
	    st == VIRT_STATE_RUNNING)
		return;
	virt_event_str(ev, what, sizeof(what));
	snprintf(msg, sizeof(msg), "the VM stopped (%s) %s", what,
		 ph == PH_HELLO ? "before its agent said hello" : "while its agent worked");
	n = console_tail(vj, ev->domain, tail, VMJOB_TAIL_LINES);
	log_warn("%s: %s", ev->domain, msg);
	engine_phase_failed(e, job, msg, (const char *const *)tail, n);
	for (size_t i = 0; i < n; i++)
		free(tail[i]);
}

void vmjob_event(struct vmjob *vj, struct engine *e, const struct virt_event *ev)
{
	char what[64];

	log_debug("libvirt: %s: %s", ev->domain, virt_event_str(ev, what, sizeof(what)));
	if (ev->kind == VIRT_EV_CLOSED) {
		log_warn(
			"libvirt: the connection to %s closed (%s); it is opened again when needed",
			vj->set->libvirt_uri, virt_event_str(ev, what, sizeof(what)));
		vj->closed = true;
	} else if (ev->event == VIR_DOMAIN_EVENT_STOPPED || ev->event == VIR_DOMAIN_EVENT_CRASHED) {
		domain_stopped(vj, e, ev);
	}
}

static void handle_events(struct vmjob *vj, struct engine *e)
{
	struct virt_event ev;

	for (int i = 0; i < VIRT_EVENT_QUEUE && virt_event_next(&ev) == 1; i++)
		vmjob_event(vj, e, &ev);
}

void vmjob_dispatch(struct vmjob *vj, struct engine *e)
{
	struct task_progress p;
	struct task *t = (struct task *)worker_take_finished(vj->w);

	if (task_take_progress(vj, &p))
		vmjob_phase_progress(vj, &p);
	while (t) {
		struct task *next = (struct task *)t->item.next;

		t->item.next = NULL;
		if (t->kind >= T_DESTROY)
			vmjob_ctl_finished(vj, t);
		else
			vmjob_phase_finished(vj, t);
		task_free(t);
		t = next;
	}
	if (vj->events_added && !vj->routed)
		handle_events(vj, e);
}

/* ---- plan ---- */

enum vmjob_plan vmjob_plan_decide(bool exists, bool ours, const struct tuap_meta *meta,
				  const char *job_id, struct job_flags flags)
{
	if (!exists)
		return VMJOB_CREATE;
	if (!ours)
		return VMJOB_REFUSE_FOREIGN;
	if (meta && !strcmp(meta->provision_id, job_id))
		return VMJOB_CONTINUE; /* this job made it (a restart, a --resume) */
	if (flags.rebuild)
		return VMJOB_REBUILD;
	if (flags.resumed)
		return VMJOB_CONTINUE;
	return VMJOB_REFUSE_OURS;
}
