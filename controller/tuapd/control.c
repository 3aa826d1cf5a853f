/* The control socket between tuap-ctl and tuapd; see control.h. */
#include "control.h"

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "buf.h"
#include "log.h"
#include "wire.h"

struct control_held {
	struct ctl_peer peer;
	struct buf msg;
};

int control_open(struct control *c, void *zctx, const char *socket_path, const char *group,
		 size_t max_message, struct tuap_err *err)
{
	int one = 1, zero = 0, hwm = 10000;
	/* libzmq cuts a connection whose message exceeds ZMQ_MAXMSGSIZE without a word; up to
	 * twice max_message it is read here and refused with an answer instead */
	int64_t max = 2 * (int64_t)max_message;
	char endpoint[4200];
	struct group *gr;

	memset(c, 0, sizeof(*c));
	snprintf(c->path, sizeof(c->path), "%s", socket_path);
	snprintf(endpoint, sizeof(endpoint), "ipc://%s", socket_path);
	c->sock = zmq_socket(zctx, ZMQ_ROUTER);
	if (!c->sock)
		return err_set(err, "control socket: %s", zmq_strerror(errno));
	zmq_setsockopt(c->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
	zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &max, sizeof(max));
	zmq_setsockopt(c->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	/* a stale socket from a crashed tuapd would make bind fail */
	unlink(socket_path);
	if (zmq_bind(c->sock, endpoint) < 0) {
		err_set(err, "cannot listen on %s: %s", socket_path, zmq_strerror(errno));
		control_close(c);
		return -1;
	}
	if (chmod(socket_path, 0660) < 0)
		log_warn("%s: chmod: %s", socket_path, strerror(errno));
	if (group && *group) {
		if ((gr = getgrnam(group)) && chown(socket_path, (uid_t)-1, gr->gr_gid) < 0)
			log_warn("%s: chgrp %s: %s", socket_path, group, strerror(errno));
		else if (!gr)
			log_warn(
				"%s: group '%s' does not exist; only tuapd's own group can use the "
				"socket",
				socket_path, group);
	}
	return 0;
}

void control_close(struct control *c)
{
	for (size_t i = 0; i < c->n_held; i++)
		buf_free(&c->held[i].msg);
	free(c->held);
	c->held = NULL;
	c->n_held = c->cap_held = 0;
	if (c->sock)
		zmq_close(c->sock);
	c->sock = NULL;
}

int control_recv(struct control *c, struct ctl_peer *peer, Tuap__Envelope **env)
{
	zmq_msg_t id, body;
	struct tuap_err err;
	int more, rc = -1;
	size_t more_len = sizeof(more);

	zmq_msg_init(&id);
	zmq_msg_init(&body);
	if (zmq_msg_recv(&id, c->sock, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&id);
		zmq_msg_close(&body);
		if (errno != EAGAIN && errno != EINTR)
			log_warn("control: receive: %s", zmq_strerror(errno));
		return 0;
	}
	if (zmq_msg_recv(&body, c->sock, 0) < 0)
		goto out;
	/* a DEALER sends one frame; anything more is not ours */
	zmq_getsockopt(c->sock, ZMQ_RCVMORE, &more, &more_len);
	if (more) {
		while (more) {
			zmq_msg_t extra;

			zmq_msg_init(&extra);
			zmq_msg_recv(&extra, c->sock, 0);
			zmq_msg_close(&extra);
			zmq_getsockopt(c->sock, ZMQ_RCVMORE, &more, &more_len);
		}
		log_warn("control: multi-frame message dropped");
		goto out;
	}
	if (zmq_msg_size(&id) > sizeof(peer->id))
		goto out;
	peer->len = zmq_msg_size(&id);
	memcpy(peer->id, zmq_msg_data(&id), peer->len);
	if (wire_decode(zmq_msg_data(&body), zmq_msg_size(&body), WIRE_FROM_CTL, env, &err) < 0) {
		Tuap__CtlEvent ev = TUAP__CTL_EVENT__INIT;
		Tuap__Error er = TUAP__ERROR__INIT;
		char msg[sizeof(err.msg) + 32];

		log_warn("control: message dropped: %s", err.msg);
		snprintf(msg, sizeof(msg), "request refused: %s", err.msg);
		er.code = TUAP__ERROR__CODE__BAD_MESSAGE;
		er.message = msg;
		ev.ev_case = TUAP__CTL_EVENT__EV_ERROR;
		ev.error = &er;
		ev.has_final = ev.has_exit_code = ev.final = 1;
		ev.exit_code = 1;
		control_send(c, peer, &ev); /* tuap-ctl is told, not left waiting */
		goto out;
	}
	rc = 1;
out:
	zmq_msg_close(&id);
	zmq_msg_close(&body);
	return rc;
}

static int send_now(struct control *c, const struct ctl_peer *peer, const void *msg, size_t len)
{
	if (zmq_send(c->sock, peer->id, peer->len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return -1; /* EHOSTUNREACH: the client is gone */
	return zmq_send(c->sock, msg, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

int control_send(struct control *c, const struct ctl_peer *peer, const Tuap__CtlEvent *ev)
{
	Tuap__Envelope env;
	struct buf b = BUF_INIT;
	struct tuap_err err;
	int rc = -1;

	wire_init(&env);
	env.seq = ++c->seq;
	env.body_case = TUAP__ENVELOPE__BODY_CTL_EVENT;
	env.ctl_event = (Tuap__CtlEvent *)ev;
	if (wire_encode(&env, &b, &err) < 0) {
		log_error("control: cannot encode an event: %s", err.msg);
		goto out;
	}
	if (c->deferred) {
		if (c->n_held == c->cap_held) {
			size_t cap = c->cap_held ? 2 * c->cap_held : 64;
			struct control_held *h = realloc(c->held, cap * sizeof(*h));

			if (!h) {
				log_error("control: out of memory for an event");
				goto out;
			}
			c->held = h;
			c->cap_held = cap;
		}
		c->held[c->n_held].peer = *peer;
		c->held[c->n_held++].msg = b; /* the event's memory is the queue's now */
		return 0;
	}
	rc = send_now(c, peer, b.s, b.len);
out:
	buf_free(&b);
	return rc;
}

void control_defer(struct control *c, bool on)
{
	c->deferred = on;
	if (!on)
		control_flush(c, NULL, NULL);
}

void control_flush(struct control *c, void (*gone)(void *ctx, const struct ctl_peer *peer),
		   void *ctx)
{
	for (size_t i = 0; i < c->n_held; i++) {
		struct control_held *h = &c->held[i];

		if (send_now(c, &h->peer, h->msg.s, h->msg.len) < 0 && gone)
			gone(ctx, &h->peer);
		buf_free(&h->msg);
	}
	c->n_held = 0;
}
