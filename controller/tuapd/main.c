/*
 * tuapd: the controller daemon. One thread, one poll loop over the control socket (tuap-ctl),
 * the agent socket (the hub) and the descriptors of its sources (the ssh children of pushes to
 * existing hosts); the job engine does the work and is told of time passing.
 * It runs in the foreground (systemd Type=simple), logs to stderr (journald), and on SIGTERM
 * just exits: every job is journaled and resumes at the next start.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <zmq.h>

#include "control.h"
#include "fsutil.h"
#include "hub.h"
#include "job.h"
#include "keys.h"
#include "log.h"
#include "push.h"
#include "sdsystemd.h"
#include "settings.h"
#include "sshkeys.h"
#include "fleet.h"
#include "wire.h"

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	stopping = sig;
}

/* Something besides the sockets that the loop watches: descriptors (a child's pipe) and a
 * timer, served from the loop so that no provider ever blocks it. */
struct fd_source {
	size_t (*pollitems)(void *ctx, zmq_pollitem_t *items, size_t max);
	long (*timeout)(void *ctx); /* ms until service is due anyway; -1: nothing pending */
	void (*service)(void *ctx);
	void *ctx;
	size_t max; /* pollitems at most */
};

#define MAX_SOURCES 4

struct tuapd {
	struct settings set;
	struct control ctl;
	struct hub *hub;
	struct engine *engine;
	struct push *push;
	struct fd_source sources[MAX_SOURCES];
	size_t n_sources;
	struct fleet *vm; /* the hypervisors: VM phases and requests; libvirt opened on first use */
	void *zctx;
};

static size_t push_items(void *ctx, zmq_pollitem_t *items, size_t max)
{
	return push_pollitems(ctx, items, max);
}

static long push_due(void *ctx)
{
	return push_timeout(ctx);
}

static void push_work(void *ctx)
{
	push_service(ctx);
}

static int io_agent_send(void *ctx, const char *domain, Tuap__Envelope *env)
{
	struct tuapd *d = ctx;
	struct tuap_err err;

	if (hub_send(d->hub, domain, env, &err) < 0) {
		log_debug("%s: not sent: %s", domain, err.msg);
		return -1;
	}
	return 0;
}

static int io_ctl_send(void *ctx, const struct ctl_peer *peer, const Tuap__CtlEvent *ev)
{
	struct tuapd *d = ctx;

	return control_send(&d->ctl, peer, ev);
}

static int io_agent_allow(void *ctx, const char *domain, const char *pubkey)
{
	struct tuapd *d = ctx;
	struct tuap_err err;

	if (!pubkey) {
		hub_revoke(d->hub, domain);
		return 0;
	}
	if (hub_allow(d->hub, domain, pubkey, &err) < 0) {
		log_error("%s: cannot allow its agent key: %s", domain, err.msg);
		return -1;
	}
	return 0;
}

/* tuapd's own CURVE keypair: STATE_DIR/keys/server.{key,pub}, made on first start. */
static int server_keys(const struct settings *s, char pub[KEYS_Z85_SIZE], char sec[KEYS_Z85_SIZE],
		       struct tuap_err *err)
{
	char dir[PATH_MAX], path[PATH_MAX];

	if (fs_path(dir, sizeof(dir), err, "%s/keys", s->state_dir) < 0 ||
	    fs_mkdir_p(dir, 0700, err) < 0 ||
	    fs_path(path, sizeof(path), err, "%s/server.key", dir) < 0)
		return -1;
	if (!fs_exists(path) && keys_generate(dir, "server", NULL, err) < 0)
		return -1;
	if (keys_load_secret(path, sec, err) < 0 || keys_public_of(sec, pub, err) < 0)
		return -1;
	return 0;
}

static int start(struct tuapd *d, struct tuap_err *err)
{
	char pub[KEYS_Z85_SIZE], sec[KEYS_Z85_SIZE], sock[PATH_MAX];
	struct hub_params hp = {0};
	struct engine_conf ec = {0};
	struct engine_io io = {io_agent_send, io_ctl_send, io_agent_allow, d};
	struct push_conf pc = {0};
	struct phase_provider vp;
	int rc;

	if (fs_mkdir_p(d->set.state_dir, 0750, err) < 0 ||
	    fs_mkdir_p(d->set.run_dir, 0755, err) < 0 ||
	    settings_ctl_socket(&d->set, sock, sizeof(sock), err) < 0 ||
	    server_keys(&d->set, pub, sec, err) < 0)
		return -1;
	hp.listen = d->set.agent_listen;
	hp.server_secret = sec;
	hp.max_message = d->set.max_message;
	d->hub = hub_new(&hp, err);
	keys_wipe(sec, sizeof(sec));
	if (!d->hub)
		return -1;
	d->zctx = zmq_ctx_new();
	if (control_open(&d->ctl, d->zctx, sock, d->set.ctl_group, WIRE_MAX_MESSAGE, err) < 0)
		return -1;
	/* what tuapd sends waits for the group commit of its pass of the loop (let_out) */
	hub_defer(d->hub, true);
	control_defer(&d->ctl, true);
	ec.state_dir = d->set.state_dir;
	ec.pool_root = d->set.pool_root;
	ec.agent_endpoint = d->set.public_endpoint;
	ec.server_public_key = pub;
	for (int ph = 0; ph < PH_COUNT; ph++)
		ec.deadline_s[ph] = settings_deadline(&d->set, job_phase_name((enum job_phase)ph));
	ec.data_chunk = (uint32_t)d->set.data_chunk;
	ec.data_window = d->set.data_window;
	ec.keep_jobs = d->set.keep_jobs;
	if (!(d->engine = engine_new(&ec, &io, err)))
		return -1;
	engine_set_key_resolver(d->engine, sshkeys_fetch, &d->set);
	pc.ssh_client = d->set.ssh_client;
	pc.ssh_dir = d->set.ssh_dir;
	pc.connect_timeout_s = d->set.ssh_connect_timeout;
	pc.agent_binary = d->set.agent_binary;
	pc.endpoint = d->set.public_endpoint;
	pc.deadline_s = settings_deadline(&d->set, "push");
	if (!(d->push = push_new(&pc, d->engine, err)))
		return -1;
	d->sources[d->n_sources++] =
		(struct fd_source){push_items, push_due, push_work, d->push, PUSH_MAX_RUNS};
	if (!(d->vm = fleet_new(&d->set, err)))
		return -1;
	fleet_provider(d->vm, &vp);
	engine_set_provider(d->engine, &vp);
	fleet_scan(d->vm);
	rc = engine_resume_all(d->engine, err);
	log_info("tuapd %s: agents on %s, tuap-ctl on %s, state in %s", TUAP_VERSION,
		 hub_endpoint(d->hub), sock, d->set.state_dir);
	return rc;
}

static void ctl_gone(void *ctx, const struct ctl_peer *peer)
{
	struct tuapd *d = ctx;

	engine_ctl_gone(d->engine, peer);
}

/* The group commit of a pass of the loop: what the engine wrote is made durable, then the
 * messages that follow from it go out. Failing to reach a tuap-ctl changes jobs (ctl_gone),
 * which may write and send again: a few rounds at most. */
static void let_out(struct tuapd *d)
{
	for (int round = 0; round < 4; round++) {
		engine_commit(d->engine);
		hub_flush(d->hub);
		control_flush(&d->ctl, ctl_gone, d);
		if (!engine_commit_pending(d->engine) && !d->ctl.n_held)
			break;
	}
}

static void serve(struct tuapd *d)
{
	while (!stopping) {
		zmq_pollitem_t items[HUB_NPOLL + 2 + MAX_SOURCES * PUSH_MAX_RUNS];
		long timeout = engine_tick(d->engine, engine_now_ms());
		int ht;
		struct ctl_peer peer;
		Tuap__Envelope *env = NULL;
		char domain[HUB_DOMAIN_SIZE];
		size_t n = HUB_NPOLL + 2;

		let_out(d); /* before the timers are read: what it sends starts some */
		ht = hub_timeout(d->hub);
		if (ht >= 0 && (timeout < 0 || ht < timeout))
			timeout = ht;
		hub_pollitems(d->hub, items);
		items[HUB_NPOLL] = (zmq_pollitem_t){d->ctl.sock, 0, ZMQ_POLLIN, 0};
		items[HUB_NPOLL + 1] = (zmq_pollitem_t){NULL, fleet_fd(d->vm), ZMQ_POLLIN, 0};
		for (size_t i = 0; i < d->n_sources; i++) {
			struct fd_source *s = &d->sources[i];
			long st = s->timeout(s->ctx);
			size_t max = s->max < PUSH_MAX_RUNS ? s->max : PUSH_MAX_RUNS;

			n += s->pollitems(s->ctx, items + n, max);
			if (st >= 0 && (timeout < 0 || st < timeout))
				timeout = st;
		}
		if (timeout < 0 || timeout > 1000)
			timeout = 1000; /* deadlines are checked at least every second */
		if (zmq_poll(items, (int)n, timeout) < 0 && errno != EINTR) {
			log_error("poll: %s", zmq_strerror(errno));
			break;
		}
		while (control_recv(&d->ctl, &peer, &env) != 0) {
			if (!env)
				continue;
			if (env->body_case == TUAP__ENVELOPE__BODY_CTL_REQUEST)
				engine_ctl_request(d->engine, &peer, env->ctl_request);
			else if (env->body_case == TUAP__ENVELOPE__BODY_UPLOAD_CHUNK)
				engine_ctl_upload(d->engine, &peer, env->upload_chunk);
			wire_free(env);
			env = NULL;
		}
		while (hub_recv(d->hub, domain, &env, 0) == 1) {
			engine_agent_message(d->engine, domain, env);
			wire_free(env);
		}
		for (size_t i = 0; i < d->n_sources; i++)
			d->sources[i].service(d->sources[i].ctx);
		if (items[HUB_NPOLL + 1].revents & ZMQ_POLLIN)
			fleet_dispatch(d->vm, d->engine);
	}
	let_out(d);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: tuapd [-d] [-c CONFIG] [--check]\n"
		     "  -c CONFIG  tuapd.conf (default /etc/tuap/tuapd.conf)\n"
		     "  -d         debug logging\n"
		     "  --check    read the configuration, report problems and exit\n");
}

/* Every agent connection is a file descriptor: take the hard limit (systemd's LimitNOFILE)
 * rather than the soft 1024 a shell gives. The hub keeps a quarter of it free (hub.c). */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the file descriptor limit: %s", strerror(errno));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_info("file descriptor limit %llu", (unsigned long long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"check", no_argument, NULL, 'k'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *conf = "/etc/tuap/tuapd.conf";
	struct sigaction sa = {.sa_handler = on_signal};
	struct tuapd d = {0};
	struct tuap_err err;
	int c, debug = 0, check = 0, rc = 1;

	while ((c = getopt_long(argc, argv, "c:dh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 'k':
			check = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	log_init("tuapd", debug);
	sd_log_init("tuapd");
	settings_defaults(&d.set);
	if (fs_exists(conf) && settings_load(conf, &d.set, &err) < 0)
		fatal("%s", err.msg);
	if (check) {
		printf("%s: ok\n", conf);
		return 0;
	}
	raise_fd_limit();
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (start(&d, &err) < 0)
		log_error("%s", err.msg);
	else {
		char status[256];

		/* bound and resumed: tuap-ctl and agents are served from here on */
		snprintf(status, sizeof(status), "agents on %s", hub_endpoint(d.hub));
		sd_ready(status);
		serve(&d);
		sd_stopping();
		log_info("stopping (signal %d); unfinished jobs resume at the next start",
			 (int)stopping);
		rc = 0;
	}
	push_free(d.push);
	fleet_free(d.vm);
	engine_free(d.engine);
	control_close(&d.ctl);
	hub_free(d.hub);
	if (d.zctx)
		zmq_ctx_term(d.zctx);
	return rc;
}
