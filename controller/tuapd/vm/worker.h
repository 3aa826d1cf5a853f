/*
 * worker: one thread that runs queued items one at a time, in the order submitted, and tells the
 * main loop through a file descriptor when an item finished or has news (progress). It knows
 * nothing of what an item does: the VM manager embeds a `struct worker_item` in its tasks and
 * gives the function that runs one. Finished items come back as a list, oldest first, for the
 * main thread to hand on and free.
 *
 * Cancelling: worker_cancel_if marks the items it matches, running or queued; a run function
 * polls worker_cancelled() where it can take long (reading an image) and gives up, and one
 * marked before it started ends at once. Nothing is interrupted behind its back. worker_stop
 * marks the running item too.
 */
#ifndef TUAP_WORKER_H
#define TUAP_WORKER_H

#include <stdbool.h>

#include "err.h"

struct worker_item {
	struct worker_item *next;
	bool cancel; /* under the worker's lock; read with worker_cancelled */
};

struct worker;

/* run: what the thread does with an item (called without the lock). NULL with err. */
struct worker *worker_new(void (*run)(struct worker_item *it, void *ctx), void *ctx,
			  struct tuap_err *err);
/* Stops the thread (waiting up to wait_s seconds for a running item) and frees the queues'
 * items with free_item; the running item is asked to give up first. Returns false, freeing nothing,
 * when an item still runs: the caller then must not free what it uses. */
bool worker_stop(struct worker *w, unsigned wait_s, void (*free_item)(struct worker_item *it));
/* Frees a stopped worker. */
void worker_free(struct worker *w);

/* Readable when an item finished or worker_wake was called; worker_take_finished clears it. */
int worker_fd(const struct worker *w);
/* Queues it (the thread starts on first use); -1 with err when the thread cannot start (it is
 * then not queued). */
int worker_submit(struct worker *w, struct worker_item *it, struct tuap_err *err);
/* The finished items, oldest first (linked by next); NULL when none. */
struct worker_item *worker_take_finished(struct worker *w);
bool worker_idle(struct worker *w);

/* The lock items' shared fields (progress) are written and read under. */
void worker_lock(struct worker *w);
void worker_unlock(struct worker *w);
/* The running item, or NULL; only while holding the lock. */
struct worker_item *worker_current(struct worker *w);
/* Makes worker_fd readable (an item has news for the main thread). */
void worker_wake(struct worker *w);

/* Asks every item match() says yes to, running or queued, to give up; returns how many. match
 * is called under the lock (it must not call the worker). */
unsigned worker_cancel_if(struct worker *w, bool (*match)(const struct worker_item *it, void *arg),
			  void *arg);
/* True when the item being run was asked to give up (called by its run function). */
bool worker_cancelled(struct worker *w, const struct worker_item *it);

#endif
