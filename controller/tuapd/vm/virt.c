/*
 * virt connection and libvirt error capture (see virt.h, virt_priv.h).
 * libvirt prints every error to stderr by default; we install a quiet handler once and take
 * the message from virGetLastErrorMessage() (thread-local) into the caller's tuap_err instead.
 */
#include "virt_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/uri.h>

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

/* The host and port a remote URI's transport connects to (qemu+tcp://h/system: h:16509,
 * qemu+tls:// or qemu://h: 16514, qemu+ssh://, +libssh, +libssh2: 22, or the URI's port);
 * 0 when the URI is local or its transport is another (a command, a unix socket). */
static int remote_target(const char *uri, char *host, size_t hlen, char *port, size_t plen)
{
	xmlURIPtr u = xmlParseURI(uri);
	const char *plus;
	int rc = 0;

	if (!u)
		return 0;
	if (u->server && *u->server && u->scheme) {
		unsigned p = 0;

		plus = strchr(u->scheme, '+');
		if (!plus || !strcmp(plus, "+tls"))
			p = 16514;
		else if (!strcmp(plus, "+tcp"))
			p = 16509;
		else if (!strcmp(plus, "+ssh") || !strcmp(plus, "+libssh") ||
			 !strcmp(plus, "+libssh2"))
			p = 22;
		if (p) {
			snprintf(host, hlen, "%s", u->server);
			snprintf(port, plen, "%u", u->port > 0 ? (unsigned)u->port : p);
			rc = 1;
		}
	}
	xmlFreeURI(u);
	return rc;
}

/* A TCP connect to host:port within ms: libvirt's own connect has no deadline, and a remote
 * hypervisor behind a dropped route would hold tuapd for the kernel's SYN retries (~2 min). */
static int reachable(const char *uri, int ms, struct tuap_err *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	char host[256], port[16], why[128] = "no address";
	int rc;

	if (!remote_target(uri, host, sizeof(host), port, sizeof(port)))
		return 0;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
		return err_set(err, "cannot connect to libvirt at %s: %s: %s", uri, host,
			       gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS && poll(&pfd, 1, ms) == 1 &&
		     getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)) {
			close(fd);
			freeaddrinfo(res);
			return 0;
		}
		if (soerr || errno != EINPROGRESS)
			snprintf(why, sizeof(why), "%s", strerror(soerr ? soerr : errno));
		else
			snprintf(why, sizeof(why), "no answer within %d s", ms / 1000);
		close(fd);
	}
	freeaddrinfo(res);
	return err_set(err, "cannot connect to libvirt at %s: %s:%s: %s", uri, host, port, why);
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
	if (reachable(uri, VIRT_CONNECT_PROBE_MS, err) < 0) {
		free(v);
		return NULL;
	}
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
