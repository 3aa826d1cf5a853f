/*
 * The libxml2 helpers every XML tuap writes or reads goes through: a text writer whose calls
 * are checked once, at xw_finish (libxml2 does all the escaping), and a parser with no network
 * access and no entity expansion. Used by the domain XML (domxml.c), our <metadata> (meta.c)
 * and the libvirt calls of tuapd/vm.
 */
#ifndef TUAP_XMLKIT_H
#define TUAP_XMLKIT_H

#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>
#include <libxml/xmlwriter.h>

#include "err.h"

struct xw {
	xmlBufferPtr buf;
	xmlTextWriterPtr w;
	int bad;
};

/* Opens an indented writer into memory. -1 (and x->bad) when libxml2 cannot. */
int xw_open(struct xw *x);
/* Writes the <?xml version="1.0" encoding="UTF-8"?> declaration (stand-alone documents). */
void xw_declaration(struct xw *x);
/* No indentation from here on (a snippet that libvirt indents inside its own document). */
void xw_flat(struct xw *x);
void xw_start(struct xw *x, const char *name);
void xw_start_ns(struct xw *x, const char *prefix, const char *name, const char *uri);
void xw_attr(struct xw *x, const char *name, const char *value);
void xw_attr_u64(struct xw *x, const char *name, uint64_t value);
void xw_text(struct xw *x, const char *text);
/* <name>text</name>, and the same in a namespace already declared by an enclosing element */
void xw_elem(struct xw *x, const char *name, const char *text);
void xw_elem_ns(struct xw *x, const char *prefix, const char *name, const char *text);
/* <name attr="value"/> */
void xw_empty1(struct xw *x, const char *name, const char *attr, const char *value);
void xw_end(struct xw *x);
/* Ends the document; returns it malloc'd (caller frees) or NULL with err filled. Always frees
 * the writer. */
char *xw_finish(struct xw *x, const char *what, struct tuap_err *err);

/* Parses without network access or entity expansion. Caller xmlFreeDoc()s. */
xmlDocPtr xr_parse(const char *xml, size_t len, const char *what, struct tuap_err *err);
/* First string value of an XPath expression into out: 1 found (non-empty), 0 not found, -1
 * when it does not fit. */
int xr_str(xmlDocPtr doc, const char *xpath, char *out, size_t len);

#endif
