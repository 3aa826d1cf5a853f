/*
 * tuap-fanout-sim: many simulated tuap agents in one process, for bench/fanout.
 *
 * Against a real tuapd (its control socket and agent port): enrols N domains over the control
 * socket (EnrollRequest, as tuap-ctl enroll), connects one CURVE DEALER per domain with the keys
 * tuapd made, says Hello like tuap-agent, provisions each as an existing host
 * (ProvisionRequest, as tuap-ctl provision --existing), and then, per round, sends a RunRequest
 * (tuap-ctl run DOMAIN make) for every domain at once and times each job to its final event.
 * The jobs go over one control connection per CTL_GROUP domains, as many tuap-ctl would (one
 * connection for all would meet tuapd's send high-water mark of one connection, 10000 events,
 * and events past it are dropped; one per domain would cost two more fds per agent).
 * The agents answer Plan with an ack and a make StepRequest with STARTED, one LOG line and DONE,
 * with sequence numbers and acks as common/session.h says; the wire code is tuap's own
 * (common/wire.c).
 *
 * Baseline, interleaved round by round: a forked raw server (a ROUTER with CURVE, no tuap code)
 * and N more CURVE DEALERs; per round the same control-then-fan-out shape: one "go" per peer on
 * a control socket, then the server sends the same number and sizes of messages tuapd sent to an
 * agent, the peer answers with the same number and sizes the agent sent, and the server reports
 * the peer done.
 *
 *   tuap-fanout-sim --ctl SOCK --agents N [--rounds R] [--tuapd-pid PID] [--timeout S]
 *
 * Prints one JSON object (the setup times and every round's figures) on stdout, progress on
 * stderr. Exit 0, 1 on error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "agentconf.h"
#include "buf.h"
#include "session.h"
#include "wire.h"

#define MAX_SIZES  16
#define SID_LEN	   16
#define EV_BATCH   256
#define CTL_MAGIC  0x474f /* "GO" */
#define RAW_HELLO  0x48
#define RAW_READY  0xff
#define RAW_ANSWER 0x41
#define MAX_AGENTS 20000
#define CTL_GROUP  256 /* domains per control connection: ~10 events per job stay far below HWM */

enum kind { K_TUAP, K_RAW };

struct agent {
	enum kind kind;
	int idx;
	void *sock;
	void *ctl; /* tuap: the control connection of this domain's jobs (shared by CTL_GROUP) */
	char domain[254];
	uint64_t rx, tx;
	int64_t done_at, sent_at;
	int raw_down; /* raw: down messages received this round */
	int recording;
};

static struct {
	void *ctx, *ctl, *rawctl;
	struct agent *a; /* [0, n): tuap; [n, 2n): raw */
	int n, epfd;
	int64_t deadline, timeout_ms; /* deadline: of the phase being waited for */
	/* the sizes an agent saw in a tuap round, replayed in the raw rounds */
	size_t down[MAX_SIZES], up[MAX_SIZES];
	int ndown, nup;
	int finals, errors;
	uint64_t ctlseq;
	pid_t raw_pid;
	char raw_ep[128], raw_ctl_ep[300], raw_pub[41], raw_sec[41];
} g;

static void die(const char *fmt, ...) TUAP_PRINTF(1, 2);

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "tuap-fanout-sim: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	if (g.raw_pid > 0)
		kill(g.raw_pid, SIGTERM);
	exit(1);
}

/* Each phase (enrolment, a pump) has --timeout seconds of its own. */
static void phase_deadline(void)
{
	g.deadline = session_now() + g.timeout_ms;
}

static void check_deadline(const char *what, int done, int want)
{
	if (session_now() > g.deadline)
		die("timeout (%lld s) waiting for %s: %d of %d done",
		    (long long)g.timeout_ms / 1000, what, done, want);
}

static int setopt(void *s, int opt, int v)
{
	return zmq_setsockopt(s, opt, &v, sizeof(v));
}

static void send_buf(void *sock, const struct buf *b)
{
	if (zmq_send(sock, b->s, b->len, 0) < 0)
		die("send: %s", zmq_strerror(zmq_errno()));
}

/* ---- the control socket ---------------------------------------------------------------------- */

static void ctl_send(void *sock, Tuap__CtlRequest *req)
{
	Tuap__Envelope env;
	struct buf b = BUF_INIT;
	struct tuap_err err;

	wire_init(&env);
	env.seq = ++g.ctlseq;
	env.body_case = TUAP__ENVELOPE__BODY_CTL_REQUEST;
	env.ctl_request = req;
	if (wire_encode(&env, &b, &err) < 0)
		die("ctl request: %s", err.msg);
	send_buf(sock, &b);
	buf_free(&b);
}

/* Reads one ctl event (blocking up to the deadline); caller frees with wire_free. */
static Tuap__Envelope *ctl_recv(int timeout_ms)
{
	zmq_pollitem_t it = {g.ctl, 0, ZMQ_POLLIN, 0};
	zmq_msg_t m;
	Tuap__Envelope *env = NULL;
	struct tuap_err err;

	if (zmq_poll(&it, 1, timeout_ms) <= 0)
		return NULL;
	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, g.ctl, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&m);
		return NULL;
	}
	if (wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), WIRE_TO_CTL, &env, &err) != WIRE_OK)
		die("ctl event: %s", err.msg);
	zmq_msg_close(&m);
	return env;
}

static void enroll(struct agent *a, struct agentconf *ac)
{
	Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
	Tuap__EnrollRequest er = TUAP__ENROLL_REQUEST__INIT;
	struct buf text = BUF_INIT;
	struct tuap_err err;

	er.domain = a->domain;
	req.req_case = TUAP__CTL_REQUEST__REQ_ENROLL;
	req.enroll = &er;
	ctl_send(g.ctl, &req);
	for (;;) {
		Tuap__Envelope *env = ctl_recv(1000);
		Tuap__CtlEvent *ev;

		check_deadline("enrolment", a->idx, g.n);
		if (!env)
			continue;
		ev = env->ctl_event;
		if (ev && ev->ev_case == TUAP__CTL_EVENT__EV_TEXT)
			for (size_t i = 0; i < ev->text->n_lines; i++)
				buf_addf(&text, "%s\n", ev->text->lines[i]);
		if (ev && ev->ev_case == TUAP__CTL_EVENT__EV_ERROR)
			die("enroll %s: %s", a->domain, ev->error->message);
		if (ev && ev->final) {
			wire_free(env);
			break;
		}
		wire_free(env);
	}
	if (agentconf_parse(ac, "enroll", text.s ? text.s : "", text.len, &err) < 0)
		die("enroll %s: %s", a->domain, err.msg);
	buf_free(&text);
}

static void *ctl_socket(const char *ep)
{
	void *s = zmq_socket(g.ctx, ZMQ_DEALER);

	if (!s || setopt(s, ZMQ_LINGER, 0) || setopt(s, ZMQ_SNDHWM, 0) ||
	    setopt(s, ZMQ_RCVHWM, 0) || zmq_connect(s, ep))
		die("ctl socket %s: %s", ep, zmq_strerror(zmq_errno()));
	return s;
}

/* ---- agents ---------------------------------------------------------------------------------- */

enum { W_SOCK, W_CTL, W_MAINCTL, W_RAWCTL };

static void watch(void *sock, uint64_t idx, int what)
{
	int fd;
	size_t len = sizeof(fd);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = idx * 4 + (uint64_t)what};

	if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) < 0 ||
	    epoll_ctl(g.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll: %s", strerror(errno));
}

static void *dealer(const char *server_pub, const char *pub, const char *sec, const char *ep)
{
	void *s = zmq_socket(g.ctx, ZMQ_DEALER);

	if (!s || zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_pub, 40) ||
	    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40) ||
	    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40) || setopt(s, ZMQ_LINGER, 0) ||
	    setopt(s, ZMQ_SNDHWM, 1000) || setopt(s, ZMQ_RCVHWM, 1000) || zmq_connect(s, ep))
		die("dealer: %s", zmq_strerror(zmq_errno()));
	return s;
}

static void agent_send(struct agent *a, Tuap__Envelope *env)
{
	struct buf b = BUF_INIT;
	struct tuap_err err;

	env->version = WIRE_VERSION;
	env->has_ack = 1;
	env->ack = a->rx;
	if (wire_encode(env, &b, &err) < 0)
		die("agent %s: encode: %s", a->domain, err.msg);
	if (a->recording && g.nup < MAX_SIZES)
		g.up[g.nup++] = b.len;
	send_buf(a->sock, &b);
	buf_free(&b);
}

static void agent_hello(struct agent *a)
{
	Tuap__Envelope env;
	Tuap__Hello hl = TUAP__HELLO__INIT;
	uint8_t sid[SID_LEN];

	for (size_t i = 0; i < sizeof(sid); i++)
		sid[i] = (uint8_t)random();
	wire_init(&env);
	hl.agent_version = "0.1.0-fanout-sim";
	hl.session_id.data = sid;
	hl.session_id.len = sizeof(sid);
	hl.hostname = a->domain;
	hl.os_id = "debian";
	hl.os_version = "12";
	hl.pkg_manager = "apt";
	hl.has_last_seq_seen = hl.has_next_seq = hl.has_min_version = 1;
	hl.last_seq_seen = 0;
	hl.next_seq = 1;
	hl.min_version = WIRE_MIN_VERSION;
	env.body_case = TUAP__ENVELOPE__BODY_HELLO;
	env.hello = &hl;
	agent_send(a, &env);
}

static void step_event(struct agent *a, const char *job, Tuap__Step step, Tuap__StepState st,
		       const char *line)
{
	Tuap__Envelope env;
	Tuap__StepEvent se = TUAP__STEP_EVENT__INIT;
	char *lines[1] = {(char *)line};

	wire_init(&env);
	env.seq = ++a->tx;
	env.job_id = (char *)job;
	se.step = step;
	se.state = st;
	if (line) {
		se.lines = lines;
		se.n_lines = 1;
	}
	if (st == TUAP__STEP_STATE__STATE_DONE) {
		se.has_exit_code = 1;
		se.exit_code = 0;
		se.message = "make exited with code 0";
	}
	env.body_case = TUAP__ENVELOPE__BODY_STEP_EVENT;
	env.step_event = &se;
	agent_send(a, &env);
}

/* One message from tuapd to a simulated agent. */
static void tuap_take(struct agent *a, const void *data, size_t len)
{
	Tuap__Envelope *env = NULL, ack;
	struct tuap_err err;

	if (wire_decode(data, len, WIRE_TO_AGENT, &env, &err) != WIRE_OK)
		die("agent %s: tuapd sent what the agent rejects: %s", a->domain, err.msg);
	if (env->body_case == TUAP__ENVELOPE__BODY_ERROR) {
		fprintf(stderr, "agent %s: error from tuapd: %s\n", a->domain,
			env->error->message ? env->error->message : "");
		g.errors++;
	}
	if (env->body_case == TUAP__ENVELOPE__BODY__NOT_SET || !env->seq)
		goto out;
	if (a->recording && g.ndown < MAX_SIZES)
		g.down[g.ndown++] = len;
	if (env->seq != a->rx + 1) { /* a resend of what we have (or a gap): say what we have */
		wire_init(&ack);
		agent_send(a, &ack);
		goto out;
	}
	a->rx = env->seq;
	if (env->body_case == TUAP__ENVELOPE__BODY_STEP_REQUEST) {
		Tuap__Step st = env->step_request->step;

		step_event(a, env->job_id, st, TUAP__STEP_STATE__STATE_STARTED, NULL);
		if (st == TUAP__STEP__STEP_MAKE)
			step_event(a, env->job_id, st, TUAP__STEP_STATE__STATE_LOG,
				   "make: Nothing to be done for 'all'.");
		step_event(a, env->job_id, st, TUAP__STEP_STATE__STATE_DONE, NULL);
		a->recording = 0;
	} else {
		wire_init(&ack); /* Plan, Cancel: the agent journals it and acks */
		agent_send(a, &ack);
	}
out:
	wire_free(env);
}

/* One message from the raw server: RAW_READY (the hello is in), or a round's message whose first
 * byte says how many more follow; after the last the peer answers with its messages, each
 * tagged with its index. */
static void raw_take(struct agent *a, const uint8_t *data, size_t len)
{
	uint8_t buf[4096] = {RAW_ANSWER};
	uint32_t idx = (uint32_t)a->idx;

	if (len == 1 && data[0] == RAW_READY) {
		g.finals++;
		return;
	}
	if (len < 1 || data[0] != 0)
		return;
	memcpy(buf + 1, &idx, 4);
	for (int i = 0; i < g.nup; i++)
		if (zmq_send(a->sock, buf, g.up[i] < sizeof(buf) ? g.up[i] : sizeof(buf), 0) < 0)
			die("raw send: %s", zmq_strerror(zmq_errno()));
}

static void drain(struct agent *a)
{
	for (;;) {
		int ev;
		size_t len = sizeof(ev);
		zmq_msg_t m;

		if (zmq_getsockopt(a->sock, ZMQ_EVENTS, &ev, &len) < 0 || !(ev & ZMQ_POLLIN))
			return;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, a->sock, ZMQ_DONTWAIT) >= 0) {
			if (a->kind == K_TUAP)
				tuap_take(a, zmq_msg_data(&m), zmq_msg_size(&m));
			else
				raw_take(a, zmq_msg_data(&m), zmq_msg_size(&m));
		}
		zmq_msg_close(&m);
	}
}

static struct agent *by_domain(const char *domain)
{
	int i;

	/* domains are a%05d.fanout.test, in index order */
	if (!domain || domain[0] != 'a')
		return NULL;
	i = atoi(domain + 1);
	return i >= 0 && i < g.n && strcmp(g.a[i].domain, domain) == 0 ? &g.a[i] : NULL;
}

/* A ctl event: the final one of a job marks its domain done. */
static void ctl_take(Tuap__Envelope *env)
{
	Tuap__CtlEvent *ev = env->ctl_event;
	struct agent *a;

	if (!ev || !ev->final)
		return;
	a = by_domain(ev->domain);
	if (!a) {
		fprintf(stderr, "final event without a known domain (%s)\n",
			ev->ev_case == TUAP__CTL_EVENT__EV_ERROR ? ev->error->message : "?");
		g.errors++;
		g.finals++;
		return;
	}
	if (ev->exit_code != 0) {
		fprintf(stderr, "%s: job ended with exit code %d\n", a->domain, ev->exit_code);
		g.errors++;
	}
	if (!a->done_at) {
		a->done_at = session_now();
		g.finals++;
	}
}

static void rawctl_take(const uint8_t *data, size_t len)
{
	uint32_t i;

	if (len != 4)
		return;
	memcpy(&i, data, 4);
	if ((int)i < g.n && !g.a[g.n + i].done_at) {
		g.a[g.n + i].done_at = session_now();
		g.finals++;
	}
}

static void drain_ctl(void *sock, int raw)
{
	for (;;) {
		int ev;
		size_t len = sizeof(ev);
		zmq_msg_t m;

		if (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &len) < 0 || !(ev & ZMQ_POLLIN))
			return;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) >= 0) {
			if (raw) {
				rawctl_take(zmq_msg_data(&m), zmq_msg_size(&m));
			} else {
				Tuap__Envelope *env = NULL;
				struct tuap_err err;

				if (wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), WIRE_TO_CTL,
						&env, &err) != WIRE_OK)
					die("ctl event: %s", err.msg);
				ctl_take(env);
				wire_free(env);
			}
		}
		zmq_msg_close(&m);
	}
}

/* Serves every socket until `want` finals came in (or the deadline). */
static void pump(int want, const char *what)
{
	struct epoll_event evs[EV_BATCH];

	phase_deadline();
	drain_ctl(g.ctl, 0);
	if (g.rawctl)
		drain_ctl(g.rawctl, 1);
	for (int i = 0; i < 2 * g.n; i++) {
		if (g.a[i].sock)
			drain(&g.a[i]);
		if (g.a[i].ctl && i % CTL_GROUP == 0)
			drain_ctl(g.a[i].ctl, 0);
	}
	while (g.finals < want) {
		int k = epoll_wait(g.epfd, evs, EV_BATCH, 100);

		check_deadline(what, g.finals, want);
		for (int i = 0; i < k; i++) {
			struct agent *a = &g.a[evs[i].data.u64 / 4];

			switch (evs[i].data.u64 % 4) {
			case W_SOCK:
				drain(a);
				break;
			case W_CTL:
				drain_ctl(a->ctl, 0);
				break;
			case W_MAINCTL:
				drain_ctl(g.ctl, 0);
				break;
			default:
				drain_ctl(g.rawctl, 1);
				break;
			}
		}
	}
}

/* ---- the raw server (child process) ---------------------------------------------------------- */

static void raw_server(void)
{
	void *ctx = zmq_ctx_new(), *r = zmq_socket(ctx, ZMQ_ROUTER),
	     *c = zmq_socket(ctx, ZMQ_ROUTER);
	uint8_t(*route)[256] = calloc(MAX_AGENTS, 256);
	size_t *rlen = calloc(MAX_AGENTS, sizeof(*rlen));
	int *got = calloc(MAX_AGENTS, sizeof(*got)), *want = calloc(MAX_AGENTS, sizeof(*want));
	uint8_t ctlid[256], buf[65536] = {0};
	size_t ctlid_len = 0;

	if (!route || !rlen || !got || !want || setopt(r, ZMQ_CURVE_SERVER, 1) ||
	    zmq_setsockopt(r, ZMQ_CURVE_SECRETKEY, g.raw_sec, 40) || setopt(r, ZMQ_LINGER, 0) ||
	    setopt(r, ZMQ_SNDHWM, 10000) || setopt(r, ZMQ_RCVHWM, 10000) ||
	    setopt(r, ZMQ_ROUTER_MANDATORY, 1) || zmq_bind(r, g.raw_ep) ||
	    /* unbounded as the simulator's end is: a ROUTER past its HWM drops what it sends, and
	     * a round's N "done" reports come in one burst (4000 lost 103 with the default 1000) */
	    setopt(c, ZMQ_LINGER, 0) || setopt(c, ZMQ_SNDHWM, 0) || setopt(c, ZMQ_RCVHWM, 0) ||
	    zmq_bind(c, g.raw_ctl_ep))
		die("raw server: %s", zmq_strerror(zmq_errno()));
	for (;;) {
		zmq_pollitem_t it[2] = {{r, 0, ZMQ_POLLIN, 0}, {c, 0, ZMQ_POLLIN, 0}};

		if (zmq_poll(it, 2, -1) < 0 && zmq_errno() != EINTR)
			_exit(1);
		for (int k = 0; k < 256; k++) { /* peers: hello (index) or one of the answers */
			uint8_t id[256];
			int n = zmq_recv(r, id, sizeof(id), ZMQ_DONTWAIT), m;
			uint32_t i;

			if (n < 0)
				break;
			m = zmq_recv(r, buf, sizeof(buf), 0);
			if (m == 5 && buf[0] == RAW_HELLO) {
				memcpy(&i, buf + 1, 4);
				if (i < MAX_AGENTS) {
					uint8_t ready = RAW_READY;

					memcpy(route[i], id, (size_t)n);
					rlen[i] = (size_t)n;
					zmq_send(r, id, (size_t)n, ZMQ_SNDMORE);
					zmq_send(r, &ready, 1, 0);
				}
				continue;
			}
			if (m < 5)
				continue;
			memcpy(&i, buf + 1, 4);
			if (i < MAX_AGENTS && ++got[i] == want[i] &&
			    zmq_send(c, ctlid, ctlid_len, ZMQ_SNDMORE) >= 0)
				zmq_send(c, &i, 4, 0);
		}
		for (int k = 0; k < 256; k++) { /* ctl: go i ndown nup sizes... */
			uint8_t id[256];
			uint32_t go[3 + MAX_SIZES];
			int n = zmq_recv(c, id, sizeof(id), ZMQ_DONTWAIT), m;

			if (n < 0)
				break;
			memcpy(ctlid, id, (size_t)n);
			ctlid_len = (size_t)n;
			m = zmq_recv(c, go, sizeof(go), 0);
			if (m < 12 || go[0] >= MAX_AGENTS || go[1] > MAX_SIZES)
				continue;
			got[go[0]] = 0;
			want[go[0]] = (int)go[2];
			for (uint32_t d = 0; d < go[1]; d++) {
				size_t sz = go[3 + d] < sizeof(buf) ? go[3 + d] : sizeof(buf);

				buf[0] = (uint8_t)(go[1] - 1 - d); /* how many more follow */
				zmq_send(r, route[go[0]], rlen[go[0]], ZMQ_SNDMORE);
				zmq_send(r, buf, sz, 0);
			}
		}
	}
}

/* ---- measuring ------------------------------------------------------------------------------- */

struct proc_use {
	double cpu_s;
	long rss_kib, hwm_kib;
};

/* CPU time of every thread of pid (their schedstat, in ns: clock ticks are too coarse for a
 * round of the raw server), its RSS and peak RSS. */
static void proc_use(pid_t pid, struct proc_use *u)
{
	char path[300], line[512];
	FILE *f;
	DIR *d;
	struct dirent *de;

	memset(u, 0, sizeof(*u));
	if (pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if ((d = opendir(path))) {
		while ((de = readdir(d))) {
			unsigned long long ns;

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid,
				 de->d_name);
			if ((f = fopen(path, "r"))) {
				if (fscanf(f, "%llu", &ns) == 1)
					u->cpu_s += (double)ns / 1e9;
				fclose(f);
			}
		}
		closedir(d);
	}
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r"))) {
		while (fgets(line, sizeof(line), f)) {
			sscanf(line, "VmRSS: %ld", &u->rss_kib);
			sscanf(line, "VmHWM: %ld", &u->hwm_kib);
		}
		fclose(f);
	}
}

static int cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

	return a < b ? -1 : a > b;
}

/* Prints the round's figures as a JSON object's members. */
static void report_round(FILE *out, int base, int64_t t0, const struct proc_use *u0,
			 const struct proc_use *u1)
{
	int64_t *lat = calloc((size_t)g.n, sizeof(*lat));
	int64_t last = 0;

	if (!lat)
		die("out of memory");
	for (int i = 0; i < g.n; i++) {
		lat[i] = g.a[base + i].done_at - t0;
		last = lat[i] > last ? lat[i] : last;
	}
	qsort(lat, (size_t)g.n, sizeof(*lat), cmp_i64);
	fprintf(out,
		"{\"all_ms\": %lld, \"p50_ms\": %lld, \"p99_ms\": %lld, \"min_ms\": %lld, "
		"\"cpu_s\": %.4f, \"rss_kib\": %ld, \"hwm_kib\": %ld}",
		(long long)last, (long long)lat[(g.n - 1) / 2],
		(long long)lat[(g.n * 99 - 1) / 100], (long long)lat[0], u1->cpu_s - u0->cpu_s,
		u1->rss_kib, u1->hwm_kib);
	free(lat);
}

static void tuap_round(FILE *out, pid_t tuapd, int record)
{
	struct proc_use u0, u1;
	int64_t t0;

	g.finals = 0;
	for (int i = 0; i < g.n; i++)
		g.a[i].done_at = 0;
	if (record) {
		g.ndown = g.nup = 0;
		g.a[0].recording = 1;
	}
	proc_use(tuapd, &u0);
	t0 = session_now();
	for (int i = 0; i < g.n; i++) {
		Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
		Tuap__RunRequest rr = TUAP__RUN_REQUEST__INIT;

		rr.domain = g.a[i].domain;
		req.req_case = TUAP__CTL_REQUEST__REQ_RUN;
		req.run = &rr;
		ctl_send(g.a[i].ctl, &req);
	}
	pump(g.n, "the run make jobs");
	proc_use(tuapd, &u1);
	report_round(out, 0, t0, &u0, &u1);
}

static void raw_round(FILE *out)
{
	struct proc_use u0, u1;
	int64_t t0;

	g.finals = 0;
	for (int i = 0; i < g.n; i++)
		g.a[g.n + i].done_at = 0;
	proc_use(g.raw_pid, &u0);
	t0 = session_now();
	for (int i = 0; i < g.n; i++) {
		uint32_t go[3 + MAX_SIZES];

		go[0] = (uint32_t)i;
		go[1] = (uint32_t)g.ndown;
		go[2] = (uint32_t)g.nup;
		for (int d = 0; d < g.ndown; d++)
			go[3 + d] = (uint32_t)g.down[d];
		if (zmq_send(g.rawctl, go, (size_t)(3 + g.ndown) * 4, 0) < 0)
			die("raw ctl: %s", zmq_strerror(zmq_errno()));
	}
	pump(g.n, "the raw round");
	proc_use(g.raw_pid, &u1);
	report_round(out, g.n, t0, &u0, &u1);
}

static void provision_all(void)
{
	static const char conf[] = "# bench/fanout: an existing host\n"
				   "ips=198.51.100.2/24\ngateway=198.51.100.1\n";

	g.finals = 0;
	for (int i = 0; i < g.n; i++) {
		Tuap__CtlRequest req = TUAP__CTL_REQUEST__INIT;
		Tuap__ProvisionRequest pr = TUAP__PROVISION_REQUEST__INIT;

		g.a[i].done_at = 0;
		pr.domain = g.a[i].domain;
		pr.conf_path = "provision.conf";
		pr.conf_text.data = (uint8_t *)conf;
		pr.conf_text.len = sizeof(conf) - 1;
		pr.has_existing = pr.existing = 1;
		req.req_case = TUAP__CTL_REQUEST__REQ_PROVISION;
		req.provision = &pr;
		ctl_send(g.a[i].ctl, &req);
	}
	pump(g.n, "the first provision of every domain");
}

static void usage(void)
{
	fprintf(stderr, "usage: tuap-fanout-sim --ctl SOCK --agents N [--rounds R] "
			"[--tuapd-pid PID] [--timeout S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *sock = NULL;
	int rounds = 3, timeout_s = 600;
	pid_t tuapd = 0;
	char ep[300], tmpl[] = "/tmp/tuap-fanout.XXXXXX";
	struct rlimit rl;
	int64_t t;
	FILE *out = stdout;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--ctl") && i + 1 < argc)
			sock = argv[++i];
		else if (!strcmp(argv[i], "--agents") && i + 1 < argc)
			g.n = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--tuapd-pid") && i + 1 < argc)
			tuapd = (pid_t)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout_s = atoi(argv[++i]);
		else
			usage();
	}
	if (!sock || g.n < 1 || g.n > MAX_AGENTS || rounds < 1)
		usage();
	/* a socket is a mailbox fd and a connection fd: tuap's and the raw peers' */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)(4 * g.n + 256))
		die("file descriptor limit %lu is below 4*agents+256: raise it (ulimit -n)",
		    (unsigned long)rl.rlim_cur);
	g.timeout_ms = (int64_t)timeout_s * 1000;
	phase_deadline();

	/* the raw server: its own process, as tuapd is */
	if (!mkdtemp(tmpl))
		die("mkdtemp: %s", strerror(errno));
	snprintf(g.raw_ctl_ep, sizeof(g.raw_ctl_ep), "ipc://%s/raw.sock", tmpl);
	snprintf(g.raw_ep, sizeof(g.raw_ep), "tcp://127.0.0.1:%d", 20000 + (int)(getpid() % 20000));
	if (zmq_curve_keypair(g.raw_pub, g.raw_sec) != 0)
		die("no CURVE in this libzmq");
	g.raw_pid = fork();
	if (g.raw_pid < 0)
		die("fork: %s", strerror(errno));
	if (g.raw_pid == 0) {
		raw_server();
		_exit(0);
	}

	g.ctx = zmq_ctx_new();
	zmq_ctx_set(g.ctx, ZMQ_MAX_SOCKETS, 2 * g.n + g.n / CTL_GROUP + 64);
	g.epfd = epoll_create1(EPOLL_CLOEXEC);
	g.a = calloc((size_t)(2 * g.n), sizeof(*g.a));
	if (!g.ctx || g.epfd < 0 || !g.a)
		die("setup failed");
	snprintf(ep, sizeof(ep), "ipc://%s", sock);
	g.ctl = ctl_socket(ep);
	watch(g.ctl, 0, W_MAINCTL);

	fprintf(out, "{\"agents\": %d", g.n);
	t = session_now();
	for (int i = 0; i < g.n; i++) {
		struct agent *a = &g.a[i];
		struct agentconf ac;

		a->kind = K_TUAP;
		a->idx = i;
		snprintf(a->domain, sizeof(a->domain), "a%05d.fanout.test", i);
		enroll(a, &ac);
		a->sock = dealer(ac.server_public_key, ac.public_key, ac.secret_key, ac.endpoint);
		agentconf_wipe(&ac);
		watch(a->sock, (uint64_t)i, W_SOCK);
		if (i % CTL_GROUP == 0) {
			a->ctl = ctl_socket(ep);
			watch(a->ctl, (uint64_t)i, W_CTL);
		} else {
			a->ctl = g.a[i - i % CTL_GROUP].ctl;
		}
		agent_hello(a); /* queued until the connection is up: the first message on it */
	}
	fprintf(out, ", \"enroll_connect_ms\": %lld", (long long)(session_now() - t));
	fprintf(stderr, "tuap-fanout-sim: %d agents enrolled and connecting\n", g.n);
	t = session_now();
	provision_all();
	fprintf(out, ", \"provision_ms\": %lld", (long long)(session_now() - t));
	fprintf(stderr, "tuap-fanout-sim: %d existing hosts provisioned\n", g.n);

	g.rawctl = zmq_socket(g.ctx, ZMQ_DEALER);
	if (!g.rawctl || setopt(g.rawctl, ZMQ_LINGER, 0) || setopt(g.rawctl, ZMQ_SNDHWM, 0) ||
	    setopt(g.rawctl, ZMQ_RCVHWM, 0) || zmq_connect(g.rawctl, g.raw_ctl_ep))
		die("raw ctl: %s", zmq_strerror(zmq_errno()));
	watch(g.rawctl, 0, W_RAWCTL);
	for (int i = 0; i < g.n; i++) {
		struct agent *a = &g.a[g.n + i];
		char pub[41], sec[41];
		uint8_t hello[5] = {RAW_HELLO};
		uint32_t idx = (uint32_t)i;

		a->kind = K_RAW;
		a->idx = i;
		snprintf(a->domain, sizeof(a->domain), "raw%05d", i);
		zmq_curve_keypair(pub, sec);
		a->sock = dealer(g.raw_pub, pub, sec, g.raw_ep);
		watch(a->sock, (uint64_t)(g.n + i), W_SOCK);
		memcpy(hello + 1, &idx, 4);
		zmq_send(a->sock, hello, sizeof(hello), 0);
	}
	g.finals = 0;
	pump(g.n, "the raw peers' connections");
	fprintf(out, ", \"rounds\": [");
	for (int r = 0; r < rounds; r++) {
		fprintf(out, "%s{\"tuap\": ", r ? ", " : "");
		tuap_round(out, tuapd, r == 0);
		if (r == 0 && (g.ndown == 0 || g.nup == 0))
			die("no messages recorded for agent 0");
		fprintf(out, ", \"raw\": ");
		raw_round(out);
		fprintf(out, "}");
		fprintf(stderr, "tuap-fanout-sim: round %d of %d done\n", r + 1, rounds);
	}
	fprintf(out, "], \"down_sizes\": [");
	for (int i = 0; i < g.ndown; i++)
		fprintf(out, "%s%zu", i ? ", " : "", g.down[i]);
	fprintf(out, "], \"up_sizes\": [");
	for (int i = 0; i < g.nup; i++)
		fprintf(out, "%s%zu", i ? ", " : "", g.up[i]);
	{
		struct proc_use u;

		proc_use(tuapd, &u);
		fprintf(out, "], \"tuapd_rss_kib\": %ld, \"tuapd_hwm_kib\": %ld", u.rss_kib,
			u.hwm_kib);
		proc_use(g.raw_pid, &u);
		fprintf(out, ", \"raw_rss_kib\": %ld, \"raw_hwm_kib\": %ld", u.rss_kib, u.hwm_kib);
	}
	fprintf(out, ", \"errors\": %d}\n", g.errors);
	kill(g.raw_pid, SIGTERM);
	waitpid(g.raw_pid, NULL, 0);
	{
		char path[400];

		snprintf(path, sizeof(path), "%s/raw.sock", tmpl);
		unlink(path);
		rmdir(tmpl);
	}
	return g.errors ? 1 : 0;
}
