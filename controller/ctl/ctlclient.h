/*
 * tuap-ctl's side of the control socket: connect to tuapd, send a request, follow the events
 * it answers with (rendered by progress.c) until the final one, sending data.tar.gz when tuapd
 * asks for it. Ctrl-C detaches: the job goes on in tuapd.
 */
#ifndef TUAP_CTLCLIENT_H
#define TUAP_CTLCLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "progress.h"
#include "tuap.pb-c.h"

struct ctlclient {
	void *zctx, *sock, *mon;
	char path[4096];
	uint64_t seq;
};

/* Where tuapd listens: $TUAP_SOCKET, else RUN_DIR/ctl.sock from tuapd.conf ($TUAP_CONFIG or
 * /etc/tuap/tuapd.conf), else /run/tuap/ctl.sock. */
void ctlclient_socket_path(char *out, size_t len);
int ctlclient_open(struct ctlclient *c, const char *socket_path, struct tuap_err *err);
void ctlclient_close(struct ctlclient *c);
int ctlclient_send(struct ctlclient *c, Tuap__CtlRequest *req, struct tuap_err *err);
/* Follows the request's events until the final one and returns its exit code (CLI_*).
 * data_path: the data.tar.gz to upload when tuapd asks (may be NULL). idle_ms: how long to
 * wait for the first answer before saying tuapd does not answer. detach: return as soon as the
 * job runs on its own (any phase after the upload has started). */
int ctlclient_follow(struct ctlclient *c, struct progress *p, const char *domain,
		     const char *data_path, int idle_ms, bool detach);

/* Waits for the request's answer and appends its text lines to text (for answers that are
 * data, not progress: enroll). -1 with err for an error or no answer within idle_ms. */
int ctlclient_collect(struct ctlclient *c, struct buf *text, int idle_ms, struct tuap_err *err);

/* Asks for the status of every domain and waits (idle_ms per answer) for the reply: tuapd's
 * version ("" from a tuapd that does not say it) and how many domains it knows. */
int ctlclient_status(struct ctlclient *c, int idle_ms, char *version, size_t len, size_t *n_domains,
		     struct tuap_err *err);

#endif
