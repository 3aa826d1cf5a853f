/*
 * Requests about VMs from tuap-ctl: destroy [--purge], snapshot, restore, console-log. Each
 * checks on the main thread that the domain is ours (a libvirt domain without tuap's metadata
 * is never touched), then hands the libvirt work to the worker; the answer goes back to the
 * tuap-ctl that asked when the work is done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "log.h"
#include "vmjob_impl.h"

/* The domain named by a request, checked: 1 ours, -2 not defined; 0/-1 answered already. */
static int ours_or_answer(struct vmjob *vj, struct engine *e, const struct ctl_peer *peer,
			  const char *domain, struct virt **v)
{
	struct tuap_err err;
	char why[128];
	int rc;

	if (!domain || valid_domain_name(domain, why, sizeof(why)) < 0) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INVALID,
				   "'%s' is not a domain name: %s", domain ? domain : "", why);
		return 0;
	}
	if (!(*v = vmjob_virt(vj, &err))) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INTERNAL, "%s", err.msg);
		return -1;
	}
	rc = vmjob_lookup(*v, domain, NULL, &err);
	if (rc == -1)
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INTERNAL, "%s", err.msg);
	else if (rc == 0)
		engine_reply_error(e, peer, TUAP__ERROR__CODE__REFUSED,
				   "%s is a libvirt domain that tuap did not make (no tuap "
				   "metadata); tuap does not touch it",
				   domain);
	return rc;
}

static void submit(struct vmjob *vj, struct engine *e, const struct ctl_peer *peer, struct task *t)
{
	struct tuap_err err;

	t->peer = *peer;
	if (task_submit(vj, t, &err) < 0)
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INTERNAL, "%s", err.msg);
}

/* Something of the domain left to purge when libvirt has no domain: its pool, keys or journal. */
static bool leftovers(struct vmjob *vj, struct virt *v, const char *domain)
{
	char path[PATH_MAX], pool[VIRT_NAME_MAX];
	/* keys, journal and data copies are tuapd's own, on its host (not a remote hypervisor's
	 * pool root) */
	const struct settings *own = vj->host;

	if (vmjob_pool_name(domain, pool, sizeof(pool), NULL) == 0 &&
	    virt_pool_exists(v, pool, NULL) == 1)
		return true;
	return (fs_path(path, sizeof(path), NULL, "%s/keys/%s.pub", own->state_dir, domain) == 0 &&
		fs_exists(path)) ||
	       (fs_path(path, sizeof(path), NULL, "%s/domains/%s", own->state_dir, domain) == 0 &&
		fs_exists(path)) ||
	       (fs_path(path, sizeof(path), NULL, "%s/%s", own->pool_root, domain) == 0 &&
		fs_exists(path));
}

static void destroy(struct vmjob *vj, struct engine *e, const struct ctl_peer *peer,
		    const Tuap__DestroyRequest *r)
{
	bool purge = r->has_purge && r->purge;
	struct virt *v;
	struct job *job;
	struct task *t;
	int rc = ours_or_answer(vj, e, peer, r->domain, &v);

	if (rc == 0 || rc == -1)
		return;
	job = engine_find_job(e, r->domain, NULL);
	/* with a job running, its define may still be on its way: the worker looks again */
	if (rc == -2 && !job && (!purge || !leftovers(vj, v, r->domain))) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__NOT_FOUND, "%s: no such VM%s",
				   r->domain,
				   purge ? ", and nothing of it is left to purge"
					 : "; --purge deletes what is left of it (disks, keys, "
					   "journal)");
		return;
	}
	t = task_new(vj, T_DESTROY, e, r->domain, NULL);
	t->purge = purge;
	if (job) {
		strlist_addf(&t->lines, "job %s cancelled (it was in phase %s)", job_id(job),
			     job_phase_name(job_current_phase(job)));
		engine_phase_failed(e, job,
				    "cancelled: the domain is being destroyed (tuap-ctl "
				    "destroy)",
				    NULL, 0);
	}
	log_info("%s: destroy%s asked", r->domain, purge ? " --purge" : "");
	submit(vj, e, peer, t);
}

static void snapshot(struct vmjob *vj, struct engine *e, const struct ctl_peer *peer,
		     const Tuap__SnapshotRequest *r, bool restore)
{
	struct virt *v;
	struct job *job;
	struct task *t;
	int rc = ours_or_answer(vj, e, peer, r->domain, &v);

	if (rc == -2)
		engine_reply_error(e, peer, TUAP__ERROR__CODE__NOT_FOUND, "%s: no such VM",
				   r->domain);
	if (rc != 1)
		return;
	if (restore && (job = engine_find_job(e, r->domain, NULL))) {
		engine_reply_error(e, peer, TUAP__ERROR__CODE__BUSY,
				   "%s: job %s is running (phase %s); restore when it has ended",
				   r->domain, job_id(job), job_phase_name(job_current_phase(job)));
		return;
	}
	t = task_new(vj, restore ? T_RESTORE : T_SNAPSHOT, e, r->domain, NULL);
	snprintf(t->snap_name, sizeof(t->snap_name), "%s", r->name ? r->name : "");
	t->latest = r->has_latest && r->latest;
	t->oldest = r->has_oldest && r->oldest;
	t->list = r->has_list && r->list;
	submit(vj, e, peer, t);
}

static void console_log(struct vmjob *vj, struct engine *e, const struct ctl_peer *peer,
			const Tuap__DomainRequest *r)
{
	struct tuap_err err;
	struct virt *v;
	struct strlist lines = {0};
	int rc = ours_or_answer(vj, e, peer, r->domain, &v);

	if (rc == -2)
		engine_reply_error(e, peer, TUAP__ERROR__CODE__NOT_FOUND, "%s: no such VM",
				   r->domain);
	if (rc != 1)
		return;
	if (vmjob_console_lines(vj, r->domain, r->has_lines ? r->lines : 0, &lines, &err) < 0)
		engine_reply_error(e, peer, TUAP__ERROR__CODE__INTERNAL, "%s", err.msg);
	else /* at most VMJOB_CONSOLE_MAX bytes of text: one message holds them */
		engine_reply(e, peer, 0, (const char *const *)lines.v, lines.n);
	strlist_free(&lines);
}

void vmjob_ctl_request(void *ctx, struct engine *e, const struct ctl_peer *peer,
		       const Tuap__CtlRequest *r)
{
	struct vmjob *vj = ctx;

	switch (r->req_case) {
	case TUAP__CTL_REQUEST__REQ_DESTROY:
		destroy(vj, e, peer, r->destroy);
		break;
	case TUAP__CTL_REQUEST__REQ_SNAPSHOT:
		snapshot(vj, e, peer, r->snapshot, false);
		break;
	case TUAP__CTL_REQUEST__REQ_RESTORE:
		snapshot(vj, e, peer, r->restore, true);
		break;
	case TUAP__CTL_REQUEST__REQ_CONSOLE_LOG:
		console_log(vj, e, peer, r->console_log);
		break;
	default:
		engine_reply_error(e, peer, TUAP__ERROR__CODE__NOT_ALLOWED,
				   "request %d is not one this tuapd knows", (int)r->req_case);
		break;
	}
}

/* A request's work is done: forget the domain after a purge, then answer. */
void vmjob_ctl_finished(struct vmjob *vj, struct task *t)
{
	struct tuap_err err;

	if (t->kind == T_EJECT) { /* nobody waits for it */
		if (t->rc < 0)
			log_warn(
				"%s: %s; the seed (with the agent's key) stays in the VM: eject it "
				"with virsh change-media",
				t->domain, t->msg);
		else
			log_info("%s: %s", t->domain, t->lines.n ? t->lines.v[0] : "seed ejected");
		return;
	}

	if (t->rc == 0 && t->kind == T_DESTROY && t->purge) {
		vmjob_state_drop(vj, t->domain);
		if (engine_forget_domain(t->e, t->domain, &t->lines, &err) < 0) {
			t->rc = -1;
			snprintf(t->msg, sizeof(t->msg), "the VM is gone, but: %s", err.msg);
		}
	}
	if (t->rc < 0) {
		struct buf done = BUF_INIT;

		for (size_t i = 0; i < t->lines.n; i++) /* what was done before it failed */
			buf_addf(&done, "%s%s", i ? "; " : " (done before: ", t->lines.v[i]);
		engine_reply_error(t->e, &t->peer, TUAP__ERROR__CODE__INTERNAL, "%s%s%s", t->msg,
				   done.s ? done.s : "", done.s ? ")" : "");
		buf_free(&done);
		return;
	}
	log_info("%s: %s", t->domain, t->lines.n ? t->lines.v[t->lines.n - 1] : "done");
	engine_reply(t->e, &t->peer, 0, (const char *const *)t->lines.v, t->lines.n);
}
