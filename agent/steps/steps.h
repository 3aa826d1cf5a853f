/*
 * The agent's steps (users, packages, mail, data, make) as runs the agent's main loop drives
 * without blocking: step_start begins one, step_pollfds/step_timeout_ms say what to wait for,
 * step_service does the work that is ready and reports through env->emit as StepEvents
 * (STARTED, LOG lines in batches, PROGRESS, then one DONE / FAILED / INTERRUPTED), and
 * step_done says when the run is over. Every step journals its start and its end (journal.h),
 * so a step that is DONE for a job is never run again for it ("already done"), and a job's make
 * is never started twice (MakeArgs.rerun aside).
 *
 * The file system: steps act on the running system. env->root is "/" in production; when it is
 * another directory (root-only tests), the files the users and mail steps edit themselves
 * (/etc/passwd, group, shadow read; sudoers.d, aliases, authorized_keys written) are taken
 * under it and the shadow tools get `--root ROOT` (they chroot(2) themselves). Packages are
 * always installed on the running system. The data and make steps use env->site_root and
 * env->state_dir, which are full paths.
 *
 * Events: env->emit gets an event whose strings live only during the call; copy what you keep.
 * emit may be called from step_start, step_service, step_cancel and step_data_chunk.
 */
#ifndef TUAP_AGENT_STEPS_H
#define TUAP_AGENT_STEPS_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "stepjournal.h"
#include "tuap.pb-c.h"

#define STEP_STATE_DIR	  "/var/lib/tuap-agent"
#define STEP_SITE_ROOT	  "/srv/tuap"
#define STEP_LOG_BATCH	  64	     /* lines per LOG event at most */
#define STEP_LOG_LINE_MAX 4096	     /* longer output lines are cut into pieces this long */
#define STEP_DATA_WINDOW  (8u << 20) /* bytes the data step asks for ahead of what it has */
#define STEP_PREV_KEEP	  3	     /* SITE_ROOT/DOMAIN.prev-* trees kept after a replace */

struct step_env {
	const char *root;      /* "/" (see above) */
	const char *state_dir; /* STEP_STATE_DIR; holds journal and jobs/JOB/ */
	const char *site_root; /* STEP_SITE_ROOT; sites are SITE_ROOT/DOMAIN */
	struct stepjournal *journal;
	void (*emit)(void *ctx, const Tuap__StepEvent *ev);
	void *ctx;
};

struct step_run;

/* Starts req for job_id on domain. The strings of env (not env itself) must outlive the run.
 * Returns 0 with *run set, even when the step failed or had nothing to do at once (the run is
 * then already done and its events emitted). Returns -1 without a run and without events only
 * when no run could be made (missing arguments, out of memory). */
int step_start(const struct step_env *env, const char *job_id, const char *domain,
	       const Tuap__StepRequest *req, struct step_run **run, struct tuap_err *err);
/* Descriptors the run waits on (POLLIN); returns how many were written (at most max). */
size_t step_pollfds(struct step_run *run, struct pollfd *fds, size_t max);
/* Milliseconds until the run wants step_service even without activity: -1 never, 0 now. */
int step_timeout_ms(const struct step_run *run);
/* Does the work that is ready, within a bounded budget (call it again when step_timeout_ms
 * says 0). Harmless when nothing is ready or the run is done. */
void step_service(struct step_run *run);
bool step_done(const struct step_run *run);
/* The final state once done (DONE, FAILED or INTERRUPTED), else STATE_STARTED. */
Tuap__StepState step_state(const struct step_run *run);
Tuap__Step step_which(const struct step_run *run);
const char *step_job(const struct step_run *run);
/* Stops the run (child processes get SIGTERM, then SIGKILL) and reports FAILED with reason. */
void step_cancel(struct step_run *run, const char *reason);
/* A new deadline counted from now (0: none), when tuapd starts the running step again (a
 * make's supervisor keeps the one it was started with). */
void step_set_deadline(struct step_run *run, uint32_t deadline_s);
/* Frees the run. A running child of a users/packages/mail step is killed; a make keeps running
 * under its supervisor and a later step_start of the same job's make reattaches to it. */
void step_free(struct step_run *run);

/* Data step: a DataChunk arrived. Chunks that overlap what is stored are trimmed, chunks
 * ahead of it are held (up to STEP_DATA_WINDOW) until the gap is filled, chunks beyond the
 * window are dropped, and so are chunks that come after everything arrived. Returns -1 when run is
 * not a data step or the chunk lies beyond the announced size (a controller bug). */
int step_data_chunk(struct step_run *run, uint64_t offset, const void *data, size_t len,
		    struct tuap_err *err);
/* Data step: 1 with the ChunkRequest to send (offset, credit) when the agent should ask for
 * more, 0 when not now. Call after step_start, after each step_data_chunk, and after
 * step_data_rewind. */
int step_data_want(struct step_run *run, uint64_t *offset, uint32_t *credit);
/* Data step: forget the credit given (a new session: the controller dropped what it owed),
 * so that the next step_data_want asks again from the first missing byte. */
void step_data_rewind(struct step_run *run);

/* At agent start-up: when the journal holds a job whose make was started and has not ended
 * (the agent was killed or restarted meanwhile), starts that make step again, which reattaches
 * to its live supervisor or reports how it ended (DONE / FAILED from its status, else
 * INTERRUPTED), and returns 1 with *run (the Hello's running_job_id / running_step while it
 * runs). Returns 0 when there is none (the most recently started one is taken). */
int step_recover(const struct step_env *env, struct step_run **run, struct tuap_err *err);

/* "apt" or "dnf" (the package manager the packages step would use), or NULL. */
const char *step_pkg_manager(void);

#endif
