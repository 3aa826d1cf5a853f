/*
 * Internals of the job engine shared by its files: job.c (phases, the step conversation with
 * the agent, deadlines), jobstate.c (the journal, the jobs in memory, resume after a restart)
 * and jobctl.c (requests from tuap-ctl, the upload of data.tar.gz). Nothing outside the engine
 * includes this.
 */
#ifndef TUAP_JOB_IMPL_H
#define TUAP_JOB_IMPL_H

#include <limits.h>
#include <stdbool.h>

#include "domain.h"
#include "hash.h"
#include "job.h"
#include "log.h"

#define MAX_SUBSCRIBERS 16
#define CONF_MAX	(1u << 20)

enum job_kind { KIND_PROVISION, KIND_RUN, KIND_UPDATE_DATA };

/* setup.log's bound: an agent's output cannot fill tuapd's state_dir, and `tuap-ctl log`
 * always reads it. */
#define JOB_SETUP_LOG_MAX (8u << 20)

struct job {
	struct job *next;
	uint32_t dhash; /* engine_domain_hash(domain): the lists are scanned by it */
	uint64_t seq;	/* order of creation in this tuapd (ids of one second sort at random) */
	char id[32];
	char domain[DOMAIN_NAME_MAX + 1];
	enum job_kind kind;
	struct domain dom; /* conf + users as submitted */
	bool existing, rerun_make, rebuild, resumed, force_users;
	char make_target[256];
	bool has_data;
	char data_sha[SHA256_HEX_LEN];
	uint64_t data_size;
	char data_path[PATH_MAX]; /* POOL_ROOT/DOMAIN/data-SHA.tar.gz */
	char dir[PATH_MAX];	  /* STATE_DIR/domains/DOMAIN/jobs/ID */

	enum job_state state;
	enum job_phase phase;
	bool phase_running;
	int64_t started_ms, phase_started_ms, deadline_ms;
	/* StepRequest.attempt of the phase's step: the start's wall-clock ms, kept larger than
	 * the previous one, so it grows across resumes and tuapd's restarts (proto/tuap.proto) */
	uint64_t attempt;
	int exit_code;

	struct ctl_peer subs[MAX_SUBSCRIBERS];
	size_t n_subs;

	/* upload from tuap-ctl */
	int upload_fd;
	uint64_t upload_offset, upload_granted;
	struct sha256 upload_hash;
	struct ctl_peer uploader;
	bool uploading;
	bool log_full; /* setup.log reached JOB_SETUP_LOG_MAX: the rest is dropped */

	/* data to the agent: what its ChunkRequests asked for is [data_next, data_owed); after
	 * the hub refused a chunk, engine_tick tries again at pump_at_ms (backing off) */
	int data_fd;
	uint64_t data_next, data_owed;
	int64_t pump_at_ms;
	unsigned pump_fails;
};

struct agent_info {
	struct agent_info *next;
	uint32_t dhash;
	char domain[DOMAIN_NAME_MAX + 1];
	char version[64];
	char host[256];
	int64_t last_seen_ms;
	bool hello_seen;
};

/* What the loop's pass wrote and has not made durable yet (commit.c). */
struct commit {
	char **files; /* written, to be synced with their directories before the records */
	size_t n_files, cap_files;
	struct commit_rec *recs; /* journal records, in the order they were made */
	size_t n_recs, cap_recs;
};

struct engine {
	struct engine_conf conf;
	char state_dir[PATH_MAX], pool_root[PATH_MAX], endpoint[256], server_pub[41];
	struct engine_io io;
	struct phase_provider provider;
	bool has_provider;
	struct push_provider push;
	bool has_push;
	struct job *jobs; /* every job loaded: running ones and each domain's last */
	uint64_t job_seq;
	struct agent_info *agents;
	key_resolver resolve;
	void *resolve_ctx;
	struct commit commit;
};

/* Group commit (commit.c): path was written (not synced); it and its directory are synced
 * before any record of this pass reaches the disk. */
int engine_commit_file(struct engine *e, const char *path);
/* Keeps a journal record for the next engine_commit; -1 (nothing kept) on a bad record. */
int engine_commit_record(struct engine *e, const char *journal, const char *const *fields, size_t n,
			 struct tuap_err *err);
/* engine_commit, then frees what it kept (engine_free). */
void engine_commit_free(struct engine *e);

void job_event_init(const struct job *job, Tuap__CtlEvent *ev);
void job_broadcast(struct engine *e, struct job *job, const Tuap__CtlEvent *ev);
void job_subscribe(struct job *job, const struct ctl_peer *peer);
void job_emit_phase(struct engine *e, struct job *job, Tuap__PhaseEvent__State st, const char *msg,
		    uint64_t done, uint64_t total, const char *const *lines, size_t n_lines);
void job_send_final(struct engine *e, const struct ctl_peer *peer, struct job *job, int code,
		    const char *msg);
void job_journal(struct engine *e, struct job *job, const char *kind, const char *name,
		 const char *state, const char *detail);
/* The hash that the engine's scans of jobs and agents compare before the name (a thousand
 * domains with one long suffix made strcmp a sixth of tuapd's CPU). */
uint32_t engine_domain_hash(const char *domain);
struct job *engine_running_job(struct engine *e, const char *domain);
struct job *engine_last_job(struct engine *e, const char *domain);
/* tuapd's own keypair is STATE_DIR/keys/server.{key,pub}: no domain may be called that. */
#define ENGINE_SERVER_KEY "server"
/* valid_domain_name, and not ENGINE_SERVER_KEY: 0, else -1 with why. */
int engine_domain_ok(const char *domain, char *why, size_t len);
/* Whether domain has an agent key: STATE_DIR/keys/DOMAIN.pub. */
/* Calls fn for each enrolled domain: STATE_DIR/keys/DOMAIN.pub (pub is its path). */
void engine_each_enrolled(struct engine *e,
			  void (*fn)(struct engine *e, const char *domain, const char *pub,
				     void *arg),
			  void *arg);
struct agent_info *engine_agent(struct engine *e, const char *domain, bool create);
void job_free(struct job *job);
struct job *job_alloc(struct engine *e, const char *domain, const char *id);
void engine_prune_jobs(struct engine *e, const char *domain);
void job_new_id(char *out, size_t len);
unsigned engine_deadline(const struct engine *e, enum job_phase ph);
void job_enter_phase(struct engine *e, struct job *job, enum job_phase from);
int engine_load_inputs(struct engine *e, const struct ctl_peer *peer, const char *domain,
		       const char *conf_path, const char *conf, size_t conf_len,
		       const char *users_path, const char *users, size_t users_len,
		       struct domain *dom);
void job_set_data_path(struct engine *e, struct job *job);
void job_parse_created(struct job *job, const char *detail);
void job_created_detail(const struct job *job, char *out, size_t len);
/* inputs.c: writes one input file (provision.conf, users.yaml) into the job's directory. */
/* The job's upload has lost its tuap-ctl: the upload phase fails. */
void job_upload_gone(struct engine *e, struct job *job);
/* Makes job->dir, listed for the group commit. */
int job_make_dir(struct engine *e, struct job *job);
int job_save_input(struct engine *e, struct job *job, const char *name, const void *data,
		   size_t len);
/* inputs.c: the inputs of job from, for job to (run, update-data); answers peer on failure. */
int job_copy_inputs(struct engine *e, const struct ctl_peer *peer, const struct job *from,
		    struct job *to);
void job_start_upload(struct engine *e, struct job *job);
const char *job_state_name(const struct job *job);
bool job_phase_applies(struct engine *e, struct job *job, enum job_phase ph);
/* The agent step of a step phase (PH_USERS..PH_MAKE), else STEP_UNKNOWN. */
Tuap__Step job_step_of(enum job_phase ph);

/* What log_job needs of a job (journald's DOMAIN, JOB and PHASE fields). */
#define JOB_ABOUT(job) (&(struct log_about){(job)->domain, (job)->id, job_phase_name((job)->phase)})

#endif
