/*
 * tuapd's control socket: a ZeroMQ ROUTER on ipc://RUN_DIR/ctl.sock (mode 0660, group from
 * tuapd.conf) that tuap-ctl's DEALER talks to with the same Envelope as the agents, carrying
 * CtlRequest / UploadChunk in and CtlEvent out. No CURVE: the file mode is the access control,
 * as for libvirt's own socket.
 */
#ifndef TUAP_CONTROL_H
#define TUAP_CONTROL_H

#include <stddef.h>

#include "err.h"
#include "job.h"
#include "tuap.pb-c.h"

struct control_held;

struct control {
	void *sock;
	char path[4096];
	uint64_t seq;
	bool deferred; /* control_defer: events wait for control_flush */
	struct control_held *held;
	size_t n_held, cap_held;
};

int control_open(struct control *c, void *zctx, const char *socket_path, const char *group,
		 size_t max_message, struct tuap_err *err);
void control_close(struct control *c);
/* Receives one message without waiting: 1 and *env (free with wire_free)
 * when there was one, 0 when none, -1 for a rejected message (logged and dropped). */
int control_recv(struct control *c, struct ctl_peer *peer, Tuap__Envelope **env);
/* Sends an event; -1 when the client is gone or not reading. */
int control_send(struct control *c, const struct ctl_peer *peer, const Tuap__CtlEvent *ev);
/* With on, control_send keeps events (it fails only when one cannot be encoded) and
 * control_flush sends them in order: tuapd lets them out after its group commit, so that a
 * reply never tells of a job or phase the journal could still lose. gone is called for each
 * event whose client is gone or not reading (it may be called twice for one client). */
void control_defer(struct control *c, bool on);
void control_flush(struct control *c, void (*gone)(void *ctx, const struct ctl_peer *peer),
		   void *ctx);

#endif
