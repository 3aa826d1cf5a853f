/*
 * tuapd's agent socket: a ZeroMQ ROUTER, CURVE server, that every tuap-agent connects to.
 *
 * Who may connect: a ZAP handler (a REP socket on inproc://zeromq.zap.01 in the hub's own ZMQ
 * context, served from hub_recv, so it never blocks tuapd) accepts only public keys registered
 * with hub_allow and answers with User-Id = the key's domain (plus the key itself as metadata),
 * so every message says which domain sent it. A message whose key is no longer the domain's
 * (revoked, rotated) is dropped, as is one that speaks for a job of another domain.
 *
 * What they may say: at most max_message bytes, then wire_decode(WIRE_FROM_AGENT) (version,
 * allow-list, bounds); a sender older than WIRE_MIN_VERSION gets Error UPGRADE_REQUIRED back,
 * other rejected messages BAD_MESSAGE or NOT_ALLOWED. Every rejection is logged with the domain,
 * the peer address and the reason, and counted (hub_stats). A frame over twice max_message is
 * cut by libzmq (ZMQ_MAXMSGSIZE) with its connection, so it is never held in memory whole.
 *
 * Delivery: one session per domain (see common/session.h). A Hello starts a new session or
 * resumes the current one (same session_id: the agent reconnected, maybe with a new routing id);
 * on resume the hub resends what the agent has not seen (Hello.last_seq_seen). Duplicates and
 * out-of-order messages are dropped; acks and pure acks go out by themselves.
 *
 * Event loop: put the hub's sockets (hub_pollitems) into tuapd's zmq_poll with a timeout no
 * longer than hub_timeout(), then call hub_recv(..., 0) until it returns 0.
 */
#ifndef TUAP_HUB_H
#define TUAP_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "err.h"
#include "keys.h"
#include "wire.h"

#define HUB_DOMAIN_SIZE 254
#define HUB_NPOLL	3    /* pollitems: agent ROUTER, ZAP handler, socket monitor */
#define HUB_MAX_DOMAINS 8192 /* a power of two (hub.c's indexes) */
/* A peer counts as connected when it spoke within this time (agents send a keepalive every
 * LINK_KEEPALIVE_MS) and its last send did not fail. */
#define HUB_LIVE_MS 35000

struct hub_params {
	const char *listen;	   /* "tcp://0.0.0.0:7787"; "tcp://127.0.0.1:*" picks a port */
	const char *server_secret; /* Z85 secret key; used to set up the socket, not kept */
	size_t max_message;	   /* 0: WIRE_MAX_MESSAGE; see above */
	int heartbeat_ms;	   /* ZMQ_HEARTBEAT_IVL; 0: 10000 */
	int heartbeat_timeout_ms;  /* ZMQ_HEARTBEAT_TIMEOUT and _TTL; 0: 30000 */
	size_t resend_max_msgs;	   /* per domain; 0: SESSION_MAX_MSGS */
	size_t resend_max_bytes;   /* per domain; 0: SESSION_MAX_BYTES */
};

struct hub;

/* Binds the agent socket. Caller frees with hub_free. */
struct hub *hub_new(const struct hub_params *p, struct tuap_err *err);
void hub_free(struct hub *h);

/* The bound endpoint with its real port ("tcp://127.0.0.1:41234"). */
const char *hub_endpoint(const struct hub *h);

/* Lets the agent holding public key pubkey (Z85) in as domain. A domain has one key: allowing a
 * new key for a known domain revokes the old one first (key rotation). A key serves one
 * domain only. */
int hub_allow(struct hub *h, const char *domain, const char *pubkey, struct tuap_err *err);
/* Forgets the domain's key and session: new connections with that key are refused at the
 * handshake, and messages still arriving on an existing connection are dropped. -1 when the
 * domain was not allowed. */
int hub_revoke(struct hub *h, const char *domain);

/* Records that job_id belongs to domain (hub_send does this for every job_id it sends; call it
 * for jobs resumed from the journal). Agent messages about a job must come from its domain;
 * messages about a job the hub does not know are dropped (Error UNKNOWN_JOB). */
int hub_bind_job(struct hub *h, const char *domain, const char *job_id, struct tuap_err *err);

/* Fills items[0..HUB_NPOLL) for zmq_poll. */
void hub_pollitems(struct hub *h, zmq_pollitem_t items[HUB_NPOLL]);
/* Milliseconds until the hub has timer work (acks, resends), or -1. */
int hub_timeout(struct hub *h);

/* Serves ZAP requests, socket events, acks and resends, and returns the next accepted agent
 * message: 1 with *env (caller frees with wire_free) and its domain; 0 when none came within
 * timeout_ms (0: only what is ready now); -1 on a socket error. Delivered: Hello (every
 * connect; also resumed sessions), StepEvent, ChunkRequest and Error. */
int hub_recv(struct hub *h, char domain[HUB_DOMAIN_SIZE], Tuap__Envelope **env, int timeout_ms);

/* Sends env to domain's agent. Sequenced bodies (Plan, StepRequest, DataChunk, Cancel) get the
 * next seq and stay queued until acknowledged; they are resent after a reconnect. version, seq
 * and ack are filled in here. Fails when the domain has no session yet (no Hello since tuapd
 * started: wait for one), when env is not allowed controller->agent, when a Plan names another
 * domain, or when the resend queue is full (back-pressure: retry after hub_recv). */
int hub_send(struct hub *h, const char *domain, const Tuap__Envelope *env, struct tuap_err *err);

/* With on, the sequenced messages hub_send queues (and resends) go out only at hub_flush:
 * tuapd lets them out after its group commit (engine_commit), so that none leaves before the
 * journal record it follows from is on disk. Acks, Hello replies and errors are not held: they
 * promise nothing tuapd could forget. Off (the default) sends at once. */
void hub_defer(struct hub *h, bool on);
void hub_flush(struct hub *h);

struct hub_peer_info {
	int session;		/* a Hello was received */
	int connected;		/* spoke within HUB_LIVE_MS and the last send reached it */
	int64_t last_seen_unix; /* wall-clock seconds of the last accepted message; 0: never */
	char agent_version[64];
	char address[64]; /* Peer-Address of the last message */
	size_t unacked;	  /* messages waiting for the agent's ack */
	uint64_t rejected;
};
/* -1 when domain is not allowed. */
int hub_peer_info(struct hub *h, const char *domain, struct hub_peer_info *out);

struct hub_stats {
	uint64_t delivered;
	uint64_t rejected;   /* dropped for a reason worth a warning */
	uint64_t duplicates; /* replayed or resent seqs dropped */
	uint64_t zap_allowed, zap_denied;
};
void hub_stats(const struct hub *h, struct hub_stats *out);

#endif
