/*
 * What the steps share (private to agent/steps.c and the files in agent/steps/): the run, its
 * events (log lines batched, progress, the final state journaled and emitted once), and the action
 * queue that the users, packages and mail steps are made of: commands run one after another
 * with their output streamed, and in-process actions between them. The data and make steps
 * bring their own step_ops instead.
 */
#ifndef TUAP_AGENT_STEPS_RUN_H
#define TUAP_AGENT_STEPS_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "proc.h"
#include "steps.h"

#define RUN_READ_BUDGET	  (256 * 1024) /* output bytes read per step_service */
#define RUN_BATCH_BYTES	  (64 * 1024)  /* LOG event size before it is sent early */
#define RUN_KILL_GRACE_MS 5000	       /* SIGTERM to SIGKILL */
#define RUN_MAX_ACTIONS	  4096

struct linebuf {
	char s[STEP_LOG_LINE_MAX];
	size_t len;
};

typedef int (*action_fn)(struct step_run *r, void *arg, struct tuap_err *err);

struct action {
	char **argv;  /* owned, NULL-terminated; NULL for an in-process action */
	char *shown;  /* logged before it runs ("$ useradd ..."), owned; may be NULL */
	action_fn fn; /* in-process action */
	void *arg;
	void (*arg_free)(void *);
};

struct step_ops {
	size_t (*pollfds)(struct step_run *r, struct pollfd *fds, size_t max);
	int (*timeout_ms)(const struct step_run *r);
	void (*service)(struct step_run *r);
	void (*cancel)(struct step_run *r, const char *reason);
	void (*free)(struct step_run *r);
};

struct step_run {
	struct step_env env;
	char job[STEPJOURNAL_JOB_MAX + 1];
	char domain[STEPJOURNAL_DOMAIN_MAX + 1];
	Tuap__Step step;
	uint32_t deadline_s;  /* 0: none */
	uint64_t deadline_ms; /* monotonic; 0: none */

	bool finished;
	Tuap__StepState state;

	char *lines[STEP_LOG_BATCH]; /* pending LOG lines */
	size_t n_lines, batch_bytes;

	/* the action queue */
	struct action *acts;
	size_t n_acts, next;
	struct proc child;
	struct linebuf out;
	uint64_t term_at_ms; /* when SIGTERM went to the child (deadline or cancel); 0: not */
	const char *kill_reason;

	const struct step_ops *ops; /* NULL: the action queue */
	void *priv;
};

uint64_t run_now_ms(void);
/* One log line per line of the formatted text. */
void run_log(struct step_run *r, const char *fmt, ...) TUAP_PRINTF(2, 3);
/* Child output: complete lines become log lines; lb keeps a partial last line. */
void run_output(struct step_run *r, struct linebuf *lb, const char *data, size_t len);
/* Logs what is left in lb as a line. */
void run_output_end(struct step_run *r, struct linebuf *lb);
/* Emits the pending log lines as one LOG event. */
void run_flush(struct step_run *r);
void run_progress(struct step_run *r, uint64_t done, uint64_t total, const char *msg);
/* Journals (unless journal is false) and emits the final state; later calls do nothing.
 * code < 0 is "no exit code". */
void run_finish(struct step_run *r, Tuap__StepState state, bool journal, int code, const char *fmt,
		...) TUAP_PRINTF(5, 6);
int run_journal(struct step_run *r, Tuap__StepState state, int code, struct tuap_err *err);

/* Queues a command; argv is copied. Argument secret (>= 0) is shown as "***" in the log. */
void run_queue_cmd(struct step_run *r, const char *const argv[], int secret);
void run_queue_fn(struct step_run *r, action_fn fn, void *arg, void (*arg_free)(void *),
		  const char *shown);

/* ROOT + abs (abs starts with '/'). */
int run_root_path(const struct step_run *r, const char *abs, char *out, size_t len);
/* STATE_DIR/jobs/JOB, created (0700) when create is set. */
int run_job_dir(const struct step_run *r, char *out, size_t len, bool create, struct tuap_err *err);

/* The steps' own starts: 0 when the run is under way or finished, -1 with err to fail it. */
int users_start(struct step_run *r, const Tuap__UsersArgs *a, struct tuap_err *err);
int packages_start(struct step_run *r, const Tuap__PackagesArgs *a, struct tuap_err *err);
int mail_start(struct step_run *r, const Tuap__MailArgs *a, struct tuap_err *err);
int data_start(struct step_run *r, const Tuap__DataArgs *a, struct tuap_err *err);
/* make journals for itself (never twice). */
int make_start(struct step_run *r, const Tuap__MakeArgs *a, struct tuap_err *err);

#endif
