/*
 * tuap's <metadata> element (see meta.h): one table of its fields for the writer and the
 * reader.
 */
#include "meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

static const struct field {
	const char *name;
	size_t off, size;
	bool legacy; /* read, never written */
} fields[] = {
#define FIELD(name, member, legacy)                                                                \
	{                                                                                          \
		name, offsetof(struct tuap_meta, member), sizeof(((struct tuap_meta *)0)->member), \
			legacy                                                                     \
	}
	FIELD("version", version, false),	  FIELD("provision-id", provision_id, false),
	FIELD("instance-id", instance_id, false), FIELD("agent-public-key", agent_key, false),
	FIELD("agent-key", agent_key, true),	  FIELD("image", image, false),
#undef FIELD
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static char *field_of(struct tuap_meta *m, const struct field *f)
{
	return (char *)m + f->off;
}

static const char *cfield_of(const struct tuap_meta *m, const struct field *f)
{
	return (const char *)m + f->off;
}

int meta_set(struct tuap_meta *m, const char *version, const char *provision_id,
	     const char *instance_id, const char *agent_key, const char *image,
	     struct tuap_err *err)
{
	const char *v[NFIELDS] = {version, provision_id, instance_id, agent_key, NULL, image};

	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < NFIELDS; i++) {
		size_t n = v[i] ? strlen(v[i]) : 0;

		if (fields[i].legacy)
			continue;
		if (n >= fields[i].size)
			return err_set(err,
				       "tuap metadata: <%s> is too long (%zu bytes, at most %zu)",
				       fields[i].name, n, fields[i].size - 1);
		memcpy(field_of(m, &fields[i]), v[i] ? v[i] : "", n + 1);
	}
	return 0;
}

void meta_write(struct xw *x, const struct tuap_meta *m, bool qualified)
{
	if (qualified)
		xw_start_ns(x, META_PREFIX, META_ROOT, META_NS);
	else
		xw_start(x, META_ROOT);
	for (size_t i = 0; i < NFIELDS; i++) {
		const char *v = cfield_of(m, &fields[i]);

		if (fields[i].legacy || !v[0])
			continue;
		if (qualified)
			xw_elem_ns(x, META_PREFIX, fields[i].name, v);
		else
			xw_elem(x, fields[i].name, v);
	}
	xw_end(x);
}

int meta_xml(const struct tuap_meta *m, bool qualified, char **xml, struct tuap_err *err)
{
	struct xw x;

	xw_open(&x);
	if (!qualified) /* libvirt indents it within the domain XML */
		xw_flat(&x);
	meta_write(&x, m, qualified);
	*xml = xw_finish(&x, "metadata", err);
	return *xml ? 0 : -1;
}

static bool ours(xmlNodePtr c)
{
	return c->type == XML_ELEMENT_NODE &&
	       (!c->ns || strcmp((const char *)c->ns->href, META_NS) == 0);
}

int meta_parse(const char *xml, size_t len, struct tuap_meta *m, struct tuap_err *err)
{
	xmlDocPtr doc;
	xmlNodePtr root;
	int rc = -1;

	memset(m, 0, sizeof(*m));
	doc = xr_parse(xml, len, "tuap metadata", err);
	if (!doc)
		return -1;
	root = xmlDocGetRootElement(doc);
	if (!root || !ours(root) || strcmp((const char *)root->name, META_ROOT) != 0) {
		err_set(err, "tuap metadata: the root element is not {%s}%s", META_NS, META_ROOT);
		goto out;
	}
	for (xmlNodePtr c = root->children; c; c = c->next) {
		if (!ours(c))
			continue;
		for (size_t i = 0; i < NFIELDS; i++) {
			if (strcmp((const char *)c->name, fields[i].name) != 0)
				continue;
			xmlChar *s = xmlNodeGetContent(c);
			size_t n = s ? strlen((const char *)s) : 0;
			if (n >= fields[i].size) {
				xmlFree(s);
				err_set(err,
					"tuap metadata: <%s> is too long (%zu bytes, at most %zu)",
					fields[i].name, n, fields[i].size - 1);
				goto out;
			}
			memcpy(field_of(m, &fields[i]), s ? (const char *)s : "", n + 1);
			xmlFree(s);
		}
	}
	rc = 0;
out:
	xmlFreeDoc(doc);
	return rc;
}
