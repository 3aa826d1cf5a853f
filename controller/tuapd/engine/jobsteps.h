/*
 * The StepRequests a job sends to its agent, built from the domain model: users.yaml users as
 * protobuf Users (ssh_import_id resolved here, on the hypervisor, so the guest needs no network
 * access for it), packages, contact e-mail, the data.tar.gz description and make's arguments.
 */
#ifndef TUAP_JOBSTEPS_H
#define TUAP_JOBSTEPS_H

#include <stdbool.h>
#include <stdint.h>

#include "domain.h"
#include "err.h"
#include "tuap.pb-c.h"

/* Fetches the public keys of an ssh_import_id ("gh:USER"); one key per line in *keys (caller
 * frees). NULL resolver: ssh_import_id makes the users step fail with a clear message. */
typedef int (*key_resolver)(void *ctx, const char *import_id, char **keys, struct tuap_err *err);

struct jobsteps_args {
	Tuap__Step step;
	key_resolver resolve;
	void *resolve_ctx;
	const char *data_sha256; /* hex */
	uint64_t data_size;
	uint32_t data_chunk;
	const char *make_target; /* NULL: the default target */
	bool rerun_make;
	bool force_users; /* UsersArgs.force */
	uint32_t deadline_s;
};

/* Builds the request for one step; caller frees with jobsteps_free. */
Tuap__StepRequest *jobsteps_request(const struct domain *dom, const struct jobsteps_args *a,
				    struct tuap_err *err);
void jobsteps_free(Tuap__StepRequest *r);

#endif
