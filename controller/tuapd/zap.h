/*
 * The ZAP handler (ZeroMQ's authentication protocol, RFC 27) of tuapd's agent socket: a REP
 * socket bound to inproc://zeromq.zap.01 in the hub's ZMQ context, which libzmq asks about every
 * CURVE handshake. It is served from the hub's event loop (zap_serve never blocks), accepts a
 * client key only when the lookup names its domain, and answers with User-Id = that domain and
 * the key as metadata property ZAP_KEY_PROPERTY (zmq_msg_gets on every later message).
 */
#ifndef TUAP_ZAP_H
#define TUAP_ZAP_H

#include <stdint.h>

#include "err.h"

#define ZAP_DOMAIN	 "tuap" /* ZMQ_ZAP_DOMAIN of the agent socket */
#define ZAP_KEY_PROPERTY "X-Tuap-Key"

/* Returns the domain that key (Z85) belongs to, or NULL. */
typedef const char *(*zap_lookup_fn)(void *arg, const char *key);

struct zap;

/* Binds the handler; must come before the socket it guards is bound. */
struct zap *zap_new(void *ctx, zap_lookup_fn lookup, void *arg, struct tuap_err *err);
void zap_free(struct zap *z);
void *zap_socket(struct zap *z);

/* Answers up to max waiting requests without blocking; returns how many. Refusals are logged
 * (a key refused again within a minute only once). */
int zap_serve(struct zap *z, int max);

/* Handshakes let in and refused so far. */
void zap_counts(const struct zap *z, uint64_t *allowed, uint64_t *denied);

#endif
