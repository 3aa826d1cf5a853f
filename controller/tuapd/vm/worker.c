/* The worker thread and its queues; see worker.h. */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct worker {
	void (*run)(struct worker_item *it, void *ctx);
	void *ctx;
	pthread_t thread;
	bool started, stop;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct worker_item *queue, *queue_tail; /* waiting */
	struct worker_item *current;		/* running */
	struct worker_item *finished, *finished_tail;
	int efd; /* eventfd: an item finished or has news */
};

struct worker *worker_new(void (*run)(struct worker_item *it, void *ctx), void *ctx,
			  struct tuap_err *err)
{
	struct worker *w = calloc(1, sizeof(*w));

	if (!w) {
		err_set(err, "out of memory");
		return NULL;
	}
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0) {
		err_set(err, "worker: eventfd: %s", strerror(errno));
		free(w);
		return NULL;
	}
	w->run = run;
	w->ctx = ctx;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	return w;
}

void worker_wake(struct worker *w)
{
	uint64_t one = 1;

	if (write(w->efd, &one, sizeof(one)) < 0)
		log_debug("worker: wake-up: %s", strerror(errno));
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct worker_item *it;

		while (!w->queue && !w->stop)
			pthread_cond_wait(&w->wake, &w->lock);
		if (w->stop)
			break;
		it = w->queue;
		w->queue = it->next;
		if (!w->queue)
			w->queue_tail = NULL;
		it->next = NULL;
		w->current = it;
		pthread_mutex_unlock(&w->lock);

		w->run(it, w->ctx);

		pthread_mutex_lock(&w->lock);
		w->current = NULL;
		if (w->finished_tail)
			w->finished_tail->next = it;
		else
			w->finished = it;
		w->finished_tail = it;
		worker_wake(w);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int worker_submit(struct worker *w, struct worker_item *it, struct tuap_err *err)
{
	if (!w->started) {
		int rc = pthread_create(&w->thread, NULL, worker_main, w);

		if (rc != 0)
			return err_set(err, "cannot start the worker thread: %s", strerror(rc));
		w->started = true;
	}
	pthread_mutex_lock(&w->lock);
	it->next = NULL;
	it->cancel = false;
	if (w->queue_tail)
		w->queue_tail->next = it;
	else
		w->queue = it;
	w->queue_tail = it;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

struct worker_item *worker_take_finished(struct worker *w)
{
	struct worker_item *list;
	uint64_t n;

	if (read(w->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_debug("worker: %s", strerror(errno));
	pthread_mutex_lock(&w->lock);
	list = w->finished;
	w->finished = w->finished_tail = NULL;
	pthread_mutex_unlock(&w->lock);
	return list;
}

int worker_fd(const struct worker *w)
{
	return w->efd;
}

void worker_lock(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
}

void worker_unlock(struct worker *w)
{
	pthread_mutex_unlock(&w->lock);
}

struct worker_item *worker_current(struct worker *w)
{
	return w->current;
}

bool worker_idle(struct worker *w)
{
	bool idle;

	pthread_mutex_lock(&w->lock);
	idle = !w->current && !w->queue;
	pthread_mutex_unlock(&w->lock);
	return idle;
}

unsigned worker_cancel_if(struct worker *w, bool (*match)(const struct worker_item *it, void *arg),
			  void *arg)
{
	unsigned n = 0;

	pthread_mutex_lock(&w->lock);
	if (w->current && match(w->current, arg)) {
		w->current->cancel = true;
		n++;
	}
	for (struct worker_item *it = w->queue; it; it = it->next)
		if (match(it, arg)) {
			it->cancel = true;
			n++;
		}
	pthread_mutex_unlock(&w->lock);
	return n;
}

bool worker_cancelled(struct worker *w, const struct worker_item *it)
{
	bool c;

	pthread_mutex_lock(&w->lock);
	c = it->cancel;
	pthread_mutex_unlock(&w->lock);
	return c;
}

static void free_list(struct worker_item *it, void (*free_item)(struct worker_item *it))
{
	while (it) {
		struct worker_item *next = it->next;

		free_item(it);
		it = next;
	}
}

bool worker_stop(struct worker *w, unsigned wait_s, void (*free_item)(struct worker_item *it))
{
	struct timespec deadline;

	if (!w->started)
		return true;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	if (w->current)
		w->current->cancel = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += wait_s;
	if (pthread_timedjoin_np(w->thread, NULL, &deadline) != 0)
		return false;
	w->started = false;
	free_list(w->queue, free_item);
	free_list(w->finished, free_item);
	w->queue = w->queue_tail = w->finished = w->finished_tail = NULL;
	return true;
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	close(w->efd);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	free(w);
}
