/* The agent socket's ZAP handler; see zap.h. */
#include "zap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "keys.h"
#include "log.h"
#include "session.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define DENY_LOG_MS  60000

struct zap {
	void *zap;
	zap_lookup_fn lookup;
	void *arg;
	uint64_t allowed, denied;
	char denied_key[KEYS_Z85_SIZE + 40]; /* last refused key, to keep the log short */
	int64_t denied_at;
	unsigned denied_quiet;
};

static void zap_send(void *zap, const zmq_msg_t *reqid, const char *status, const char *text,
		     const char *user, const char *key)
{
	uint8_t meta[64];
	size_t m = 0, kl = strlen(ZAP_KEY_PROPERTY);

	if (key) {
		meta[m++] = (uint8_t)kl;
		memcpy(meta + m, ZAP_KEY_PROPERTY, kl);
		m += kl;
		meta[m++] = 0, meta[m++] = 0, meta[m++] = 0, meta[m++] = KEYS_Z85_LEN;
		memcpy(meta + m, key, KEYS_Z85_LEN);
		m += KEYS_Z85_LEN;
	}
	zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
	zmq_send(zap, zmq_msg_data((zmq_msg_t *)reqid), zmq_msg_size((zmq_msg_t *)reqid),
		 ZMQ_SNDMORE);
	zmq_send(zap, status, strlen(status), ZMQ_SNDMORE);
	zmq_send(zap, text, strlen(text), ZMQ_SNDMORE);
	zmq_send(zap, user, strlen(user), ZMQ_SNDMORE);
	zmq_send(zap, meta, m, 0);
}

static void denied(struct zap *h, const char *key, const char *addr, const char *why)
{
	int64_t now = session_now();

	h->denied++;
	if (strcmp(key, h->denied_key) == 0 && now - h->denied_at < DENY_LOG_MS) {
		h->denied_quiet++;
		return;
	}
	log_warn("agent socket: refused %s from %s: %s%s", key, addr, why,
		 h->denied_quiet ? " (earlier refusals of the previous key not shown)" : "");
	snprintf(h->denied_key, sizeof(h->denied_key), "%s", key);
	h->denied_at = now;
	h->denied_quiet = 0;
}

/* Answers one ZAP request (frames: version, request id, domain, address, routing id,
 * mechanism, credentials). Returns 0 when none was waiting. */
static int serve_one(struct zap *h)
{
	zmq_msg_t f[8];
	int n = 0, more = 1;
	char addr[64] = "?", key[KEYS_Z85_SIZE] = "(no key)";
	const char *domain;

	while (more) {
		zmq_msg_t extra, *m = n < 8 ? &f[n] : &extra;

		zmq_msg_init(m);
		if (zmq_msg_recv(m, h->zap, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
			zmq_msg_close(m);
			if (n == 0)
				return 0;
			break;
		}
		more = zmq_msg_more(m);
		if (n < 8)
			n++;
		else
			zmq_msg_close(m); /* too many frames: n stays 8, the request is refused */
	}
	if (n >= 4)
		snprintf(addr, sizeof(addr), "%.*s", (int)zmq_msg_size(&f[3]),
			 (char *)zmq_msg_data(&f[3]));
	if (n < 2) {
		/* Not a ZAP request; REP must still answer. */
		zmq_send(h->zap, "", 0, 0);
	} else if (n != 7 || zmq_msg_size(&f[0]) != 3 || memcmp(zmq_msg_data(&f[0]), "1.0", 3) ||
		   zmq_msg_size(&f[5]) != 5 || memcmp(zmq_msg_data(&f[5]), "CURVE", 5) ||
		   zmq_msg_size(&f[6]) != 32 || zmq_msg_size(&f[2]) != strlen(ZAP_DOMAIN) ||
		   memcmp(zmq_msg_data(&f[2]), ZAP_DOMAIN, strlen(ZAP_DOMAIN))) {
		zap_send(h->zap, &f[1], "500", "malformed ZAP request", "", NULL);
		denied(h, "(malformed ZAP request)", addr,
		       "not a CURVE request for ZAP domain " ZAP_DOMAIN);
	} else {
		zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
		domain = h->lookup(h->arg, key);
		if (domain) {
			zap_send(h->zap, &f[1], "200", "OK", domain, key);
			h->allowed++;
			log_debug("agent socket: %s from %s is domain %s", key, addr, domain);
		} else {
			zap_send(h->zap, &f[1], "400", "unknown key", "", NULL);
			denied(h, key, addr,
			       "unknown public key (not allow-listed for any domain)");
		}
	}
	for (int i = 0; i < n; i++)
		zmq_msg_close(&f[i]);
	return 1;
}

struct zap *zap_new(void *ctx, zap_lookup_fn lookup, void *arg, struct tuap_err *err)
{
	struct zap *z = calloc(1, sizeof(*z));
	int zero = 0;

	if (!z) {
		err_set(err, "out of memory");
		return NULL;
	}
	z->lookup = lookup;
	z->arg = arg;
	z->zap = zmq_socket(ctx, ZMQ_REP);
	if (!z->zap || zmq_setsockopt(z->zap, ZMQ_LINGER, &zero, sizeof(zero)) ||
	    zmq_bind(z->zap, ZAP_ENDPOINT) != 0) {
		err_set(err, "agent socket: ZAP handler: %s", zmq_strerror(zmq_errno()));
		zap_free(z);
		return NULL;
	}
	return z;
}

void zap_free(struct zap *z)
{
	if (!z)
		return;
	if (z->zap)
		zmq_close(z->zap);
	free(z);
}

void *zap_socket(struct zap *z)
{
	return z->zap;
}

int zap_serve(struct zap *z, int max)
{
	int n = 0;

	while (n < max && serve_one(z))
		n++;
	return n;
}

void zap_counts(const struct zap *z, uint64_t *allowed, uint64_t *denied)
{
	*allowed = z->allowed;
	*denied = z->denied;
}
