/*
 * The wire: one protobuf-c Envelope per ZeroMQ message, on the agent link (tuapd <-> tuap-agent)
 * and the ctl link (tuap-ctl <-> tuapd). This module owns everything a receiver must check
 * before it trusts a message: the size limit, the protocol version, which body types may travel
 * in which direction, the sequencing rule of the agent link, and bounds on every string, bytes
 * and repeated field inside (protobuf-c only bounds the total size). Decoding also caps the
 * memory protobuf-c may allocate, so a small message cannot expand into a large one.
 *
 * Version rule: a receiver rejects an envelope whose version is older than its own
 * WIRE_MIN_VERSION and answers with Error{UPGRADE_REQUIRED, min_version} (wire_error_reply);
 * newer versions are accepted (protobuf ignores fields it does not know). The side with the
 * higher minimum is therefore the one that tells the other to upgrade, and its Error is readable
 * by the older peer.
 *
 * Sequencing rule (agent link only): Hello, Error and a body-less Envelope (pure ack,
 * keepalive) carry seq 0; every other body carries seq >= 1.
 */
#ifndef TUAP_WIRE_H
#define TUAP_WIRE_H

#include <stddef.h>

#include "buf.h"
#include "err.h"
#include "tuap.pb-c.h"

#define WIRE_VERSION	 1u
#define WIRE_MIN_VERSION 1u

/* Largest payload (file text, log batch) a message is meant to carry, and the room left for the
 * envelope around it. WIRE_MAX_MESSAGE is the hard cap on one encoded envelope; sockets set
 * ZMQ_MAXMSGSIZE to it (or to a configured lower value >= WIRE_MIN_MAXMSG). */
#define WIRE_MAX_PAYLOAD (1024u * 1024u)
#define WIRE_OVERHEAD	 4096u
#define WIRE_MAX_MESSAGE (WIRE_MAX_PAYLOAD + WIRE_OVERHEAD)
/* DataChunk.data and UploadChunk.data. */
#define WIRE_MAX_CHUNK	(256u * 1024u)
#define WIRE_MIN_MAXMSG (WIRE_MAX_CHUNK + WIRE_OVERHEAD)
/* Defaults for fields without their own bound (see the table in wire.c). */
#define WIRE_MAX_STRING	  (64u * 1024u)
#define WIRE_MAX_REPEATED 1024u
/* Hello.session_id: 8..64 bytes. */
#define WIRE_SESSION_MIN 8u
#define WIRE_SESSION_MAX 64u

/* Who sends to whom. */
enum wire_dir {
	WIRE_FROM_AGENT, /* agent -> controller: hello, step_event, chunk_request, error, ack */
	WIRE_TO_AGENT, /* controller -> agent: plan, step_request, data_chunk, cancel, error, ack */
	WIRE_FROM_CTL, /* tuap-ctl -> tuapd: ctl_request, upload_chunk */
	WIRE_TO_CTL,   /* tuapd -> tuap-ctl: ctl_event, error */
};

/* Results of wire_decode / wire_check: 0 or one of these (all negative, so `< 0` tests work). */
enum wire_result {
	WIRE_OK = 0,
	WIRE_BAD = -1,	  /* garbage, truncated, oversized, out of bounds, bad seq: BAD_MESSAGE */
	WIRE_OLD = -2,	  /* sender's version < WIRE_MIN_VERSION: UPGRADE_REQUIRED */
	WIRE_DENIED = -3, /* body type not allowed in this direction (or unknown): NOT_ALLOWED */
};

/* tuap__envelope__init plus version = WIRE_VERSION. */
void wire_init(Tuap__Envelope *env);

/* Checks an envelope about to be sent or just decoded: version, direction allow-list, seq rule
 * and bounds. Returns an enum wire_result and says why in err. */
int wire_check(const Tuap__Envelope *env, enum wire_dir dir, struct tuap_err *err);

/* Appends the encoded envelope to out (out is not reset). Fails (-1, nothing appended) when the
 * envelope breaks a bound or encodes to more than WIRE_MAX_MESSAGE bytes. Direction is not
 * checked here; senders call wire_check first. */
int wire_encode(const Tuap__Envelope *env, struct buf *out, struct tuap_err *err);

/* Decodes and checks len bytes received in direction dir. On WIRE_OK *out is the envelope
 * (caller frees with wire_free), its strings scrubbed (wire_scrub_text) when it comes from
 * an agent or goes to tuap-ctl; otherwise
 * *out is NULL and err says why. */
int wire_decode(const void *data, size_t len, enum wire_dir dir, Tuap__Envelope **out,
		struct tuap_err *err);

/* Control characters (C0 but tab, DEL, and C1 written as UTF-8) become '?', in place: text
 * from an agent can then neither move the operator's cursor, set their clipboard (OSC 52),
 * start a forged line nor pass a journald "<0>" priority. wire_decode applies it to every
 * string of what comes from an agent (WIRE_FROM_AGENT) and what tuap-ctl gets (WIRE_TO_CTL). */
void wire_scrub_text(char *s);

/* Frees what wire_decode returned; NULL is fine. */
void wire_free(Tuap__Envelope *env);

/* "hello", "step_event", ..., "none" for a body-less envelope, "unknown" otherwise. */
const char *wire_body_name(Tuap__Envelope__BodyCase body);
const char *wire_dir_name(enum wire_dir dir);

/* 1 if the envelope's body takes a sequence number on the agent link. */
int wire_sequenced(Tuap__Envelope__BodyCase body);

/* Fills env (+ its Error e, which must outlive env) with the answer to a message rejected with
 * result r (WIRE_OLD -> UPGRADE_REQUIRED with min_version, WIRE_DENIED -> NOT_ALLOWED, else
 * BAD_MESSAGE). message is borrowed, not copied. */
void wire_error_reply(Tuap__Envelope *env, Tuap__Error *e, int r, const char *message);

#endif
