/*
 * vmjob: tuapd's VM manager. It is the job engine's phase provider (job.h): for a job that
 * makes a VM it runs plan, image, disk, keys, seed and define (ARCHITECTURE.md, phases 3-8)
 * against libvirt, and it answers the requests that only make sense for VMs (destroy,
 * snapshot, restore, console-log) and the VM state that status shows.
 *
 * libvirt is opened lazily, on the first VM job or request: a tuapd that only manages existing
 * hosts never needs it. Long work (downloading and uploading an image, uploading a seed,
 * snapshots, define and start) runs on one worker thread, one task at a time in the order
 * asked, and reports back through vmjob_fd(); the main loop is never blocked by it. The worker
 * touches no engine state: every result is handed to the engine from vmjob_dispatch, on the
 * main thread, and only if the job is still in the phase that asked for it.
 *
 * Files: vmjob.c (connection, events, hooks, helpers), vmjob_phase.c (the phases),
 * vmjob_task.c (the worker and what it does), vmjob_ctl.c (the requests).
 */
#ifndef TUAP_VMJOB_H
#define TUAP_VMJOB_H

#include <stdbool.h>

#include "err.h"
#include "job.h"
#include "settings.h"
#include "virt.h"

struct vmjob;

/* set must outlive the vmjob. Opens nothing yet. Caller frees with vmjob_free. */
struct vmjob *vmjob_new(const struct settings *set, struct tuap_err *err);
/* For one of several hypervisors (controller/tuapd/vm/fleet.c): host is tuapd's own settings
 * (image catalog and cache; the vmjob's are the hypervisor's, settings_for_hv), label names the
 * hypervisor in failures ("" for none), and libvirt's events reach this vmjob only through
 * vmjob_event (the fleet drains the one queue). */
void vmjob_attach(struct vmjob *vj, const struct settings *host, const char *label);
/* A libvirt event of this vmjob's connection (routed vmjobs). */
void vmjob_event(struct vmjob *vj, struct engine *e, const struct virt_event *ev);
/* This vmjob's connection when open (events are matched to it); NULL otherwise. */
const void *vmjob_conn(const struct vmjob *vj);
/* The connection, opened (or again) when needed; NULL with err. */
struct virt *vmjob_connect(struct vmjob *vj, struct tuap_err *err);
/* Said before the plan phase's own message (the hypervisor chosen and why); copied. */
void vmjob_set_plan_note(struct vmjob *vj, const char *note);

/* Stops the worker (waiting a few seconds for a running task) and closes libvirt. */
void vmjob_free(struct vmjob *vj);

/* The provider to give to engine_set_provider. */
void vmjob_provider(struct vmjob *vj, struct phase_provider *p);

/* A descriptor for the main loop's poll: readable when finished work, progress or libvirt
 * events are waiting. Valid from vmjob_new on. */
int vmjob_fd(const struct vmjob *vj);
/* Hands what is waiting to the engine: results and progress of the worker's tasks, and
 * domain events (a VM that stops while its job waits for the agent or runs steps fails the
 * job with the last lines of its console). Call when vmjob_fd() is readable. */
void vmjob_dispatch(struct vmjob *vj, struct engine *e);

/* What plan decides for a domain (pure; vmjob_plan_decide). */
enum vmjob_plan {
	VMJOB_CREATE,	      /* no such domain: make it */
	VMJOB_CONTINUE,	      /* ours and the job resumes: keep it, create nothing */
	VMJOB_REBUILD,	      /* ours and --rebuild: snapshot, undefine, create anew */
	VMJOB_REFUSE_OURS,    /* ours, made by another job, neither --resume nor --rebuild */
	VMJOB_REFUSE_FOREIGN, /* a libvirt domain without tuap's metadata: never touched */
};

/* exists/ours: what libvirt says of the domain; meta: its metadata (when ours). A domain whose
 * metadata names this very job (provision-id == job_id) is this job's own VM: continued. */
enum vmjob_plan vmjob_plan_decide(bool exists, bool ours, const struct tuap_meta *meta,
				  const char *job_id, struct job_flags flags);

#endif
