/*
 * tuapd's job engine. A job provisions one domain: a list of named phases, each with a
 * deadline, walked in order; the steps on the host (users, packages, mail, data, make) are
 * phases driven through the domain's agent. Every phase boundary is journaled and fsync'd in
 * STATE_DIR/domains/DOMAIN/journal, with the job's inputs kept beside it, so a restarted tuapd
 * resumes every unfinished job where it stopped. The agent keeps its own journal, so resending
 * the current step after a restart or reconnect never repeats finished work and never starts
 * make twice.
 *
 * The engine does no I/O on sockets itself: it is given callbacks to send to an agent (by
 * domain) and to a tuap-ctl client (by peer), so tuapd wires it to the hub and the control
 * socket and the unit tests wire it to fakes. VM phases (image, disk, seed, define) are
 * supplied by a phase provider; without one, only --existing jobs run.
 */
#ifndef TUAP_JOB_H
#define TUAP_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "jobsteps.h"
#include "strlist.h"
#include "tuap.pb-c.h"

/* A tuap-ctl connection as the control socket names it (its ZeroMQ routing id). */
struct ctl_peer {
	unsigned char id[64];
	size_t len;
};

enum job_phase {
	PH_UPLOAD, /* data.tar.gz from tuap-ctl into the pool */
	PH_PLAN,   /* look the domain up, decide create/resume */
	PH_IMAGE,  /* VM phases: supplied by the phase provider */
	PH_DISK,
	PH_KEYS,
	PH_SEED,
	PH_DEFINE,
	PH_PUSH,  /* existing host (depends_on): agent copied over SSH; the push provider */
	PH_HELLO, /* waiting for the agent */
	PH_USERS, /* steps, run by the agent */
	PH_PACKAGES,
	PH_MAIL,
	PH_DATA,
	PH_MAKE,
	PH_DONE,
	PH_COUNT
};

struct engine_conf {
	const char *state_dir; /* journals, job inputs, setup logs, keys */
	const char *pool_root; /* POOL_ROOT/DOMAIN/data-SHA.tar.gz */
	const char *agent_endpoint;
	const char *server_public_key; /* Z85 */
	unsigned deadline_s[PH_COUNT]; /* 0: the built-in default */
	uint32_t data_chunk;	       /* bytes per DataChunk */
	uint32_t data_window;	       /* most chunks in flight */
	uint32_t upload_chunk;	       /* bytes per UploadChunk asked of tuap-ctl */
	unsigned keep_jobs;	       /* job directories kept per domain; 0: 10 */
};

struct engine_io {
	/* Sends env to DOMAIN's agent; -1 if it cannot be queued (the job waits for a hello). */
	int (*agent_send)(void *ctx, const char *domain, Tuap__Envelope *env);
	/* Sends an event to a tuap-ctl client; -1 when the client is gone. */
	int (*ctl_send)(void *ctx, const struct ctl_peer *peer, const Tuap__CtlEvent *ev);
	/* Allows DOMAIN's agent key on the agent socket (and revokes the previous one); with
	 * public_key NULL, only revokes it (engine_forget_domain). */
	int (*agent_allow)(void *ctx, const char *domain, const char *public_key);
	void *ctx;
};

struct job;
struct engine;

/* A provider of the VM phases (controller/vmjob.c). run starts a phase (PH_PLAN and
 * PH_IMAGE..PH_DEFINE); it calls engine_phase_done / engine_phase_failed, possibly later from the
 * main loop. The optional hooks let it answer the requests that only make sense with VMs and
 * complete status and stalls. */
struct phase_provider {
	bool (*applies)(void *ctx, struct job *job); /* false: the job is for an existing host */
	int (*run)(void *ctx, struct engine *e, struct job *job, enum job_phase ph);
	/* destroy, snapshot, restore, console_log; NULL: refused */
	void (*ctl_request)(void *ctx, struct engine *e, const struct ctl_peer *peer,
			    const Tuap__CtlRequest *r);
	/* libvirt's state of DOMAIN's VM for status ("running"); NULL when not a VM of ours */
	const char *(*vm_state)(void *ctx, const char *domain);
	/* the last lines of the serial console, shown when hello stalls; returns how many were
	 * put in lines[0..max) (malloc'd strings the engine frees) */
	size_t (*console_tail)(void *ctx, const char *domain, char **lines, size_t max);
	/* appends the names of the VMs of ours the hypervisor has, for list and status; NULL:
	 * none */
	void (*domains)(void *ctx, struct strlist *names);
	/* the name of the hypervisor DOMAIN's VM is on (tuapd.conf's hypervisors), for list and
	 * status; NULL when not known */
	const char *(*hypervisor)(void *ctx, const char *domain);
	/* the VM's agent said its first hello for job: what only the first boot needed (the
	 * seed, with the agent's secret key) can go; NULL: nothing to do */
	void (*agent_hello)(void *ctx, struct engine *e, struct job *job);
	/* the engine failed job's phase itself (its deadline passed, a destroy cancelled it):
	 * work still running or queued for it gives up, so it stalls no later job; NULL: none */
	void (*phase_stopped)(void *ctx, struct engine *e, struct job *job);
	void *ctx;
};

/* A provider of PH_PUSH (controller/push.c): brings the agent to the existing host named by
 * depends_on. run calls engine_phase_done / engine_phase_failed. */
struct push_provider {
	int (*run)(void *ctx, struct engine *e, struct job *job);
	void *ctx;
};

struct engine *engine_new(const struct engine_conf *conf, const struct engine_io *io,
			  struct tuap_err *err);
void engine_free(struct engine *e);
void engine_set_provider(struct engine *e, const struct phase_provider *p);
void engine_set_push_provider(struct engine *e, const struct push_provider *p);
/* How ssh_import_id is turned into keys (controller/sshkeys.c in tuapd). */
void engine_set_key_resolver(struct engine *e, key_resolver fn, void *ctx);

/* Replays every domain journal and resumes unfinished jobs (they wait for their agent's
 * hello). Also re-allows every enrolled domain's key. */
int engine_resume_all(struct engine *e, struct tuap_err *err);

/* Messages from tuap-ctl. */
void engine_ctl_request(struct engine *e, const struct ctl_peer *peer, const Tuap__CtlRequest *r);
void engine_ctl_upload(struct engine *e, const struct ctl_peer *peer, const Tuap__UploadChunk *c);
/* A message from DOMAIN's agent (already authenticated and allow-listed by the hub). */
void engine_agent_message(struct engine *e, const char *domain, const Tuap__Envelope *env);
/* Checks deadlines; returns milliseconds until the next one (or -1 for none). */
long engine_tick(struct engine *e, int64_t now_ms);
/* Group commit: makes durable what the engine wrote since the last call (jobs' inputs, then
 * journal records; engine/commit.c). tuapd's loop calls it once per pass, before it lets out
 * the messages the pass made (hub_flush, control_flush): nothing that follows from a record
 * leaves tuapd before the record is on disk. */
void engine_commit(struct engine *e);
bool engine_commit_pending(const struct engine *e);
/* peer (a tuap-ctl) is gone: it is dropped from every job it followed; a job whose upload it
 * was sending fails its upload phase (--resume continues it). */
void engine_ctl_gone(struct engine *e, const struct ctl_peer *peer);

/* For phase providers. */
const char *job_domain(const struct job *job);
const char *job_id(const struct job *job);
const struct domain_conf *job_conf(const struct job *job);
void engine_phase_progress(struct engine *e, struct job *job, uint64_t done, uint64_t total,
			   const char *msg);
void engine_phase_done(struct engine *e, struct job *job, const char *msg);
void engine_phase_failed(struct engine *e, struct job *job, const char *msg,
			 const char *const *lines, size_t n_lines);

/* Makes DOMAIN's agent keypair: keeps the public key (STATE_DIR/keys/DOMAIN.pub), allows it on
 * the agent socket (revoking the previous one) and fills ac with the agent's config (its secret
 * included: the caller wipes ac with agentconf_wipe). endpoint NULL: tuapd's. */
struct agentconf;
int engine_enroll_keys(struct engine *e, const char *domain, const char *endpoint,
		       struct agentconf *ac, struct tuap_err *err);

/* The running job of domain, if job_id is NULL or its id; else NULL. For providers that
 * finish work later and must not touch a job that ended (or was replaced) meanwhile. */
struct job *engine_find_job(struct engine *e, const char *domain, const char *job_id);
/* The phase the job is in, and whether that phase is still running (not yet done/failed). */
enum job_phase job_current_phase(const struct job *job);
bool job_phase_is_running(const struct job *job);

/* Forgets everything tuapd keeps about domain: its agent key (STATE_DIR/keys/DOMAIN.pub, and
 * the hub's allow-list), its journal and job inputs (STATE_DIR/domains/DOMAIN), the data
 * tarballs tuapd stored in POOL_ROOT/DOMAIN, and its jobs in memory. Refused (-1) while a job
 * of the domain runs. For `tuap-ctl destroy --purge`. removed gets one line per thing removed
 * (may be NULL). */
int engine_forget_domain(struct engine *e, const char *domain, struct strlist *removed,
			 struct tuap_err *err);

/* What the operator asked for this job. */
struct job_flags {
	bool existing; /* --existing: an enrolled agent, nothing to create or push */
	bool resumed;  /* the job continues after a failure or a tuapd restart */
	bool rebuild;  /* --rebuild: snapshot, then recreate with new keys and instance-id */
	bool rerun_make;
};
struct job_flags job_get_flags(const struct job *job);
const struct domain *job_domain_model(const struct job *job);

enum job_state { JOB_RUNNING, JOB_DONE, JOB_FAILED };
enum job_state job_get_state(const struct job *job);
const char *job_state_name(const struct job *job); /* "running", "done", "failed" */
/* The newest job tuapd knows of DOMAIN, running or ended; NULL when it knows none. */
const struct job *engine_domain_job(struct engine *e, const char *domain);
/* Whether tuapd holds an agent key for DOMAIN (STATE_DIR/keys/DOMAIN.pub). */
bool engine_enrolled(struct engine *e, const char *domain);
/* Answers a request: text lines, then the final event with exit_code (0 ok, 1 failed). */
void engine_reply(struct engine *e, const struct ctl_peer *peer, int exit_code,
		  const char *const *lines, size_t n);
/* Sends any event to a tuap-ctl client (e.g. a reply of the VM manager's own kind). */
void engine_ctl_event(struct engine *e, const struct ctl_peer *peer, const Tuap__CtlEvent *ev);
void engine_reply_error(struct engine *e, const struct ctl_peer *peer, Tuap__Error__Code code,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));

const char *job_phase_name(enum job_phase ph);
int64_t engine_now_ms(void);

#endif
