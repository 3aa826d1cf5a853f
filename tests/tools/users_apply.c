/*
 * users_apply USERS_YAML ROOT: a test-only runner for the differential test of issue 14
 * (tests/integration/test_users_cloudinit.sh). It goes the way a users.yaml goes in production:
 * parsed by the model (users_parse, as tuapd's engine_load_inputs does), turned into the users
 * StepRequest by jobsteps_request, then run by the agent's users step with env.root =
 * ROOT (the shadow tools get `--root ROOT`, the files the step edits are taken under ROOT). The
 * step's journal and state live in a scratch directory that is removed at the end.
 *
 * ssh_import_id: tests send no traffic, so the resolver gives every import id no keys (and says
 * so). That is also what the reference side does: cloud-init's users-and-groups module leaves
 * ssh_import_id to another module (cc_ssh_import_id).
 *
 * Prints the model's diagnostics, or the step's events (one line each, LOG lines prefixed
 * "| "), on stdout. Exits 0 when the step ended DONE, 1 otherwise (refused input, FAILED,
 * INTERRUPTED, or no end within the deadline), 2 on usage errors.
 */
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "domain.h"
#include "err.h"
#include "jobsteps.h"
#include "stepjournal.h"
#include "steps.h"
#include "users.h"

#define DEADLINE_MS  120000 /* the whole step; useradd of a few users takes well under 10 s */
#define POLL_MAX_MS  100
#define POLL_FDS_MAX 8
#define JOB_ID	     "users-diff"
#define DOMAIN	     "users-diff.test"

static const char *state_name(Tuap__StepState s)
{
	switch (s) {
	case TUAP__STEP_STATE__STATE_STARTED:
		return "STARTED";
	case TUAP__STEP_STATE__STATE_PROGRESS:
		return "PROGRESS";
	case TUAP__STEP_STATE__STATE_LOG:
		return "LOG";
	case TUAP__STEP_STATE__STATE_DONE:
		return "DONE";
	case TUAP__STEP_STATE__STATE_FAILED:
		return "FAILED";
	case TUAP__STEP_STATE__STATE_INTERRUPTED:
		return "INTERRUPTED";
	default:
		return "UNKNOWN";
	}
}

static void print_event(void *ctx, const Tuap__StepEvent *ev)
{
	(void)ctx;
	if (ev->state == TUAP__STEP_STATE__STATE_LOG) {
		for (size_t i = 0; i < ev->n_lines; i++)
			printf("| %s\n", ev->lines[i]);
		return;
	}
	printf("%s", state_name(ev->state));
	if (ev->state == TUAP__STEP_STATE__STATE_PROGRESS)
		printf(" %llu/%llu", (unsigned long long)ev->done, (unsigned long long)ev->total);
	if (ev->has_exit_code)
		printf(" exit %d", ev->exit_code);
	if (ev->message && *ev->message)
		printf(": %s", ev->message);
	putchar('\n');
	fflush(stdout);
}

/* The key_resolver: no keys for any id (see above). */
static int resolve_none(void *ctx, const char *import_id, char **keys, struct tuap_err *err)
{
	(void)ctx;
	(void)err;
	printf("users_apply: ssh_import_id %s: no keys (no network in tests)\n", import_id);
	*keys = strdup("");
	if (!*keys)
		abort();
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Services run until it is done or the deadline passes (then it is cancelled). */
static void drive(struct step_run *run)
{
	uint64_t end = now_ms() + DEADLINE_MS;

	while (!step_done(run)) {
		struct pollfd fds[POLL_FDS_MAX];
		size_t n = step_pollfds(run, fds, POLL_FDS_MAX);
		int t = step_timeout_ms(run);

		if (now_ms() >= end) {
			char why[128];

			snprintf(why, sizeof(why),
				 "users_apply: timeout after %d s waiting for the "
				 "users step",
				 DEADLINE_MS / 1000);
			step_cancel(run, why);
			return;
		}
		if (t < 0 || t > POLL_MAX_MS)
			t = POLL_MAX_MS;
		if (poll(fds, n, t) < 0 && errno != EINTR) {
			step_cancel(run, "users_apply: poll failed");
			return;
		}
		step_service(run);
	}
}

/* Parses path as tuapd does; prints the diagnostics when it refuses. */
static int load(const char *path, struct domain *dom)
{
	struct diags d;
	int rc;

	memset(dom, 0, sizeof(*dom));
	diags_init(&d);
	dom->has_users_file = true;
	rc = users_load(path, &dom->users, &d);
	if (rc < 0 || d.errors) {
		printf("users_apply: users.yaml refused (%zu error%s):\n", d.errors,
		       d.errors == 1 ? "" : "s");
		fflush(stdout);
		diags_print(&d, stdout);
		rc = -1;
	}
	diags_free(&d);
	return rc;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

/* Runs req against root with a journal in a scratch directory; returns the final state. */
static Tuap__StepState run_step(const Tuap__StepRequest *req, const char *root)
{
	char scratch[] = "/tmp/tuap-users-apply-XXXXXX";
	Tuap__StepState state = TUAP__STEP_STATE__STATE_UNKNOWN;
	struct stepjournal *j = NULL;
	struct step_run *run = NULL;
	struct step_env env = {0};
	struct tuap_err err;

	if (!mkdtemp(scratch)) {
		fprintf(stderr, "users_apply: mkdtemp: %s\n", strerror(errno));
		return state;
	}
	if (stepjournal_open(&j, scratch, &err) < 0) {
		fprintf(stderr, "users_apply: %s\n", err.msg);
		goto out;
	}
	env.root = root;
	env.state_dir = scratch;
	env.site_root = scratch; /* not used by the users step */
	env.journal = j;
	env.emit = print_event;
	if (step_start(&env, JOB_ID, DOMAIN, req, &run, &err) < 0) {
		printf("users_apply: step_start: %s\n", err.msg);
		goto out;
	}
	drive(run);
	state = step_state(run);
out:
	step_free(run);
	stepjournal_close(j);
	nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return state;
}

int main(int argc, char **argv)
{
	struct jobsteps_args a = {.step = TUAP__STEP__STEP_USERS, .resolve = resolve_none};
	Tuap__StepRequest *req = NULL;
	struct domain dom;
	struct tuap_err err;
	int rc = 1;

	if (argc != 3 || argv[2][0] != '/') {
		fprintf(stderr, "usage: users_apply USERS_YAML /ROOT\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (load(argv[1], &dom) < 0)
		goto out;
	if (!(req = jobsteps_request(&dom, &a, &err))) {
		printf("users_apply: users.yaml refused: %s\n", err.msg);
		goto out;
	}
	if (run_step(req, argv[2]) == TUAP__STEP_STATE__STATE_DONE)
		rc = 0;
out:
	jobsteps_free(req);
	domain_free(&dom);
	return rc;
}
