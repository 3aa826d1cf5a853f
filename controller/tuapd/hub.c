/*
 * The agent socket of tuapd: CURVE ROUTER, ZAP handler, per-domain sessions; see hub.h.
 * Read top-down: peers and jobs, rejections, sending, receiving, the public API. The ZAP
 * handler is controller/zap.c.
 */
#include "hub.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "hash.h"
#include "log.h"
#include "session.h"
#include "valid.h"
#include "zap.h"
#include "zmon.h"

#define JOB_ID_SIZE 129
/* The ring of jobs must hold every job still running: one per domain, and the recent ones. */
#define MAX_JOBS (2 * HUB_MAX_DOMAINS)
/* Open-addressing indexes of the peers by domain and by key, at most half full. */
#define PEER_IDX    (2 * HUB_MAX_DOMAINS)
#define JOB_BUCKETS MAX_JOBS
#define ROUTE_MAX   255
#define DENY_LOG_MS 60000
#define BATCH	    64 /* ZAP requests / monitor events served per call */
/* A connection that has not finished its CURVE handshake by then is cut (an agent needs
 * milliseconds, a TCG guest under load well under a second). */
#define HUB_HANDSHAKE_MS 5000
/* ZMQ_ZAP_ENFORCE_DOMAIN is a draft option in libzmq 4.3; without it a CURVE server lets every
 * client in when no ZAP handler is bound. The hub binds its handler first anyway. */
#define OPT_ZAP_ENFORCE_DOMAIN 93

struct peer {
	char domain[HUB_DOMAIN_SIZE];
	char pubkey[KEYS_Z85_SIZE];
	struct session s; /* s.id_len == 0: no Hello yet */
	uint8_t route[ROUTE_MAX];
	size_t route_len;
	int route_ok;
	int64_t last_seen; /* monotonic ms */
	int64_t last_seen_unix;
	char agent_version[64];
	char address[64];
	uint64_t rejected;
};

struct job {
	char id[JOB_ID_SIZE];
	char domain[HUB_DOMAIN_SIZE];
	uint32_t next; /* the next job in its hash bucket: ring slot + 1; 0 ends */
};

struct hub {
	void *ctx, *router, *mon;
	struct zap *zap;
	char endpoint[256];
	struct peer **peers;
	size_t npeers, cap;
	/* every message is looked up by its domain, every handshake by its key, every job
	 * message by its job id: hashed, so that a thousand agents cost no more per message
	 * than one */
	struct peer **by_domain, **by_key; /* PEER_IDX slots */
	struct job *jobs;		   /* a ring of the last MAX_JOBS jobs */
	uint32_t *job_bucket;		   /* JOB_BUCKETS heads: ring slot + 1; 0: empty */
	size_t njobs, jobs_next;
	size_t resend_max_msgs, resend_max_bytes;
	size_t max_message; /* larger messages are dropped (and logged) here */
	struct hub_stats stats;
	char last_reject[700]; /* last rejection logged, to keep the log short */
	int64_t last_reject_at;
	unsigned reject_quiet;
	bool deferred;	   /* hub_defer: sequenced messages wait for hub_flush */
	bool due;	   /* some wait */
	bool paused;	   /* not accepting connections: file descriptors are short */
	long fd_room;	   /* fds that may open before the pause; counted by guard_fds */
	long fd_accepted;  /* connections accepted since */
	unsigned hs_quiet; /* handshake failures not logged since hs_logged_at */
	int64_t hs_logged_at;
};

/* ---- peers and jobs ------------------------------------------------------------------------ */

static size_t peer_slot(const char *s)
{
	return hash_fnv1a(s, strlen(s)) & (PEER_IDX - 1);
}

/* The peer whose field at offset off (domain or pubkey) is s, in index idx. */
static struct peer *idx_get(struct peer *const *idx, size_t off, const char *s)
{
	for (size_t i = peer_slot(s); idx[i]; i = (i + 1) & (PEER_IDX - 1))
		if (strcmp((const char *)idx[i] + off, s) == 0)
			return idx[i];
	return NULL;
}

static void idx_put(struct peer **idx, size_t off, struct peer *p)
{
	size_t i = peer_slot((const char *)p + off);

	while (idx[i])
		i = (i + 1) & (PEER_IDX - 1);
	idx[i] = p;
}

static void idx_add(struct hub *h, struct peer *p)
{
	idx_put(h->by_domain, offsetof(struct peer, domain), p);
	idx_put(h->by_key, offsetof(struct peer, pubkey), p);
}

/* After a removal (a revoke: rare), the indexes are made again. */
static void idx_rebuild(struct hub *h)
{
	memset(h->by_domain, 0, PEER_IDX * sizeof(*h->by_domain));
	memset(h->by_key, 0, PEER_IDX * sizeof(*h->by_key));
	for (size_t i = 0; i < h->npeers; i++)
		idx_add(h, h->peers[i]);
}

static struct peer *find_domain(const struct hub *h, const char *domain)
{
	return idx_get(h->by_domain, offsetof(struct peer, domain), domain);
}

static struct peer *find_key(const struct hub *h, const char *key)
{
	return idx_get(h->by_key, offsetof(struct peer, pubkey), key);
}

static const char *lookup_key(void *arg, const char *key)
{
	struct peer *p = find_key(arg, key);

	return p ? p->domain : NULL;
}

static uint32_t *job_head(const struct hub *h, const char *job_id)
{
	return &h->job_bucket[hash_fnv1a(job_id, strlen(job_id)) & (JOB_BUCKETS - 1)];
}

static const char *job_owner(const struct hub *h, const char *job_id)
{
	for (uint32_t k = *job_head(h, job_id); k; k = h->jobs[k - 1].next)
		if (strcmp(h->jobs[k - 1].id, job_id) == 0)
			return h->jobs[k - 1].domain;
	return NULL;
}

/* Takes the job in ring slot k out of its bucket (before the slot is reused). */
static void job_unlink(struct hub *h, size_t k)
{
	uint32_t *pp = job_head(h, h->jobs[k].id);

	while (*pp && *pp != k + 1)
		pp = &h->jobs[*pp - 1].next;
	if (*pp)
		*pp = h->jobs[k].next;
}

/* ---- logging of rejections ----------------------------------------------------------------- */

/* Logs and counts a dropped message. The same line repeated within DENY_LOG_MS (a revoked
 * agent whose connection is still open keeps retrying) is counted but logged once. */
static void reject(struct hub *h, struct peer *p, const char *addr, const char *what,
		   const char *why)
{
	char line[sizeof(h->last_reject)];
	int64_t now = session_now();

	h->stats.rejected++;
	if (p)
		p->rejected++;
	snprintf(line, sizeof(line), "agent %s (%s): dropped %s: %s", p ? p->domain : "?",
		 addr ? addr : "?", what, why);
	if (strcmp(line, h->last_reject) == 0 && now - h->last_reject_at < DENY_LOG_MS) {
		h->reject_quiet++;
		return;
	}
	if (h->reject_quiet)
		log_warn("(the previous rejection repeated %u more time(s))", h->reject_quiet);
	log_warn("%s", line);
	memcpy(h->last_reject, line, sizeof(line));
	h->last_reject_at = now;
	h->reject_quiet = 0;
}

/* Sends an unsequenced Error to the connection a rejected message came from. */
static void answer(struct hub *h, const zmq_msg_t *rid, Tuap__Error__Code code, const char *message)
{
	Tuap__Envelope env;
	Tuap__Error e;
	struct buf b = BUF_INIT;

	wire_error_reply(&env, &e, WIRE_BAD, message);
	e.code = code;
	if (code == TUAP__ERROR__CODE__UPGRADE_REQUIRED) {
		e.has_min_version = 1;
		e.min_version = WIRE_MIN_VERSION;
	}
	if (wire_encode(&env, &b, NULL) == 0 &&
	    zmq_send(h->router, zmq_msg_data((zmq_msg_t *)rid), zmq_msg_size((zmq_msg_t *)rid),
		     ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
		zmq_send(h->router, b.s, b.len, ZMQ_DONTWAIT);
	buf_free(&b);
}

static Tuap__Error__Code code_of(int r)
{
	return r == WIRE_OLD	  ? TUAP__ERROR__CODE__UPGRADE_REQUIRED
	       : r == WIRE_DENIED ? TUAP__ERROR__CODE__NOT_ALLOWED
				  : TUAP__ERROR__CODE__BAD_MESSAGE;
}

/* Open file descriptors of this process (its /proc/self/fd), or -1. */
static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	long n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own */
}

/* Keeps file descriptors for tuap-ctl and the VM work whatever the network does. Connections
 * that never finish a CURVE handshake each hold one fd for HUB_HANDSHAKE_MS; no key is needed
 * to open them. At the fd limit libzmq 4.3.4 aborts (an assert in its ipc listener, that is on
 * the next tuap-ctl connection), so the agent port stops accepting (zmq_unbind: connected
 * agents keep their connections) while fewer than a quarter of the limit are free, and
 * listens again once half are: agents reconnect by themselves. Counting them reads the whole
 * of /proc/self/fd, so while not paused they are counted again only once the connections
 * accepted since could have used half the room that was left (with a thousand agents a count
 * per connection made their connecting quadratic). */
static void guard_fds(struct hub *h)
{
	struct rlimit rl;
	long n = open_fds(), limit, reserve;

	h->fd_accepted = 0;
	h->fd_room = 0; /* unknown: count again at the next connection */
	if (n >= 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == RLIM_INFINITY)
		h->fd_room = LONG_MAX / 4;
	if (n < 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return;
	limit = (long)rl.rlim_cur;
	reserve = limit / 4 > 64 ? limit / 4 : 64;
	h->fd_room = limit - reserve - n;
	if (!h->paused && n >= limit - reserve) {
		if (zmq_unbind(h->router, h->endpoint) == 0) {
			h->paused = true;
			log_warn(
				"agent socket: %ld of %ld file descriptors open, most by "
				"connections "
				"that have not finished a handshake; not accepting new connections "
				"until they are cut (%d s each)",
				n, limit, HUB_HANDSHAKE_MS / 1000);
		}
	} else if (h->paused && n < limit - 2 * reserve) {
		if (zmq_bind(h->router, h->endpoint) == 0) {
			h->paused = false;
			log_info("agent socket: %ld of %ld file descriptors open; listening on %s "
				 "again",
				 n, limit, h->endpoint);
		}
	}
}

static void serve_monitor(struct hub *h)
{
	uint16_t ev;
	uint32_t val;
	char addr[128];
	bool conns = false;
	int64_t now = session_now();

	for (int i = 0; i < BATCH && zmon_read(h->mon, &ev, &val, addr, sizeof(addr)); i++) {
		conns = conns || ev == ZMQ_EVENT_ACCEPTED || ev == ZMQ_EVENT_DISCONNECTED;
		h->fd_accepted += ev == ZMQ_EVENT_ACCEPTED;
		if (ev != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
		    ev != ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
			log_debug("agent socket: %s: %s", addr, zmon_event_name(ev));
			continue;
		}
		/* a flood of these is one line every DENY_LOG_MS, with the count */
		if (now - h->hs_logged_at < DENY_LOG_MS) {
			h->hs_quiet++;
			continue;
		}
		if (h->hs_quiet)
			log_warn("agent socket: %u more failed handshake(s)", h->hs_quiet);
		log_warn("agent socket: %s: %s (0x%x)", addr, zmon_event_name(ev), val);
		h->hs_quiet = 0;
		h->hs_logged_at = now;
	}
	if (h->paused || (conns && 2 * h->fd_accepted > h->fd_room))
		guard_fds(h);
}

/* ---- sending ------------------------------------------------------------------------------- */

/* Sends one frame to p's current connection: 0, or -1 when it must wait (HWM) or the
 * connection is gone (then the peer is marked disconnected until it speaks again). */
static int send_to(struct hub *h, struct peer *p, const void *data, size_t len)
{
	if (!p->route_ok)
		return -1;
	if (zmq_send(h->router, p->route, p->route_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
		if (zmq_errno() == EHOSTUNREACH) {
			p->route_ok = 0;
			log_info("agent %s: connection gone; %zu message(s) wait for its reconnect",
				 p->domain, session_unacked(&p->s));
		}
		return -1;
	}
	return zmq_send(h->router, data, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

static void send_queued(struct hub *h, struct peer *p, int64_t now)
{
	const struct session_msg *m;

	while (p->route_ok && (m = session_next(&p->s)) && send_to(h, p, m->data, m->len) == 0)
		session_sent(&p->s, now);
}

static void transmit(struct hub *h, struct peer *p, int64_t now)
{
	if (h->deferred)
		h->due = true;
	else
		send_queued(h, p, now);
}

void hub_defer(struct hub *h, bool on)
{
	h->deferred = on;
	if (!on)
		hub_flush(h);
}

void hub_flush(struct hub *h)
{
	int64_t now = session_now();

	if (!h->due)
		return;
	h->due = false;
	for (size_t i = 0; i < h->npeers; i++)
		if (h->peers[i]->s.id_len)
			send_queued(h, h->peers[i], now);
}

static void run_timers(struct hub *h, int64_t now)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < h->npeers; i++) {
		struct peer *p = h->peers[i];

		if (!p->s.id_len || !p->route_ok)
			continue;
		if (session_tick(&p->s, now))
			log_info("agent %s: no ack for %d ms; resending %zu message(s)", p->domain,
				 SESSION_RTO_MS, session_unacked(&p->s));
		transmit(h, p, now);
		if (session_ack_due(&p->s, now)) {
			session_encode_ack(&p->s, &b);
			send_to(h, p, b.s, b.len);
		}
	}
	buf_free(&b);
}

/* ---- receiving ----------------------------------------------------------------------------- */

static void set_route(struct peer *p, const zmq_msg_t *rid, int64_t now)
{
	size_t n = zmq_msg_size((zmq_msg_t *)rid);

	if (n > ROUTE_MAX)
		return;
	if (n != p->route_len || memcmp(p->route, zmq_msg_data((zmq_msg_t *)rid), n) != 0) {
		memcpy(p->route, zmq_msg_data((zmq_msg_t *)rid), n);
		p->route_len = n;
		session_rewind(&p->s, now); /* a new connection: what was in flight may be lost */
	}
	p->route_ok = 1;
}

static void take_ack(struct peer *p, const Tuap__Envelope *env, const char *addr, int64_t now)
{
	if (!env->has_ack || !p->s.id_len)
		return;
	if (session_ack(&p->s, env->ack, now) < 0)
		log_warn("agent %s (%s): ack %llu is beyond the last message sent (%llu); ignored",
			 p->domain, addr, (unsigned long long)env->ack,
			 (unsigned long long)p->s.tx_seq);
}

/* Starts or resumes the domain's session from a Hello. */
static void take_hello(struct peer *p, const Tuap__Hello *hl, int64_t now)
{
	const uint8_t *id = hl->session_id.data;
	size_t len = hl->session_id.len;
	uint64_t seen = hl->has_last_seq_seen ? hl->last_seq_seen : 0;
	uint64_t next = hl->has_next_seq && hl->next_seq ? hl->next_seq : 1;

	if (session_is(&p->s, id, len)) {
		if (seen > p->s.tx_seq)
			log_warn("agent %s: hello says it saw seq %llu, only %llu were sent",
				 p->domain, (unsigned long long)seen,
				 (unsigned long long)p->s.tx_seq);
		else
			session_ack(&p->s, seen, now);
		if (next - 1 > p->s.rx_seq) {
			log_warn("agent %s: hello resumes at seq %llu, expected %llu or less",
				 p->domain, (unsigned long long)next,
				 (unsigned long long)p->s.rx_seq + 1);
			p->s.rx_seq = next - 1;
		}
		session_rewind(&p->s, now);
		log_info("agent %s (%s): reconnected, session resumed; resending %zu message(s)",
			 p->domain, p->address, session_unacked(&p->s));
	} else {
		if (p->s.id_len && session_unacked(&p->s))
			log_info("agent %s: new agent session; %zu message(s) to the previous one "
				 "dropped",
				 p->domain, session_unacked(&p->s));
		session_reset(&p->s, id, len, seen, next - 1);
		log_info("agent %s (%s): hello from agent %s, new session", p->domain, p->address,
			 hl->agent_version);
	}
	snprintf(p->agent_version, sizeof(p->agent_version), "%s", hl->agent_version);
}

/* Agent messages about a job must come from the job's domain. Returns 0 or an Error code. */
static int check_job(struct hub *h, struct peer *p, const char *job_id, const char *addr,
		     const char *what)
{
	const char *owner;
	char why[400];

	if (!job_id || !*job_id) {
		reject(h, p, addr, what, "no job_id");
		return TUAP__ERROR__CODE__BAD_MESSAGE;
	}
	owner = job_owner(h, job_id);
	if (!owner) {
		snprintf(why, sizeof(why), "unknown job '%s'", job_id);
		reject(h, p, addr, what, why);
		return TUAP__ERROR__CODE__UNKNOWN_JOB;
	}
	if (strcmp(owner, p->domain) != 0) {
		snprintf(why, sizeof(why), "job '%s' belongs to domain %s", job_id, owner);
		reject(h, p, addr, what, why);
		return TUAP__ERROR__CODE__NOT_ALLOWED;
	}
	return 0;
}

/* Decides about one decoded message from p; returns 1 to deliver it. */
static int accept_env(struct hub *h, struct peer *p, const zmq_msg_t *rid, Tuap__Envelope *env,
		      const char *addr, int64_t now)
{
	const char *what = wire_body_name(env->body_case);
	char why[200];
	int code;

	switch (env->body_case) {
	case TUAP__ENVELOPE__BODY__NOT_SET:
		take_ack(p, env, addr, now);
		return 0;
	case TUAP__ENVELOPE__BODY_HELLO:
		if (env->hello->running_job_id && *env->hello->running_job_id &&
		    job_owner(h, env->hello->running_job_id) &&
		    strcmp(job_owner(h, env->hello->running_job_id), p->domain) != 0) {
			reject(h, p, addr, what, "running_job_id belongs to another domain");
			answer(h, rid, TUAP__ERROR__CODE__NOT_ALLOWED, "job of another domain");
			return 0;
		}
		take_hello(p, env->hello, now);
		take_ack(p, env, addr, now);
		return 1;
	case TUAP__ENVELOPE__BODY_ERROR:
		take_ack(p, env, addr, now);
		log_warn("agent %s (%s): error %d: %s", p->domain, addr, env->error->code,
			 env->error->message ? env->error->message : "");
		return 1;
	default:
		break;
	}
	if (!p->s.id_len) {
		reject(h, p, addr, what, "no session yet (a hello comes first)");
		return 0;
	}
	take_ack(p, env, addr, now);
	switch (session_rx(&p->s, env->seq, now)) {
	case SESSION_DUP:
		h->stats.duplicates++;
		log_info("agent %s (%s): dropped %s seq %llu: already received (have %llu)",
			 p->domain, addr, what, (unsigned long long)env->seq,
			 (unsigned long long)p->s.rx_seq);
		return 0;
	case SESSION_GAP:
		snprintf(why, sizeof(why), "seq %llu out of order (expected %llu; it is resent)",
			 (unsigned long long)env->seq, (unsigned long long)p->s.rx_seq + 1);
		log_info("agent %s (%s): dropped %s: %s", p->domain, addr, what, why);
		return 0;
	case SESSION_NEW:
		break;
	}
	code = check_job(h, p, env->job_id, addr, what);
	if (code) {
		answer(h, rid, (Tuap__Error__Code)code, "message rejected: job not of this domain");
		return 0;
	}
	return 1;
}

/* A new session from another connection while the previous one is still connected is what a
 * stolen key looks like (an agent that restarts has closed its connection first). It is let
 * in, for the key is valid, but never silently: the previous connection, if it still
 * exists (the ROUTER can still route to it), is told it was superseded, and the log says to
 * rotate the key. Returns whether it was still connected. */
static bool warn_takeover(struct hub *h, const struct peer *p, const zmq_msg_t *rid,
			  const Tuap__Envelope *env, const char *addr)
{
	const Tuap__Hello *hl = env->hello;
	char msg[300];
	Tuap__Envelope out;
	Tuap__Error e;
	struct buf b = BUF_INIT;
	bool alive = false;

	if (env->body_case != TUAP__ENVELOPE__BODY_HELLO || !p->s.id_len || !p->route_ok ||
	    session_is(&p->s, hl->session_id.data, hl->session_id.len))
		return false;
	if (zmq_msg_size((zmq_msg_t *)rid) == p->route_len &&
	    !memcmp(zmq_msg_data((zmq_msg_t *)rid), p->route, p->route_len))
		return false;
	snprintf(msg, sizeof(msg),
		 "another connection (%s) with this agent's key opened a new session; this one is "
		 "no longer served",
		 addr ? addr : "?");
	wire_error_reply(&out, &e, WIRE_DENIED, msg);
	e.code = TUAP__ERROR__CODE__REFUSED;
	/* ROUTER_MANDATORY: EHOSTUNREACH when the previous connection is gone (a restart) */
	if (wire_encode(&out, &b, NULL) == 0 &&
	    zmq_send(h->router, p->route, p->route_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0) {
		zmq_send(h->router, b.s, b.len, ZMQ_DONTWAIT);
		alive = true;
		log_warn("agent %s: a second connection (%s) with its key opened a new session "
			 "while the one from %s is connected; it takes over. If no second agent "
			 "was started on purpose, the key is in other hands: rotate it "
			 "(tuap-ctl enroll --rotate %s)",
			 p->domain, addr ? addr : "?", p->address, p->domain);
	}
	buf_free(&b);
	return alive;
}

/* Reads one message from the ROUTER. Returns 1 (delivered), 0 (nothing waiting or dropped:
 * *got says which), -1 on a socket error. */
static int recv_one(struct hub *h, char domain[HUB_DOMAIN_SIZE], Tuap__Envelope **out, int *got)
{
	zmq_msg_t rid, msg;
	const char *uid, *key, *addr;
	struct peer *p;
	Tuap__Envelope *env = NULL;
	struct tuap_err e;
	int64_t now = session_now();
	int r, rc = 0, parts = 1;

	*got = 0;
	zmq_msg_init(&rid);
	zmq_msg_init(&msg);
	if (zmq_msg_recv(&rid, h->router, ZMQ_DONTWAIT) < 0) {
		rc = zmq_errno() == EAGAIN || zmq_errno() == EINTR ? 0 : -1;
		goto out;
	}
	*got = 1;
	if (!zmq_msg_more(&rid) || zmq_msg_recv(&msg, h->router, 0) < 0)
		goto out;
	/* A multipart message is dropped whole (its frames are already here: ZeroMQ delivers
	 * messages atomically, so this loop is bounded by what was received). */
	while (zmq_msg_more(&msg)) {
		zmq_msg_close(&msg);
		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, h->router, 0) < 0)
			goto out;
		parts++;
	}
	uid = zmq_msg_gets(&msg, "User-Id");
	key = zmq_msg_gets(&msg, ZAP_KEY_PROPERTY);
	addr = zmq_msg_gets(&msg, "Peer-Address");
	p = uid ? find_domain(h, uid) : NULL;
	if (!p) {
		char why[300];

		snprintf(why, sizeof(why), "domain '%s' is not allowed (revoked?)", uid ? uid : "");
		reject(h, NULL, addr, "message", why);
		goto out;
	}
	if (!key || strcmp(key, p->pubkey) != 0) {
		reject(h, p, addr, "message", "sent under a key that is no longer the domain's");
		goto out;
	}
	if (parts > 1) {
		reject(h, p, addr, "message", "multipart messages are not part of the protocol");
		goto out;
	}
	if (zmq_msg_size(&msg) > h->max_message) {
		char why[128];

		snprintf(why, sizeof(why), "%zu bytes, more than max_message (%zu)",
			 zmq_msg_size(&msg), h->max_message);
		reject(h, p, addr, "message", why);
		answer(h, &rid, TUAP__ERROR__CODE__BAD_MESSAGE, why);
		goto out;
	}
	r = wire_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), WIRE_FROM_AGENT, &env, &e);
	if (r != WIRE_OK) {
		reject(h, p, addr, "message", e.msg);
		answer(h, &rid, code_of(r), e.msg);
		goto out;
	}
	warn_takeover(h, p, &rid, env, addr);
	snprintf(p->address, sizeof(p->address), "%s", addr ? addr : "");
	p->last_seen = now;
	p->last_seen_unix = (int64_t)time(NULL);
	set_route(p, &rid, now);
	if (accept_env(h, p, &rid, env, addr, now)) {
		memcpy(domain, p->domain, HUB_DOMAIN_SIZE);
		*out = env;
		env = NULL;
		h->stats.delivered++;
		rc = 1;
	}
	transmit(h, p, now);
out:
	wire_free(env);
	zmq_msg_close(&rid);
	zmq_msg_close(&msg);
	return rc;
}

/* ---- public API ---------------------------------------------------------------------------- */

static int setopt(void *s, int opt, int v)
{
	return zmq_setsockopt(s, opt, &v, sizeof(v));
}

static int open_router(struct hub *h, const struct hub_params *p, struct tuap_err *err)
{
	/* libzmq cuts a connection that sends more than ZMQ_MAXMSGSIZE, silently; up to twice
	 * max_message the frame is read and dropped here instead, with a log line and an Error */
	int64_t maxmsg = 2 * (int64_t)h->max_message;
	int hb = p->heartbeat_ms ? p->heartbeat_ms : 10000;
	int hbt = p->heartbeat_timeout_ms ? p->heartbeat_timeout_ms : 30000;
	size_t len = sizeof(h->endpoint);

	h->router = zmq_socket(h->ctx, ZMQ_ROUTER);
	if (!h->router || setopt(h->router, ZMQ_CURVE_SERVER, 1) ||
	    zmq_setsockopt(h->router, ZMQ_CURVE_SECRETKEY, p->server_secret, KEYS_Z85_LEN) ||
	    zmq_setsockopt(h->router, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) ||
	    zmq_setsockopt(h->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) ||
	    setopt(h->router, ZMQ_HEARTBEAT_IVL, hb) ||
	    setopt(h->router, ZMQ_HEARTBEAT_TIMEOUT, hbt) ||
	    setopt(h->router, ZMQ_HEARTBEAT_TTL, hbt) ||
	    setopt(h->router, ZMQ_HANDSHAKE_IVL, HUB_HANDSHAKE_MS) ||
	    setopt(h->router, ZMQ_ROUTER_MANDATORY, 1) || setopt(h->router, ZMQ_LINGER, 0) ||
	    setopt(h->router, ZMQ_SNDHWM, 10000) || setopt(h->router, ZMQ_RCVHWM, 10000))
		return err_set(err, "agent socket: %s", zmq_strerror(zmq_errno()));
	if (setopt(h->router, OPT_ZAP_ENFORCE_DOMAIN, 1) != 0)
		log_debug("agent socket: ZMQ_ZAP_ENFORCE_DOMAIN not supported by this libzmq");
	if (zmq_bind(h->router, p->listen) != 0)
		return err_set(err, "agent socket: cannot listen on %s: %s", p->listen,
			       zmq_strerror(zmq_errno()));
	if (zmq_getsockopt(h->router, ZMQ_LAST_ENDPOINT, h->endpoint, &len) != 0)
		snprintf(h->endpoint, sizeof(h->endpoint), "%s", p->listen);
	return 0;
}

struct hub *hub_new(const struct hub_params *p, struct tuap_err *err)
{
	struct hub *h = calloc(1, sizeof(*h));

	if (!h) {
		err_set(err, "out of memory");
		return NULL;
	}
	h->resend_max_msgs = p->resend_max_msgs;
	h->resend_max_bytes = p->resend_max_bytes;
	h->max_message = p->max_message ? p->max_message : WIRE_MAX_MESSAGE;
	if (!p->listen || !keys_valid(p->server_secret)) {
		err_set(err, "agent socket: need a listen address and a Z85 server secret key");
		goto fail;
	}
	if (p->max_message &&
	    (p->max_message < WIRE_MIN_MAXMSG || p->max_message > WIRE_MAX_MESSAGE)) {
		err_set(err, "agent socket: max_message %zu outside %u..%u", p->max_message,
			WIRE_MIN_MAXMSG, WIRE_MAX_MESSAGE);
		goto fail;
	}
	h->ctx = zmq_ctx_new();
	h->jobs = calloc(MAX_JOBS, sizeof(*h->jobs));
	h->job_bucket = calloc(JOB_BUCKETS, sizeof(*h->job_bucket));
	h->by_domain = calloc(PEER_IDX, sizeof(*h->by_domain));
	h->by_key = calloc(PEER_IDX, sizeof(*h->by_key));
	if (!h->ctx || !h->jobs || !h->job_bucket || !h->by_domain || !h->by_key) {
		err_set(err, "agent socket: %s", h->ctx ? "out of memory" : "no ZeroMQ context");
		goto fail;
	}
	/* The ZAP handler is bound before the socket it guards exists. */
	h->zap = zap_new(h->ctx, lookup_key, h, err);
	if (!h->zap)
		goto fail;
	if (open_router(h, p, err) < 0)
		goto fail;
	h->mon = zmon_open(h->ctx, h->router,
			   ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
				   ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
				   ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_DISCONNECTED |
				   ZMQ_EVENT_ACCEPTED,
			   err);
	if (!h->mon)
		goto fail;
	log_info("agent socket: listening on %s", h->endpoint);
	return h;
fail:
	hub_free(h);
	return NULL;
}

void hub_free(struct hub *h)
{
	if (!h)
		return;
	if (h->mon) {
		zmq_socket_monitor(h->router, NULL, 0);
		zmq_close(h->mon);
	}
	if (h->router)
		zmq_close(h->router);
	zap_free(h->zap);
	if (h->ctx)
		zmq_ctx_term(h->ctx);
	for (size_t i = 0; i < h->npeers; i++) {
		session_free(&h->peers[i]->s);
		free(h->peers[i]);
	}
	free(h->peers);
	free(h->by_domain);
	free(h->by_key);
	free(h->jobs);
	free(h->job_bucket);
	free(h);
}

const char *hub_endpoint(const struct hub *h)
{
	return h->endpoint;
}

int hub_allow(struct hub *h, const char *domain, const char *pubkey, struct tuap_err *err)
{
	struct peer *p, *other;

	char why[128];

	if (valid_domain_name(domain, why, sizeof(why)) < 0)
		return err_set(err, "hub: '%s' is not a domain name: %s", domain, why);
	if (!keys_valid(pubkey))
		return err_set(err, "hub: %s: not a Z85 public key", domain);
	other = find_key(h, pubkey);
	if (other && strcmp(other->domain, domain) != 0)
		return err_set(err, "hub: %s: key already belongs to domain %s", domain,
			       other->domain);
	p = find_domain(h, domain);
	if (p && strcmp(p->pubkey, pubkey) == 0)
		return 0;
	if (p) {
		log_info("agent %s: key rotated; the old key is refused from now on", domain);
		hub_revoke(h, domain);
	}
	if (h->npeers >= HUB_MAX_DOMAINS)
		return err_set(err, "hub: more than %d domains", HUB_MAX_DOMAINS);
	if (h->npeers == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 16;
		struct peer **v = realloc(h->peers, cap * sizeof(*v));

		if (!v)
			return err_set(err, "out of memory");
		h->peers = v;
		h->cap = cap;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(err, "out of memory");
	snprintf(p->domain, sizeof(p->domain), "%s", domain);
	memcpy(p->pubkey, pubkey, KEYS_Z85_SIZE);
	session_init(&p->s, h->resend_max_msgs, h->resend_max_bytes);
	h->peers[h->npeers++] = p;
	idx_add(h, p);
	return 0;
}

int hub_revoke(struct hub *h, const char *domain)
{
	for (size_t i = 0; i < h->npeers; i++) {
		struct peer *p = h->peers[i];

		if (strcmp(p->domain, domain) != 0)
			continue;
		log_info("agent %s: key revoked (%zu unacknowledged message(s) dropped)", domain,
			 session_unacked(&p->s));
		session_free(&p->s);
		free(p);
		h->peers[i] = h->peers[--h->npeers];
		idx_rebuild(h);
		return 0;
	}
	return -1;
}

int hub_bind_job(struct hub *h, const char *domain, const char *job_id, struct tuap_err *err)
{
	const char *owner;
	struct job *j;

	if (!job_id || !*job_id || strlen(job_id) >= JOB_ID_SIZE)
		return err_set(err, "hub: bad job id");
	owner = job_owner(h, job_id);
	if (owner)
		return strcmp(owner, domain) == 0
			       ? 0
			       : err_set(err, "hub: job %s belongs to domain %s, not %s", job_id,
					 owner, domain);
	j = &h->jobs[h->jobs_next];
	if (h->njobs == MAX_JOBS)
		job_unlink(h, h->jobs_next); /* the oldest job is forgotten */
	snprintf(j->id, sizeof(j->id), "%s", job_id);
	snprintf(j->domain, sizeof(j->domain), "%s", domain);
	j->next = *job_head(h, job_id);
	*job_head(h, job_id) = (uint32_t)h->jobs_next + 1;
	h->jobs_next = (h->jobs_next + 1) % MAX_JOBS;
	if (h->njobs < MAX_JOBS)
		h->njobs++;
	return 0;
}

void hub_pollitems(struct hub *h, zmq_pollitem_t items[HUB_NPOLL])
{
	memset(items, 0, HUB_NPOLL * sizeof(*items));
	items[0].socket = h->router;
	items[1].socket = zap_socket(h->zap);
	items[2].socket = h->mon;
	for (int i = 0; i < HUB_NPOLL; i++)
		items[i].events = ZMQ_POLLIN;
}

int hub_timeout(struct hub *h)
{
	int64_t now = session_now();
	int t = -1;

	for (size_t i = 0; i < h->npeers; i++) {
		struct peer *p = h->peers[i];
		int pt;

		if (!p->s.id_len || !p->route_ok)
			continue;
		/* Messages held back by a full pipe: look again soon. */
		pt = session_next(&p->s) ? 100 : session_timeout(&p->s, now);
		if (pt >= 0 && (t < 0 || pt < t))
			t = pt;
	}
	return t;
}

int hub_recv(struct hub *h, char domain[HUB_DOMAIN_SIZE], Tuap__Envelope **env, int timeout_ms)
{
	int64_t deadline = session_now() + (timeout_ms > 0 ? timeout_ms : 0);

	*env = NULL;
	for (;;) {
		zmq_pollitem_t items[HUB_NPOLL];
		int64_t now;
		int got, r, t, wait;

		zap_serve(h->zap, BATCH);
		serve_monitor(h);
		for (int i = 0; i < BATCH; i++) {
			r = recv_one(h, domain, env, &got);
			if (r != 0 || !got)
				break;
		}
		now = session_now();
		run_timers(h, now);
		if (r != 0)
			return r;
		if (now >= deadline)
			return 0;
		t = hub_timeout(h);
		wait = (int)(deadline - now);
		if (t >= 0 && t < wait)
			wait = t;
		hub_pollitems(h, items);
		if (zmq_poll(items, HUB_NPOLL, wait) < 0 && zmq_errno() != EINTR)
			return -1;
	}
}

int hub_send(struct hub *h, const char *domain, const Tuap__Envelope *env, struct tuap_err *err)
{
	struct peer *p = find_domain(h, domain);
	Tuap__Envelope copy = *env;
	struct buf b = BUF_INIT;
	int rc;

	if (!p)
		return err_set(err, "hub: domain %s has no key allowed", domain);
	if (!p->s.id_len)
		return err_set(err, "hub: no agent session for %s yet (wait for its hello)",
			       domain);
	copy.version = WIRE_VERSION;
	copy.seq = wire_sequenced(env->body_case) ? p->s.tx_seq + 1 : 0;
	if (wire_check(&copy, WIRE_TO_AGENT, err) != WIRE_OK)
		return -1;
	if (env->body_case == TUAP__ENVELOPE__BODY_PLAN) {
		if (strcmp(env->plan->domain, domain) != 0)
			return err_set(err, "hub: plan for domain %s sent to %s", env->plan->domain,
				       domain);
		if (copy.job_id && *copy.job_id && strcmp(copy.job_id, env->plan->job_id) != 0)
			return err_set(err, "hub: plan of job %s in an envelope of job %s",
				       env->plan->job_id, copy.job_id);
		if (hub_bind_job(h, domain, env->plan->job_id, err) < 0)
			return -1;
	}
	if (copy.job_id && *copy.job_id && hub_bind_job(h, domain, copy.job_id, err) < 0)
		return -1;
	if (wire_sequenced(env->body_case)) {
		if (session_push(&p->s, &copy, err) < 0)
			return -1;
		transmit(h, p, session_now());
		return 0;
	}
	copy.has_ack = 1;
	copy.ack = p->s.rx_seq;
	if (wire_encode(&copy, &b, err) < 0)
		return -1;
	rc = send_to(h, p, b.s, b.len);
	if (rc < 0)
		err_set(err, "hub: agent %s is not connected", domain);
	buf_free(&b);
	return rc;
}

int hub_peer_info(struct hub *h, const char *domain, struct hub_peer_info *out)
{
	struct peer *p = find_domain(h, domain);

	memset(out, 0, sizeof(*out));
	if (!p)
		return -1;
	out->session = p->s.id_len > 0;
	out->connected = p->route_ok && p->last_seen && session_now() - p->last_seen < HUB_LIVE_MS;
	out->last_seen_unix = p->last_seen_unix;
	snprintf(out->agent_version, sizeof(out->agent_version), "%s", p->agent_version);
	snprintf(out->address, sizeof(out->address), "%s", p->address);
	out->unacked = session_unacked(&p->s);
	out->rejected = p->rejected;
	return 0;
}

void hub_stats(const struct hub *h, struct hub_stats *out)
{
	*out = h->stats;
	zap_counts(h->zap, &out->zap_allowed, &out->zap_denied);
}
