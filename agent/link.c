/* The agent's DEALER link to tuapd; see link.h. */
#include "link.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "session.h"
#include "zmon.h"

#define SESSION_ID_LEN 16
#define BATCH	       64

struct link {
	void *ctx, *dealer, *mon;
	struct agentconf conf;
	struct session s;
	int up;
	int hello_pending; /* connected, Hello not yet accepted by the socket */
	int64_t last_send;
	link_hello_fn hello_fn;
	void *hello_arg;
	struct link_status st;
};

static int setopt(void *s, int opt, int v)
{
	return zmq_setsockopt(s, opt, &v, sizeof(v));
}

static void close_socket(struct link *l)
{
	if (l->mon) {
		zmq_socket_monitor(l->dealer, NULL, 0);
		zmq_close(l->mon);
		l->mon = NULL;
	}
	if (l->dealer) {
		zmq_close(l->dealer);
		l->dealer = NULL;
	}
	l->up = 0;
	l->hello_pending = 0;
}

static int open_socket(struct link *l, struct tuap_err *err)
{
	const struct agentconf *c = &l->conf;
	int64_t maxmsg = (int64_t)(c->max_message ? c->max_message : WIRE_MAX_MESSAGE);

	l->dealer = zmq_socket(l->ctx, ZMQ_DEALER);
	if (!l->dealer ||
	    zmq_setsockopt(l->dealer, ZMQ_CURVE_SERVERKEY, c->server_public_key, KEYS_Z85_LEN) ||
	    zmq_setsockopt(l->dealer, ZMQ_CURVE_PUBLICKEY, c->public_key, KEYS_Z85_LEN) ||
	    zmq_setsockopt(l->dealer, ZMQ_CURVE_SECRETKEY, c->secret_key, KEYS_Z85_LEN) ||
	    zmq_setsockopt(l->dealer, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) ||
	    setopt(l->dealer, ZMQ_HEARTBEAT_IVL, 10000) ||
	    setopt(l->dealer, ZMQ_HEARTBEAT_TIMEOUT, 30000) ||
	    setopt(l->dealer, ZMQ_HEARTBEAT_TTL, 30000) ||
	    setopt(l->dealer, ZMQ_HANDSHAKE_IVL, 15000) ||
	    setopt(l->dealer, ZMQ_RECONNECT_IVL, 500) ||
	    setopt(l->dealer, ZMQ_RECONNECT_IVL_MAX, 30000) ||
	    /* Nothing queues for a connection that is not up: the session resends instead, so
	     * that the Hello is always the first message on a new connection. */
	    setopt(l->dealer, ZMQ_IMMEDIATE, 1) || setopt(l->dealer, ZMQ_LINGER, 0) ||
	    setopt(l->dealer, ZMQ_SNDHWM, 1000) || setopt(l->dealer, ZMQ_RCVHWM, 1000)) {
		err_set(err, "agent link: %s", zmq_strerror(zmq_errno()));
		goto fail;
	}
	l->mon = zmon_open(l->ctx, l->dealer,
			   ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
				   ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
				   ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
				   ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL,
			   err);
	if (!l->mon)
		goto fail;
	if (zmq_connect(l->dealer, c->endpoint) != 0) {
		err_set(err, "agent link: cannot connect to %s: %s", c->endpoint,
			zmq_strerror(zmq_errno()));
		goto fail;
	}
	return 0;
fail:
	close_socket(l);
	return -1;
}

static int send_raw(struct link *l, const void *data, size_t len)
{
	if (zmq_send(l->dealer, data, len, ZMQ_DONTWAIT) < 0)
		return -1;
	l->last_send = session_now();
	return 0;
}

static void transmit(struct link *l, int64_t now)
{
	const struct session_msg *m;

	while (l->up && (m = session_next(&l->s)) && send_raw(l, m->data, m->len) == 0)
		session_sent(&l->s, now);
}

static void send_hello(struct link *l, int64_t now)
{
	Tuap__Hello hl = TUAP__HELLO__INIT;
	Tuap__Envelope env;
	struct buf b = BUF_INIT;
	struct tuap_err e;

	wire_init(&env);
	hl.agent_version = TUAP_VERSION;
	if (l->hello_fn)
		l->hello_fn(l->hello_arg, &hl);
	hl.session_id.data = l->s.id;
	hl.session_id.len = l->s.id_len;
	hl.has_last_seq_seen = 1;
	hl.last_seq_seen = l->s.rx_seq;
	hl.has_next_seq = 1;
	hl.next_seq = session_next_seq(&l->s);
	hl.has_min_version = 1;
	hl.min_version = WIRE_MIN_VERSION;
	env.body_case = TUAP__ENVELOPE__BODY_HELLO;
	env.hello = &hl;
	env.has_ack = 1;
	env.ack = l->s.rx_seq;
	if (wire_encode(&env, &b, &e) < 0) {
		/* The callback filled in something out of bounds: say hello without it. */
		log_error("agent link: hello does not encode (%s); sending a bare one", e.msg);
		tuap__hello__init(&hl);
		hl.agent_version = TUAP_VERSION;
		hl.session_id.data = l->s.id;
		hl.session_id.len = l->s.id_len;
		hl.has_last_seq_seen = hl.has_next_seq = 1;
		hl.last_seq_seen = l->s.rx_seq;
		hl.next_seq = session_next_seq(&l->s);
		buf_reset(&b);
		if (wire_encode(&env, &b, &e) < 0)
			abort();
	}
	if (send_raw(l, b.s, b.len) == 0) {
		l->hello_pending = 0;
		l->up = 1;
		l->s.ack_sent = l->s.rx_seq;
		session_rewind(&l->s, now);
		log_info("agent link: connected to %s; hello sent, resending %zu message(s)",
			 l->conf.endpoint, session_unacked(&l->s));
		transmit(l, now);
	}
	buf_free(&b);
}

static void serve_monitor(struct link *l)
{
	uint16_t ev;
	uint32_t val;
	char addr[128];

	for (int i = 0; i < BATCH && zmon_read(l->mon, &ev, &val, addr, sizeof(addr)); i++) {
		switch (ev) {
		case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
			l->st.connects++;
			l->hello_pending = 1;
			send_hello(l, session_now());
			break;
		case ZMQ_EVENT_DISCONNECTED:
			if (l->up)
				log_info("agent link: disconnected from %s; reconnecting", addr);
			l->up = 0;
			l->hello_pending = 0;
			break;
		case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
			l->st.auth_failures++;
			log_error("agent link: %s refused this agent's key (status %u); is the "
				  "domain's key allow-listed on the controller?",
				  addr, val);
			break;
		default:
			log_warn("agent link: %s: %s", addr, zmon_event_name(ev));
			break;
		}
	}
}

static void reply_upgrade(struct link *l, const char *why)
{
	Tuap__Envelope env;
	Tuap__Error e;
	struct buf b = BUF_INIT;

	wire_error_reply(&env, &e, WIRE_OLD, why);
	if (wire_encode(&env, &b, NULL) == 0)
		send_raw(l, b.s, b.len);
	buf_free(&b);
}

/* Decides about one decoded controller message; returns 1 to deliver it. */
static int accept_env(struct link *l, const Tuap__Envelope *env, int64_t now)
{
	const char *what = wire_body_name(env->body_case);

	if (env->has_ack && session_ack(&l->s, env->ack, now) < 0)
		log_warn("agent link: ack %llu is beyond the last message sent (%llu); ignored",
			 (unsigned long long)env->ack, (unsigned long long)l->s.tx_seq);
	if (env->body_case == TUAP__ENVELOPE__BODY__NOT_SET)
		return 0;
	if (env->body_case == TUAP__ENVELOPE__BODY_ERROR)
		return 1; /* unsequenced; agent_dispatch logs it */
	switch (session_rx(&l->s, env->seq, now)) {
	case SESSION_NEW:
		return 1;
	case SESSION_DUP:
		l->st.duplicates++;
		log_info("agent link: dropped %s seq %llu: already received (have %llu)", what,
			 (unsigned long long)env->seq, (unsigned long long)l->s.rx_seq);
		return 0;
	case SESSION_GAP:
		log_info("agent link: dropped %s seq %llu: expected %llu (it is resent)", what,
			 (unsigned long long)env->seq, (unsigned long long)l->s.rx_seq + 1);
		return 0;
	}
	return 0;
}

/* Reads one message: 1 delivered, 0 nothing waiting or dropped (*got tells), -1 error. */
static int recv_one(struct link *l, Tuap__Envelope **out, int *got)
{
	zmq_msg_t msg;
	Tuap__Envelope *env = NULL;
	struct tuap_err e;
	int rc = 0, r, multi = 0;

	*got = 0;
	zmq_msg_init(&msg);
	if (zmq_msg_recv(&msg, l->dealer, ZMQ_DONTWAIT) < 0) {
		rc = zmq_errno() == EAGAIN || zmq_errno() == EINTR ? 0 : -1;
		goto out;
	}
	*got = 1;
	while (zmq_msg_more(&msg)) { /* dropped whole; its frames are already here */
		multi = 1;
		zmq_msg_close(&msg);
		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, l->dealer, 0) < 0)
			goto out;
	}
	if (multi) {
		l->st.rejected++;
		log_warn("agent link: dropped a multipart message from the controller");
		goto out;
	}
	r = wire_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), WIRE_TO_AGENT, &env, &e);
	if (r != WIRE_OK) {
		l->st.rejected++;
		log_warn("agent link: dropped a controller message: %s", e.msg);
		if (r == WIRE_OLD)
			reply_upgrade(l, e.msg);
		goto out;
	}
	if (accept_env(l, env, session_now())) {
		*out = env;
		env = NULL;
		rc = 1;
	}
out:
	wire_free(env);
	zmq_msg_close(&msg);
	return rc;
}

static void run_timers(struct link *l, int64_t now)
{
	struct buf b = BUF_INIT;

	if (l->hello_pending)
		send_hello(l, now);
	if (!l->up)
		return;
	if (session_tick(&l->s, now))
		log_info("agent link: no ack for %d ms; resending %zu message(s)", SESSION_RTO_MS,
			 session_unacked(&l->s));
	transmit(l, now);
	if (session_ack_due(&l->s, now) || now - l->last_send >= LINK_KEEPALIVE_MS) {
		session_encode_ack(&l->s, &b);
		send_raw(l, b.s, b.len);
	}
	buf_free(&b);
}

struct link *link_open(const struct agentconf *c, struct tuap_err *err)
{
	struct link *l = calloc(1, sizeof(*l));
	uint8_t id[SESSION_ID_LEN];

	if (!l) {
		err_set(err, "out of memory");
		return NULL;
	}
	if (sodium_init() < 0) {
		err_set(err, "agent link: libsodium cannot initialize");
		goto fail;
	}
	if (!keys_valid(c->server_public_key) || !keys_valid(c->public_key) ||
	    !keys_valid(c->secret_key)) {
		err_set(err, "agent link: the config's keys are not Z85 CURVE keys");
		goto fail;
	}
	l->conf = *c;
	session_init(&l->s, 0, 0);
	randombytes_buf(id, sizeof(id));
	session_reset(&l->s, id, sizeof(id), 0, 0);
	l->last_send = session_now();
	l->ctx = zmq_ctx_new();
	if (!l->ctx) {
		err_set(err, "agent link: no ZeroMQ context");
		goto fail;
	}
	if (open_socket(l, err) < 0)
		goto fail;
	return l;
fail:
	link_close(l);
	return NULL;
}

void link_close(struct link *l)
{
	if (!l)
		return;
	close_socket(l);
	if (l->ctx)
		zmq_ctx_term(l->ctx);
	session_free(&l->s);
	agentconf_wipe(&l->conf);
	free(l);
}

void link_set_hello(struct link *l, link_hello_fn fn, void *arg)
{
	l->hello_fn = fn;
	l->hello_arg = arg;
}

int link_reconnect(struct link *l, struct tuap_err *err)
{
	log_info("agent link: reconnecting to %s", l->conf.endpoint);
	close_socket(l);
	return open_socket(l, err);
}

int link_send(struct link *l, const Tuap__Envelope *env, struct tuap_err *err)
{
	Tuap__Envelope copy = *env;
	struct buf b = BUF_INIT;
	int rc = -1;

	if (env->body_case == TUAP__ENVELOPE__BODY_HELLO)
		return err_set(err, "agent link: hello is sent by the link (use link_set_hello)");
	copy.version = WIRE_VERSION;
	copy.seq = wire_sequenced(env->body_case) ? l->s.tx_seq + 1 : 0;
	if (wire_check(&copy, WIRE_FROM_AGENT, err) != WIRE_OK)
		return -1;
	if (wire_sequenced(env->body_case)) {
		if (session_push(&l->s, &copy, err) < 0)
			return -1;
		serve_monitor(l);
		transmit(l, session_now());
		return 0;
	}
	copy.has_ack = 1;
	copy.ack = l->s.rx_seq;
	if (wire_encode(&copy, &b, err) < 0)
		goto out;
	if (!l->up || send_raw(l, b.s, b.len) < 0) {
		err_set(err, "agent link: not connected to %s", l->conf.endpoint);
		goto out;
	}
	rc = 0;
out:
	buf_free(&b);
	return rc;
}

void *link_socket(struct link *l)
{
	return l->dealer;
}

void link_pollitems(struct link *l, zmq_pollitem_t items[LINK_NPOLL])
{
	memset(items, 0, LINK_NPOLL * sizeof(*items));
	items[0].socket = l->dealer;
	items[0].events = ZMQ_POLLIN;
	items[1].socket = l->mon;
	items[1].events = ZMQ_POLLIN;
}

int link_timeout(struct link *l)
{
	int64_t now = session_now();
	int t, k;

	if (l->hello_pending || (l->up && session_next(&l->s)))
		return 100;
	if (!l->up)
		return -1;
	t = session_timeout(&l->s, now);
	k = (int)(l->last_send + LINK_KEEPALIVE_MS - now);
	if (k < 0)
		k = 0;
	return t < 0 || k < t ? k : t;
}

int link_recv(struct link *l, Tuap__Envelope **env, int timeout_ms)
{
	int64_t deadline = session_now() + (timeout_ms > 0 ? timeout_ms : 0);

	*env = NULL;
	for (;;) {
		zmq_pollitem_t items[LINK_NPOLL];
		int64_t now;
		int got, r = 0, t, wait;

		serve_monitor(l);
		for (int i = 0; i < BATCH; i++) {
			r = recv_one(l, env, &got);
			if (r != 0 || !got)
				break;
		}
		now = session_now();
		run_timers(l, now);
		if (r != 0)
			return r;
		if (now >= deadline)
			return 0;
		t = link_timeout(l);
		wait = (int)(deadline - now);
		if (t >= 0 && t < wait)
			wait = t;
		link_pollitems(l, items);
		if (zmq_poll(items, LINK_NPOLL, wait) < 0 && zmq_errno() != EINTR)
			return -1;
	}
}

void link_status(const struct link *l, struct link_status *out)
{
	*out = l->st;
	out->up = l->up;
	out->unacked = session_unacked(&l->s);
}
