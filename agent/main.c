/*
 * tuap-agent: runs on a site's host (a tuap VM or an existing host), connects out to tuapd over
 * CURVE (link.c), says Hello with what its journal knows, and runs the steps tuapd sends
 * (steps/) one at a time, streaming their events back; what each message from tuapd does is
 * decided in dispatch.c. One poll loop: the link's sockets, the running step's pipes, and the
 * timers of both.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "dispatch.h"
#include "fsutil.h"
#include "keys.h"
#include "log.h"

#define MAX_STEP_FDS 8

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	stopping = sig;
}

static int send_link(void *ctx, const Tuap__Envelope *env, struct tuap_err *err)
{
	return link_send(ctx, env, err);
}

static void serve(struct agent *a)
{
	while (!stopping) {
		zmq_pollitem_t items[LINK_NPOLL + MAX_STEP_FDS];
		struct pollfd fds[MAX_STEP_FDS];
		size_t nfds =
			a->run && !step_done(a->run) ? step_pollfds(a->run, fds, MAX_STEP_FDS) : 0;
		int timeout = link_timeout(a->link), st, n;
		Tuap__Envelope *env;

		if (a->run && !step_done(a->run) && (st = step_timeout_ms(a->run)) >= 0 &&
		    (timeout < 0 || st < timeout))
			timeout = st;
		if (timeout < 0 || timeout > 1000)
			timeout = 1000;
		link_pollitems(a->link, items);
		for (size_t i = 0; i < nfds; i++)
			items[LINK_NPOLL + i] =
				(zmq_pollitem_t){NULL, fds[i].fd, (short)fds[i].events, 0};
		n = zmq_poll(items, LINK_NPOLL + (int)nfds, timeout);
		if (n < 0 && errno != EINTR) {
			log_error("poll: %s", zmq_strerror(errno));
			break;
		}
		agent_service(a);
		while (link_recv(a->link, &env, 0) == 1) {
			agent_dispatch(a, env);
			wire_free(env);
		}
	}
}

static void usage(FILE *out)
{
	fprintf(out, "usage: tuap-agent --config FILE [--site-root DIR] [-d]\n"
		     "       tuap-agent --version\n"
		     "  --config FILE     agent config (endpoint, keys, domain): tuap-agent(8)\n"
		     "  --site-root DIR   where sites are extracted (default " STEP_SITE_ROOT ")\n"
		     "  -d                debug logging\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
					     {"site-root", required_argument, NULL, 's'},
					     {"version", no_argument, NULL, 'V'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *config = NULL, *site_root = STEP_SITE_ROOT;
	struct sigaction sa = {.sa_handler = on_signal};
	struct agent a = {0};
	struct tuap_err err;
	int c, debug = 0, rc = 1;

	while ((c = getopt_long(argc, argv, "c:s:dh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 's':
			site_root = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 'V':
			printf("tuap-agent %s\n", TUAP_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!config) {
		usage(stderr);
		return 2;
	}
	log_init("tuap-agent", debug);
	umask(022);
	if (agentconf_load(&a.conf, config, &err) < 0) {
		char why[sizeof(err.msg) + 4200];

		fatal("%s", err_str(&err, why, sizeof(why))); /* FILE:LINE: key: ... */
	}
	if (fs_mkdir_p(a.conf.state_dir, 0700, &err) < 0 || fs_mkdir_p(site_root, 0755, &err) < 0 ||
	    stepjournal_open(&a.journal, a.conf.state_dir, &err) < 0)
		fatal("%s", err.msg);
	a.env = (struct step_env){"/", a.conf.state_dir, site_root, a.journal, agent_emit, &a};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!(a.link = link_open(&a.conf, &err)))
		fatal("%s", err.msg);
	link_set_hello(a.link, agent_fill_hello, &a);
	a.send = send_link;
	a.send_ctx = a.link;
	/* the link holds its own copy of the keys */
	keys_wipe(a.conf.secret_key, sizeof(a.conf.secret_key));
	/* a make that outlived the previous agent: reattach, or learn how it ended (its events
	 * queue on the link until tuapd is reached) */
	if (step_recover(&a.env, &a.run, &err) < 0)
		log_warn("recovering the last make: %s", err.msg);
	else if (a.run)
		snprintf(a.job, sizeof(a.job), "%s", step_job(a.run));
	log_info("tuap-agent %s: serving %s", TUAP_VERSION, config);
	serve(&a);
	log_info("stopping (signal %d); a running make goes on under its supervisor",
		 (int)stopping);
	rc = 0;
	step_free(a.run);
	link_close(a.link);
	stepjournal_records_free(a.records, a.n_records);
	stepjournal_close(a.journal);
	return rc;
}
