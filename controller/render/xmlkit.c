/*
 * The XML writer and reader (see xmlkit.h).
 */
#include "xmlkit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xpath.h>

/* ---- XML writing ---- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init(void)
{
	xmlInitParser();
}

int xw_open(struct xw *x)
{
	memset(x, 0, sizeof(*x));
	pthread_once(&init_once, init);
	x->buf = xmlBufferCreate();
	if (x->buf)
		x->w = xmlNewTextWriterMemory(x->buf, 0);
	if (!x->w) {
		x->bad = 1;
		return -1;
	}
	xmlTextWriterSetIndent(x->w, 1);
	xmlTextWriterSetIndentString(x->w, BAD_CAST "  ");
	return 0;
}

static void check(struct xw *x, int rc)
{
	if (rc < 0)
		x->bad = 1;
}

void xw_declaration(struct xw *x)
{
	if (x->w)
		check(x, xmlTextWriterStartDocument(x->w, NULL, "UTF-8", NULL));
}

void xw_flat(struct xw *x)
{
	if (x->w)
		check(x, xmlTextWriterSetIndent(x->w, 0));
}

void xw_start(struct xw *x, const char *name)
{
	if (x->w)
		check(x, xmlTextWriterStartElement(x->w, BAD_CAST name));
}

void xw_start_ns(struct xw *x, const char *prefix, const char *name, const char *uri)
{
	if (x->w)
		check(x, xmlTextWriterStartElementNS(x->w, BAD_CAST prefix, BAD_CAST name,
						     uri ? BAD_CAST uri : NULL));
}

void xw_attr(struct xw *x, const char *name, const char *value)
{
	if (x->w)
		check(x, xmlTextWriterWriteAttribute(x->w, BAD_CAST name, BAD_CAST value));
}

void xw_attr_u64(struct xw *x, const char *name, uint64_t value)
{
	char s[32];

	snprintf(s, sizeof(s), "%llu", (unsigned long long)value);
	xw_attr(x, name, s);
}

void xw_text(struct xw *x, const char *text)
{
	if (x->w)
		check(x, xmlTextWriterWriteString(x->w, BAD_CAST text));
}

void xw_elem(struct xw *x, const char *name, const char *text)
{
	if (x->w)
		check(x, xmlTextWriterWriteElement(x->w, BAD_CAST name, BAD_CAST text));
}

void xw_elem_ns(struct xw *x, const char *prefix, const char *name, const char *text)
{
	if (x->w)
		check(x, xmlTextWriterWriteElementNS(x->w, BAD_CAST prefix, BAD_CAST name, NULL,
						     BAD_CAST text));
}

void xw_empty1(struct xw *x, const char *name, const char *attr, const char *value)
{
	xw_start(x, name);
	xw_attr(x, attr, value);
	xw_end(x);
}

void xw_end(struct xw *x)
{
	if (x->w)
		check(x, xmlTextWriterEndElement(x->w));
}

char *xw_finish(struct xw *x, const char *what, struct tuap_err *err)
{
	char *out = NULL;

	if (x->w) {
		check(x, xmlTextWriterEndDocument(x->w));
		xmlFreeTextWriter(x->w); /* flushes into buf */
		x->w = NULL;
	}
	if (!x->bad && x->buf)
		out = strdup((const char *)xmlBufferContent(x->buf));
	if (!out)
		err_set(err, "cannot write the %s XML (libxml2 writer failed)", what);
	if (x->buf)
		xmlBufferFree(x->buf);
	x->buf = NULL;
	return out;
}

/* ---- XML reading ---- */

xmlDocPtr xr_parse(const char *xml, size_t len, const char *what, struct tuap_err *err)
{
	xmlDocPtr doc;

	pthread_once(&init_once, init);
	if (len > INT32_MAX) {
		err_set(err, "%s XML is too large", what);
		return NULL;
	}
	doc = xmlReadMemory(xml, (int)len, NULL, NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		const xmlError *e = xmlGetLastError();
		char msg[256];

		/* libxml2's messages end with a newline */
		snprintf(msg, sizeof(msg), "%s", e && e->message ? e->message : "malformed");
		msg[strcspn(msg, "\n")] = '\0';
		err_set(err, "cannot parse the %s XML: %s", what, msg);
	}
	return doc;
}

int xr_str(xmlDocPtr doc, const char *xpath, char *out, size_t len)
{
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	xmlXPathObjectPtr obj = NULL;
	xmlChar *s = NULL;
	int rc = 0;

	out[0] = '\0';
	if (!ctx)
		return -1;
	obj = xmlXPathEvalExpression(BAD_CAST xpath, ctx);
	if (obj && obj->type == XPATH_NODESET && obj->nodesetval && obj->nodesetval->nodeNr > 0)
		s = xmlNodeGetContent(obj->nodesetval->nodeTab[0]);
	if (s && s[0]) {
		if (strlen((const char *)s) >= len)
			rc = -1;
		else {
			snprintf(out, len, "%s", (const char *)s);
			rc = 1;
		}
	}
	xmlFree(s);
	xmlXPathFreeObject(obj);
	xmlXPathFreeContext(ctx);
	return rc;
}
