/*
 * Internals shared by the virt*.c files: the connection struct, libvirt error capture and the
 * hooks between connections and the event thread (XML goes through render/xmlkit.h). Not for
 * other modules.
 */
#ifndef TUAP_VIRT_PRIV_H
#define TUAP_VIRT_PRIV_H

#include <libvirt/virterror.h>

#include "virt.h"
#include "xmlkit.h"

struct virt {
	virConnectPtr conn;
	char uri[512];
	int lifecycle_cb; /* callback id, -1 when none */
	int close_cb;	  /* 1 when a close callback is registered */
};

/* err_set with ": <libvirt's last error message>" appended. Returns -1. */
int virt_fail(struct tuap_err *err, const char *fmt, ...) TUAP_PRINTF(2, 3);
/* 1 when libvirt's last error has this virErrorNumber (e.g. VIR_ERR_NO_DOMAIN). */
int virt_last_error_is(int code);

/* Event thread hooks for virt_open/virt_close. */
int virt_event_running(void);
int virt_event_attach(struct virt *v, struct tuap_err *err);
void virt_event_detach(struct virt *v);

/* Name checks shared by the files: [A-Za-z0-9._-], 1..VIRT_NAME_MAX-1, no leading '.'. */
int virt_name_ok(const char *name);

#endif
