/*
 * tuap-agent's end of the agent link: a ZeroMQ DEALER, CURVE client (keys and endpoint from
 * agent.conf), connecting out to tuapd's hub and reconnecting by itself (ZeroMQ retries every
 * 0.5 s, backing off to 30 s; heartbeats detect a dead controller).
 *
 * Each link is one session (a random Hello.session_id): on every connect, including reconnects
 * after a network break or a tuapd restart, the link sends a Hello (filled by the caller's
 * hello callback plus the session fields) and then resends whatever the controller has not
 * acknowledged; the controller resends what the agent missed. Messages received twice or out of
 * order are dropped here; the caller sees each controller message once, in order. A new process
 * is a new session: what was in flight to the old one is not resent (the agent's journal and
 * Hello.steps cover that).
 *
 * Event loop: zmq_poll on link_pollitems with a timeout no longer than link_timeout(), then
 * call link_recv(..., 0) until it returns 0.
 */
#ifndef TUAP_LINK_H
#define TUAP_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "agentconf.h"
#include "err.h"
#include "wire.h"

#define LINK_NPOLL	  2	/* pollitems: the DEALER and its monitor */
#define LINK_KEEPALIVE_MS 10000 /* a pure ack when nothing else went out for this long */

/* Called before every Hello. hello is initialized, agent_version = TUAP_VERSION; fill what the
 * agent knows (boot_id, hostname, os_*, pkg_manager, steps, running_*). The session fields
 * (session_id, last_seq_seen, next_seq, min_version) are set by the link afterwards. Pointers
 * stored in hello must stay valid until the callback's caller returns (it encodes at once). */
typedef void (*link_hello_fn)(void *arg, Tuap__Hello *hello);

struct link;

/* Connects (asynchronously) to c->endpoint with c's keys. c is copied; the copy's secret key is
 * wiped by link_close. */
struct link *link_open(const struct agentconf *c, struct tuap_err *err);
void link_close(struct link *l);

void link_set_hello(struct link *l, link_hello_fn fn, void *arg);

/* Sends a StepEvent, ChunkRequest or Error. Sequenced ones are queued until acknowledged (and
 * resent after reconnects), so this succeeds while disconnected; it fails when the envelope is
 * not allowed agent->controller or does not encode, or when the resend queue is full
 * (back-pressure: call link_recv and retry). The link sends Hello and acks itself. */
int link_send(struct link *l, const Tuap__Envelope *env, struct tuap_err *err);

/* Serves socket events, acks, resends and keepalives, and returns the next controller message:
 * 1 with *env (caller frees with wire_free), 0 when none came within timeout_ms (0: only what
 * is ready), -1 on a socket error. Delivered: Plan, StepRequest, DataChunk, Cancel, Error. */
int link_recv(struct link *l, Tuap__Envelope **env, int timeout_ms);

/* Replaces the socket by a new one (new connection, new routing id) in the same session, e.g.
 * when the agent judges the connection stuck. Unacknowledged messages are resent after the
 * new Hello. */
int link_reconnect(struct link *l, struct tuap_err *err);

/* The DEALER socket (for zmq_poll), and all pollitems the link needs. */
void *link_socket(struct link *l);
void link_pollitems(struct link *l, zmq_pollitem_t items[LINK_NPOLL]);
/* Milliseconds until the link has timer work, or -1. */
int link_timeout(struct link *l);

struct link_status {
	int up;			/* handshake done, Hello sent, not disconnected since */
	uint64_t connects;	/* handshakes that succeeded */
	uint64_t auth_failures; /* handshakes the controller refused (key not allowed) */
	size_t unacked;
	uint64_t duplicates; /* controller messages dropped as already received */
	uint64_t rejected;   /* controller messages that failed wire_decode */
};
void link_status(const struct link *l, struct link_status *out);

#endif
