/*
 * virt connection and libvirt error capture (see virt.h, virt_priv.h).
 * libvirt prints every error to stderr by default; we install a quiet handler once and take
 * the message from virGetLastErrorMessage() (thread-local) into the caller's tuap_err instead.
 */
#include "virt_priv.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void quiet(void *data, virErrorPtr e)
{
	(void)data;
	(void)e;
}

static void init(void)
{
	init_rc = virInitialize();
	virSetErrorFunc(NULL, quiet);
}

int virt_fail(struct tuap_err *err, const char *fmt, ...)
{
	char what[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return err_set(err, "%s: %s", what, virGetLastErrorMessage());
}

int virt_last_error_is(int code)
{
	virErrorPtr e = virGetLastError();

	return e && e->code == code;
}

int virt_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= VIRT_NAME_MAX || name[0] == '.')
		return 0;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
	       n;
}

struct virt *virt_open(const char *uri, struct tuap_err *err)
{
	struct virt *v;

	pthread_once(&init_once, init);
	if (init_rc < 0) {
		virt_fail(err, "cannot initialise libvirt");
		return NULL;
	}
	if (strlen(uri) >= sizeof(v->uri)) {
		err_set(err, "libvirt URI is too long (%zu bytes)", strlen(uri));
		return NULL;
	}
	v = calloc(1, sizeof(*v));
	if (!v) {
		err_set(err, "out of memory");
		return NULL;
	}
	snprintf(v->uri, sizeof(v->uri), "%s", uri);
	v->lifecycle_cb = -1;
	v->conn = virConnectOpen(uri);
	if (!v->conn) {
		virt_fail(err, "cannot connect to libvirt at %s", uri);
		free(v);
		return NULL;
	}
	if (virt_event_running() && virt_event_attach(v, err) < 0) {
		virConnectClose(v->conn);
		free(v);
		return NULL;
	}
	return v;
}

void virt_close(struct virt *v)
{
	if (!v)
		return;
	virt_event_detach(v);
	virConnectClose(v->conn);
	free(v);
}

const char *virt_uri(const struct virt *v)
{
	return v->uri;
}

virConnectPtr virt_conn(struct virt *v)
{
	return v->conn;
}
