/*
 * ZeroMQ socket monitors (zmq_socket_monitor): the hub logs failed handshakes, the agent link
 * learns from them when a connection is up (to send its Hello) or refused. One helper to start
 * a monitor on a PAIR socket and one to read an event without blocking.
 */
#ifndef TUAP_ZMON_H
#define TUAP_ZMON_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Starts monitoring sock for the events in mask and returns the PAIR socket that receives
 * them (close it with zmq_close after zmq_socket_monitor(sock, NULL, 0)). */
void *zmon_open(void *ctx, void *sock, int mask, struct tuap_err *err);

/* Reads one event if one is waiting: 1 with event, value and the peer/endpoint address; 0 when
 * none is waiting. */
int zmon_read(void *mon, uint16_t *event, uint32_t *value, char *addr, size_t addrlen);

/* "handshake succeeded", "disconnected", ... */
const char *zmon_event_name(uint16_t event);

#endif
