/*
 * libvirt events for a poll()-based main loop. libvirt delivers domain lifecycle and connection
 * close callbacks from its own event loop; we run that loop (virEventRunDefaultImpl) in one
 * dedicated thread, and the callbacks only copy the event into a bounded queue and bump an
 * eventfd. tuapd's main loop polls virt_event_fd() next to its sockets and drains the queue
 * with virt_event_next(), so it waits on events and never sleep-polls libvirt. The queue is a
 * fixed ring: when the main loop falls VIRT_EVENT_QUEUE events behind, the oldest are dropped
 * and counted (state can always be re-read with virt_domain_state).
 */
#include "virt_priv.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct virt_event queue[VIRT_EVENT_QUEUE];
static size_t q_head, q_len;
static unsigned long dropped;
static int efd = -1;

static pthread_t thread;
static int running;    /* thread started (main thread only) */
static int registered; /* virEventRegisterDefaultImpl done: once per process */
static atomic_int stopping;
static atomic_int wake_timer = -1;

static void push(const struct virt_event *ev)
{
	uint64_t one = 1;

	pthread_mutex_lock(&lock);
	if (q_len == VIRT_EVENT_QUEUE) {
		q_head = (q_head + 1) % VIRT_EVENT_QUEUE;
		q_len--;
		dropped++;
	}
	queue[(q_head + q_len) % VIRT_EVENT_QUEUE] = *ev;
	q_len++;
	/* Under the lock, so virt_event_next cannot clear the counter between push and write. A
	 * full counter (EAGAIN) still leaves the fd readable, which is all we need. */
	if (efd >= 0) {
		ssize_t r = write(efd, &one, sizeof(one));
		(void)r;
	}
	pthread_mutex_unlock(&lock);
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	struct virt_event ev = {
		.kind = VIRT_EV_LIFECYCLE, .conn = conn, .event = event, .detail = detail};
	const char *name = virDomainGetName(dom);

	(void)opaque;
	snprintf(ev.domain, sizeof(ev.domain), "%s", name ? name : "");
	push(&ev);
	return 0;
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
	struct virt_event ev = {.kind = VIRT_EV_CLOSED, .conn = conn, .detail = reason};

	(void)opaque;
	push(&ev);
}

static void on_wake(int timer, void *opaque)
{
	(void)opaque;
	virEventRemoveTimeout(timer);
	atomic_store(&wake_timer, -1);
}

static void *loop(void *arg)
{
	(void)arg;
	while (!atomic_load(&stopping)) {
		/* Blocks until a handle or timer is due; every registration (including the wake
		 * timer of virt_event_stop) interrupts it. */
		if (virEventRunDefaultImpl() < 0)
			break;
	}
	return NULL;
}

int virt_event_running(void)
{
	return running;
}

int virt_event_start(struct tuap_err *err)
{
	int rc;

	if (running)
		return 0;
	if (!registered) {
		if (virEventRegisterDefaultImpl() < 0)
			return virt_fail(err, "cannot register libvirt's event loop");
		registered = 1;
	}
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (efd < 0)
		return err_set(err, "eventfd: %s", strerror(errno));
	atomic_store(&stopping, 0);
	rc = pthread_create(&thread, NULL, loop, NULL);
	if (rc != 0) {
		close(efd);
		efd = -1;
		return err_set(err, "cannot start the libvirt event thread: %s", strerror(rc));
	}
	running = 1;
	return 0;
}

void virt_event_stop(void)
{
	int t;

	if (!running)
		return;
	atomic_store(&stopping, 1);
	t = virEventAddTimeout(0, on_wake, NULL, NULL);
	if (t >= 0)
		atomic_store(&wake_timer, t);
	pthread_join(thread, NULL);
	t = atomic_exchange(&wake_timer, -1);
	if (t >= 0)
		virEventRemoveTimeout(t);
	running = 0;
	pthread_mutex_lock(&lock);
	close(efd);
	efd = -1;
	q_head = q_len = 0;
	pthread_mutex_unlock(&lock);
}

int virt_event_fd(void)
{
	return efd;
}

int virt_event_next(struct virt_event *ev)
{
	uint64_t n;
	int got = 0;

	pthread_mutex_lock(&lock);
	if (q_len > 0) {
		*ev = queue[q_head];
		q_head = (q_head + 1) % VIRT_EVENT_QUEUE;
		q_len--;
		got = 1;
	}
	if (q_len == 0 && efd >= 0) {
		ssize_t r = read(efd, &n, sizeof(n)); /* EAGAIN: already clear */
		(void)r;
	}
	pthread_mutex_unlock(&lock);
	return got;
}

unsigned long virt_event_dropped(void)
{
	unsigned long n;

	pthread_mutex_lock(&lock);
	n = dropped;
	pthread_mutex_unlock(&lock);
	return n;
}

int virt_event_attach(struct virt *v, struct tuap_err *err)
{
	/* Keepalive makes a dead libvirtd show up as VIRT_EV_CLOSED within ~20 s instead of a
	 * hung call. Drivers without a remote side (test:///) do not support it: fine. */
	if (virConnectSetKeepAlive(v->conn, 5, 3) < 0)
		virResetLastError();
	v->lifecycle_cb = virConnectDomainEventRegisterAny(
		v->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
		VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), NULL, NULL);
	if (v->lifecycle_cb < 0)
		return virt_fail(err, "cannot subscribe to domain lifecycle events on %s", v->uri);
	if (virConnectRegisterCloseCallback(v->conn, on_close, NULL, NULL) == 0)
		v->close_cb = 1;
	else
		virResetLastError(); /* local drivers never close */
	return 0;
}

void virt_event_detach(struct virt *v)
{
	if (v->lifecycle_cb >= 0)
		virConnectDomainEventDeregisterAny(v->conn, v->lifecycle_cb);
	v->lifecycle_cb = -1;
	if (v->close_cb)
		virConnectUnregisterCloseCallback(v->conn, on_close);
	v->close_cb = 0;
}

/* ---- names ---- */

static const char *const event_names[] = {
	"defined", "undefined", "started",     "suspended", "resumed",
	"stopped", "shutdown",	"pmsuspended", "crashed",
};

static const char *const detail_names[][9] = {
	{"added", "updated", "renamed", "from snapshot"},
	{"removed", "renamed"},
	{"booted", "migrated", "restored", "from snapshot", "wakeup"},
	{"paused", "migrated", "ioerror", "watchdog", "restored", "from snapshot", "api error",
	 "postcopy", "postcopy failed"},
	{"unpaused", "migrated", "from snapshot", "postcopy", "postcopy failed"},
	{"shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from snapshot"},
	{"finished", "guest", "host"},
	{"memory", "disk"},
	{"panicked", "crashloaded"},
};

static const char *const close_names[] = {"error", "eof", "keepalive", "client"};

const char *virt_event_str(const struct virt_event *ev, char *buf, size_t len)
{
	const char *e = NULL, *d = NULL;
	size_t ne = sizeof(event_names) / sizeof(event_names[0]);

	if (ev->kind == VIRT_EV_CLOSED) {
		if (ev->detail >= 0 && ev->detail < 4)
			d = close_names[ev->detail];
		snprintf(buf, len, "connection closed/%s", d ? d : "unknown");
		return buf;
	}
	if (ev->event >= 0 && (size_t)ev->event < ne) {
		e = event_names[ev->event];
		if (ev->detail >= 0 && ev->detail < 9)
			d = detail_names[ev->event][ev->detail];
	}
	if (e && d)
		snprintf(buf, len, "%s/%s", e, d);
	else if (e)
		snprintf(buf, len, "%s/%d", e, ev->detail);
	else
		snprintf(buf, len, "event %d/%d", ev->event, ev->detail);
	return buf;
}
