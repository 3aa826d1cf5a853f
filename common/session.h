/*
 * The sequencing half of the agent link, shared by both ends (controller/hub.c, agent/link.c):
 * one session per agent process (Hello.session_id). Each side numbers the messages it sends
 * (seq from 1), keeps them in a bounded resend queue until the peer acknowledges them (Envelope
 * .ack: highest seq received in order), resends the unacknowledged ones after a reconnect or
 * when no ack came for SESSION_RTO_MS, and drops what it receives twice or out of order (the
 * sender resends it). Acks ride on outgoing messages; when there are none, a pure ack (an
 * Envelope without body, seq 0) goes out after SESSION_ACK_DELAY_MS.
 *
 * No sockets here: the owner asks what to transmit (session_next) and says when it went
 * (session_sent). Times are monotonic milliseconds (session_now).
 */
#ifndef TUAP_SESSION_H
#define TUAP_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "wire.h"

#define SESSION_RTO_MS	     5000
#define SESSION_ACK_DELAY_MS 50
#define SESSION_ACK_EVERY    32 /* ack at once when this many are unacknowledged */
/* Default resend queue bounds: a full queue makes session_push fail (back-pressure). */
#define SESSION_MAX_MSGS  1024
#define SESSION_MAX_BYTES (8u * 1024 * 1024)

struct session_msg {
	uint64_t seq;
	uint64_t ack; /* the ack it carries */
	char *data;   /* encoded envelope */
	size_t len;
};

struct session {
	uint8_t id[WIRE_SESSION_MAX];
	size_t id_len;	   /* 0: no session yet */
	uint64_t tx_seq;   /* last seq given to an outgoing message */
	uint64_t rx_seq;   /* highest seq received in order */
	uint64_t ack_sent; /* highest ack the peer has been sent */
	int64_t ack_due;   /* when a pure ack is due; 0: none */
	int64_t progress;  /* last ack progress or first transmission of the oldest message */
	struct session_msg *q;
	size_t n, cap;
	size_t next; /* q[next] is the next to transmit; q[0..next) are in flight */
	size_t bytes;
	size_t max_msgs, max_bytes;
};

int64_t session_now(void);

/* 0 bounds mean the defaults. */
void session_init(struct session *s, size_t max_msgs, size_t max_bytes);
void session_free(struct session *s);

/* Starts session id (dropping every queued message): the next outgoing seq is tx_seq + 1 and
 * the next expected incoming one rx_seq + 1. */
void session_reset(struct session *s, const uint8_t *id, size_t id_len, uint64_t tx_seq,
		   uint64_t rx_seq);
/* 1 if id is the current session. */
int session_is(const struct session *s, const uint8_t *id, size_t id_len);

/* Numbers a sequenced envelope (seq, ack), encodes it and queues it. Fails when the envelope
 * does not encode or the queue is full (nothing is consumed then). */
int session_push(struct session *s, const Tuap__Envelope *env, struct tuap_err *err);

/* The peer acknowledged everything up to ack: releases it. Returns how many messages were
 * released, or -1 when ack is beyond anything sent (a confused or lying peer; ignored). */
int session_ack(struct session *s, uint64_t ack, int64_t now);

enum session_rx {
	SESSION_NEW, /* the next in order: deliver it */
	SESSION_DUP, /* already received: drop (an ack is scheduled so the peer stops resending) */
	SESSION_GAP, /* ahead of what is expected: drop (the peer resends in order) */
};
enum session_rx session_rx(struct session *s, uint64_t seq, int64_t now);

/* The next queued message to transmit, or NULL. */
const struct session_msg *session_next(const struct session *s);
/* The message session_next returned has been handed to the socket. */
void session_sent(struct session *s, int64_t now);
/* Transmit every unacknowledged message again, from the oldest (after a reconnect). */
void session_rewind(struct session *s, int64_t now);

/* Timers: rewinds when the oldest in-flight message waited SESSION_RTO_MS for its ack (returns
 * 1 then). */
int session_tick(struct session *s, int64_t now);
/* 1 if a pure ack should go out now. */
int session_ack_due(const struct session *s, int64_t now);
/* Replaces out with a pure ack (seq 0, ack rx_seq) and records it as sent. */
void session_encode_ack(struct session *s, struct buf *out);
/* Milliseconds until session_tick / session_ack_due may have work, or -1 for none. */
int session_timeout(const struct session *s, int64_t now);

/* Seq of the first message the peer gets after a Hello: the oldest unacked, else the next. */
uint64_t session_next_seq(const struct session *s);
size_t session_unacked(const struct session *s);

#endif
