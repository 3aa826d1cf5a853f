/*
 * What tuap-agent does with each message from tuapd, in one place (agent_dispatch): a Plan is
 * logged, a StepRequest starts a step (or carries on with the one that runs, when tuapd resends
 * it after a reconnect), DataChunks feed the data step, a Cancel stops the running step, an
 * Error is logged. The steps' events go back through agent_emit; the Hello is filled from the
 * step journal by agent_fill_hello. Which messages may reach an agent at all is wire.c's
 * allow-list; the link (link.c) has already dropped duplicates and out-of-order ones.
 * What dispatch sends goes through agent.send: link_send in tuap-agent (main.c), a checker in
 * tests/fuzz/fuzz_agent.c.
 */
#ifndef TUAP_AGENT_DISPATCH_H
#define TUAP_AGENT_DISPATCH_H

#include <stddef.h>

#include "agentconf.h"
#include "link.h"
#include "stepjournal.h"
#include "steps.h"
#include "wire.h"

/* Sends env to tuapd (link_send's contract). */
typedef int (*agent_send_fn)(void *ctx, const Tuap__Envelope *env, struct tuap_err *err);

struct agent {
	struct agentconf conf;
	struct link *link; /* main.c's; dispatch sends through send(send_ctx, ...) */
	agent_send_fn send;
	void *send_ctx;
	struct stepjournal *journal;
	struct step_env env;
	struct step_run *run;
	char job[STEPJOURNAL_JOB_MAX + 1]; /* the job of the current/last run */
	uint64_t attempt; /* the StepRequest.attempt it serves; 0: none (a recovered make) */
	/* Hello contents, kept alive until the next Hello */
	char hostname[256], os_id[64], os_version[64], boot_id[64];
	Tuap__StepRecord **records;
	size_t n_records;
};

/* Handles one message from tuapd. */
void agent_dispatch(struct agent *a, const Tuap__Envelope *env);
/* Lets the running step do the work that is ready and asks for data it wants. */
void agent_service(struct agent *a);
/* step_env.emit: sends a step's event to tuapd under the current job. */
void agent_emit(void *ctx, const Tuap__StepEvent *ev);
/* link_hello_fn: the Hello's contents (host, OS, journal records, running step). */
void agent_fill_hello(void *arg, Tuap__Hello *h);

#endif
