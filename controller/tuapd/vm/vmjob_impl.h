/*
 * Internals of the VM manager shared by vmjob.c, vmjob_phase.c, vmjob_task.c and vmjob_ctl.c.
 * Nothing outside vmjob includes this.
 */
#ifndef TUAP_VMJOB_IMPL_H
#define TUAP_VMJOB_IMPL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "agentconf.h"
#include "buf.h"
#include "domain.h"
#include "image.h"
#include "keys.h"
#include "seed.h"
#include "virtdef.h"
#include "vmjob.h"
#include "worker.h"

/* Storage pools: one for base images, one per domain (its disks, seeds, console log). */
#define VMJOB_IMAGES_POOL VIRTDEF_IMAGES_POOL
#define VMJOB_POOL_PREFIX VIRTDEF_POOL_PREFIX
#define VMJOB_CONSOLE_LOG "console.log"
/* How many lines of the console a stalled or stopped guest shows. */
#define VMJOB_TAIL_LINES 20
/* Most of a console log read (from its end) for console-log and the tails. */
#define VMJOB_CONSOLE_MAX (512u * 1024)
/* Seconds before a failed libvirt connection is tried again for status. */
#define VMJOB_RETRY_S 30

/* What one job's VM phases learnt so far, kept between its phases (main thread only). Lost
 * with a restart of tuapd: each phase then finds or makes again what it needs. */
struct vmstate {
	struct vmstate *next;
	char domain[DOMAIN_NAME_MAX + 1];
	char job_id[32];
	bool have_image, have_disk, have_seed, have_keys;
	struct image_entry img;
	char base_path[PATH_MAX]; /* the image's volume in tuap-images */
	char disk_path[PATH_MAX]; /* the overlay */
	char seed_path[PATH_MAX];
	char agent_pub[KEYS_Z85_SIZE];
	struct agentconf ac; /* with the agent's secret: from keys until the seed is written */
};

enum task_kind {
	T_REBUILD,  /* plan: snapshot, destroy, undefine the old VM */
	T_IMAGE,    /* the base image into tuap-images */
	T_DISK,	    /* (image,) the domain's pool and overlay */
	T_SEED,	    /* write and upload the seed */
	T_DEFINE,   /* (image, disk, seed,) networks, define, autostart, start */
	T_START,    /* define of a VM that exists already: autostart, start */
	T_DESTROY,  /* requests: */
	T_SNAPSHOT, /* */
	T_RESTORE,
	T_EJECT, /* after the agent's first hello: the seed's media out of the VM */
};

/* A seed file whose data the task owns (or src_path, read by the worker). */
struct task_file {
	char name[SEED_PATH_MAX];
	struct buf data;
	char src_path[PATH_MAX];
	mode_t mode;
	bool secret; /* wiped when the task is freed */
};

#define TASK_FILES 8

/* One piece of work for the worker thread. Everything it reads is its own copy: the job may
 * end, and the engine free it, while the task runs. */
struct task {
	struct worker_item item; /* first: the worker queues tasks by it */
	enum task_kind kind;
	struct vmjob *vj;
	struct engine *e;
	char domain[DOMAIN_NAME_MAX + 1];
	char job_id[32];
	enum job_phase phase; /* the phase that waits for it (phase tasks) */
	struct ctl_peer peer; /* the tuap-ctl that waits for it (requests) */
	int64_t started_ms;

	/* inputs */
	struct domain_conf conf; /* flat copy: packages cleared (not needed for renders) */
	char image_value[2048];
	char old_job[64]; /* rebuild: the provision id of the VM replaced */
	bool have_image, have_disk;
	struct image_entry img;
	char base_path[PATH_MAX], disk_path[PATH_MAX], seed_path[PATH_MAX];
	char agent_pub[KEYS_Z85_SIZE];
	struct task_file files[TASK_FILES]; /* seed files, when the task writes the seed */
	size_t n_files;
	bool purge;
	char snap_name[VIRT_NAME_MAX];
	bool latest, oldest, list;
	char note[1024]; /* rebuild: the plan's note on the hypervisor (vmjob_set_plan_note) */

	/* outputs (worker), read by the main thread once the task is done */
	int rc;
	char msg[1024];
	struct strlist lines; /* request answers */

	/* progress (worker writes under the worker's lock; main reads) */
	uint64_t done, total;
	char stage[32];
	bool progress_new;
	int64_t progress_ms;
};

struct task_progress;

struct vmjob {
	const struct settings *set;  /* this hypervisor's (settings_for_hv) */
	const struct settings *host; /* tuapd's own: the image catalog and cache */
	char label[SETTINGS_NAME_MAX + SETTINGS_STR_MAX + 4]; /* "NAME (URI)"; "" with one */
	bool routed;	      /* events come through vmjob_event (the fleet drains them) */
	bool remote;	      /* libvirt_uri names a host: its files are not ours */
	char plan_note[1024]; /* what the fleet said of the hypervisor, for plan */
	struct virt *v;
	bool closed;	      /* libvirt said the connection went away */
	int64_t failed_at_ms; /* last failed connect (status retries after VMJOB_RETRY_S) */
	int epfd;	      /* vmjob_fd: the worker's eventfd and libvirt's event fd */
	bool events_added;
	struct worker *w;
	struct vmstate *states;
};

/* vmjob.c */
/* The libvirt connection, opened (or opened again) on demand; NULL with err. */
struct virt *vmjob_virt(struct vmjob *vj, struct tuap_err *err);
/* The job's state, made (empty) when missing or left from another job of the domain. */
struct vmstate *vmjob_state(struct vmjob *vj, const char *domain, const char *job_id);
void vmjob_state_drop(struct vmjob *vj, const char *domain);
/* 1 ours (m filled), 0 not ours, -2 no such domain, -1 error. */
int vmjob_lookup(struct virt *v, const char *domain, struct tuap_meta *m, struct tuap_err *err);
/* The last n lines of the domain's console log, cleaned of escape sequences and control
 * characters (n 0: all within VMJOB_CONSOLE_MAX), appended to lines; -1 with err. */
int vmjob_console_lines(struct vmjob *vj, const char *domain, size_t n, struct strlist *lines,
			struct tuap_err *err);
/* Directory paths. */
int vmjob_domain_dir(const struct vmjob *vj, const char *domain, char *out, size_t len,
		     struct tuap_err *err);
int vmjob_pool_name(const char *domain, char *out, size_t len, struct tuap_err *err);
/* "disk-JOBID.qcow2": every build of a domain gets its own overlay, so a rebuild keeps the
 * previous one. */
void vmjob_disk_name(const char *job_id, char *out, size_t len);
void vmjob_instance_id(const char *job_id, char *out, size_t len);

/* vmjob_phase.c */
/* Fails the job's phase with msg, prefixed with the hypervisor's label when there is one. */
void vmjob_phase_failed(struct vmjob *vj, struct engine *e, struct job *job, const char *msg);
int vmjob_run(void *ctx, struct engine *e, struct job *job, enum job_phase ph);
/* A phase task finished (main thread). */
void vmjob_phase_finished(struct vmjob *vj, struct task *t);
void vmjob_phase_progress(struct vmjob *vj, const struct task_progress *p);

/* vmjob_ctl.c */
void vmjob_ctl_request(void *ctx, struct engine *e, const struct ctl_peer *peer,
		       const Tuap__CtlRequest *r);
void vmjob_ctl_finished(struct vmjob *vj, struct task *t);

/* vmjob_task.c */
struct task *task_new(struct vmjob *vj, enum task_kind kind, struct engine *e, const char *domain,
		      const char *job_id);
void task_free(struct task *t);
int task_add_file(struct task *t, const char *name, const void *data, size_t len,
		  const char *src_path, mode_t mode, bool secret);
/* Queues t for the worker (started on first use); -1 with err (t freed) when it cannot start. */
int task_submit(struct vmjob *vj, struct task *t, struct tuap_err *err);
/* Runs a task on the worker thread. */
void task_run(struct worker_item *it, void *ctx);
/* The running task's progress, copied out for the main thread. */
struct task_progress {
	struct engine *e;
	char domain[DOMAIN_NAME_MAX + 1];
	char job_id[32];
	enum job_phase phase;
	uint64_t done, total;
	char stage[32];
};

/* 1 and *p filled when the running task reported progress since the last call. */
int task_take_progress(struct vmjob *vj, struct task_progress *p);

#endif
