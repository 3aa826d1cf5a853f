/*
 * Internals shared by the virt*.c files: the connection struct, libvirt error capture, the
 * libxml2 writer/reader helpers every XML we hand to or read from libvirt goes through, and the
 * hooks between connections and the event thread. Not for other modules.
 */
#ifndef TUAP_VIRT_PRIV_H
#define TUAP_VIRT_PRIV_H

#include <libxml/tree.h>
#include <libxml/xmlwriter.h>
#include <libvirt/virterror.h>

#include "virt.h"

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

/* Writing XML: every call is checked once, at xw_finish. */
struct xw {
	xmlBufferPtr buf;
	xmlTextWriterPtr w;
	int bad;
};
int xw_open(struct xw *x);
void xw_start(struct xw *x, const char *name);
void xw_start_ns(struct xw *x, const char *prefix, const char *name, const char *uri);
void xw_attr(struct xw *x, const char *name, const char *value);
void xw_attr_u64(struct xw *x, const char *name, uint64_t value);
void xw_elem(struct xw *x, const char *name, const char *text);
void xw_elem_ns(struct xw *x, const char *prefix, const char *name, const char *text);
void xw_end(struct xw *x);
/* Ends the document; returns it malloc'd (caller frees) or NULL with err filled. Always frees
 * the writer. */
char *xw_finish(struct xw *x, const char *what, struct tuap_err *err);

/* Reading XML: parse without network access or entity expansion. Caller xmlFreeDoc()s. */
xmlDocPtr xr_parse(const char *xml, size_t len, const char *what, struct tuap_err *err);
/* First string value of an XPath expression into out: 1 found (non-empty), 0 not found, -1
 * when it does not fit. */
int xr_str(xmlDocPtr doc, const char *xpath, char *out, size_t len);

/* Event thread hooks for virt_open/virt_close. */
int virt_event_running(void);
int virt_event_attach(struct virt *v, struct tuap_err *err);
void virt_event_detach(struct virt *v);

/* Name checks shared by the files: [A-Za-z0-9._-], 1..VIRT_NAME_MAX-1, no leading '.'. */
int virt_name_ok(const char *name);

#endif
