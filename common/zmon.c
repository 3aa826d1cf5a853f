/* Socket monitors; see zmon.h. */
#include "zmon.h"

#include <stdio.h>
#include <string.h>
#include <zmq.h>

void *zmon_open(void *ctx, void *sock, int mask, struct tuap_err *err)
{
	static unsigned serial; /* a socket's address may be reused; the endpoint must not */
	char ep[80];
	void *mon;
	int zero = 0;

	snprintf(ep, sizeof(ep), "inproc://tuap-monitor-%p-%u", sock, ++serial);
	if (zmq_socket_monitor(sock, ep, mask) != 0) {
		err_set(err, "zmq_socket_monitor: %s", zmq_strerror(zmq_errno()));
		return NULL;
	}
	mon = zmq_socket(ctx, ZMQ_PAIR);
	if (!mon || zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
	    zmq_connect(mon, ep) != 0) {
		err_set(err, "monitor socket: %s", zmq_strerror(zmq_errno()));
		if (mon)
			zmq_close(mon);
		zmq_socket_monitor(sock, NULL, 0);
		return NULL;
	}
	return mon;
}

int zmon_read(void *mon, uint16_t *event, uint32_t *value, char *addr, size_t addrlen)
{
	zmq_msg_t m;
	int more, got = 0;

	zmq_msg_init(&m);
	if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&m);
		return 0;
	}
	if (zmq_msg_size(&m) >= 6) {
		const uint8_t *d = zmq_msg_data(&m);

		memcpy(event, d, 2);
		memcpy(value, d + 2, 4);
		got = 1;
	}
	addr[0] = '\0';
	/* The address frame; anything after it is drained (a malformed event is skipped). */
	for (int i = 0; (more = zmq_msg_more(&m)) && i < 4; i++) {
		zmq_msg_close(&m);
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, mon, 0) < 0)
			break;
		if (i == 0) {
			size_t n = zmq_msg_size(&m) < addrlen ? zmq_msg_size(&m) : addrlen - 1;

			memcpy(addr, zmq_msg_data(&m), n);
			addr[n] = '\0';
		}
	}
	zmq_msg_close(&m);
	return got;
}

const char *zmon_event_name(uint16_t event)
{
	switch (event) {
	case ZMQ_EVENT_CONNECTED:
		return "connected";
	case ZMQ_EVENT_CONNECT_DELAYED:
		return "connect delayed";
	case ZMQ_EVENT_CONNECT_RETRIED:
		return "connect retried";
	case ZMQ_EVENT_ACCEPTED:
		return "accepted";
	case ZMQ_EVENT_DISCONNECTED:
		return "disconnected";
	case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
		return "handshake succeeded";
	case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
		return "handshake failed";
	case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
		return "handshake failed (protocol error, wrong server key?)";
	case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
		return "handshake refused (key not accepted)";
	default:
		return "event";
	}
}
