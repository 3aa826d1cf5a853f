/*
 * tuap's element in a libvirt domain's <metadata>: how tuapd tells its own domains from the
 * operator's others, and what it knows of each across restarts. One schema, one writer and
 * one reader: domxml.c embeds it in a new domain, virt_domain.c replaces it on a live one and
 * reads it back.
 *
 *   <tuap:domain xmlns:tuap="https://tuap.dev/xmlns/domain/1">
 *     <tuap:version>, <tuap:provision-id>, <tuap:instance-id>, <tuap:agent-public-key>,
 *     <tuap:image>
 *   </tuap:domain>
 *
 * Empty fields are left out; unknown elements and other namespaces are ignored when reading
 * (a newer tuapd may add fields), and "agent-key" (before 0.1.0) is still read.
 */
#ifndef TUAP_META_H
#define TUAP_META_H

#include <stdbool.h>
#include <stddef.h>

#include "domain.h"
#include "err.h"
#include "xmlkit.h"

#define META_NS	    "https://tuap.dev/xmlns/domain/1"
#define META_PREFIX "tuap"
#define META_ROOT   "domain"

struct tuap_meta {
	char version[32];
	char provision_id[64];
	char instance_id[64];
	char agent_key[64];
	char image[DOMAIN_IMAGE_MAX];
};

/* Fills m from the strings (NULL = empty). -1 with err naming the field that does not fit. */
int meta_set(struct tuap_meta *m, const char *version, const char *provision_id,
	     const char *instance_id, const char *agent_key, const char *image,
	     struct tuap_err *err);
/* Writes the element into x. qualified: root and children in our namespace, declared on the
 * root (a stand-alone element, or inside a domain XML). Else the form virDomainSetMetadata
 * takes: no namespace at all, no indentation; libvirt binds the root to the URI under the
 * prefix it is given (and rejects a snippet that declares it already). */
void meta_write(struct xw *x, const struct tuap_meta *m, bool qualified);
/* The element alone, malloc'd into *xml (caller frees). */
int meta_xml(const struct tuap_meta *m, bool qualified, char **xml, struct tuap_err *err);
/* Parses the element, in our namespace under any prefix or in none (virDomainGetMetadata
 * strips the namespace of the element it was asked for by URI). */
int meta_parse(const char *xml, size_t len, struct tuap_meta *m, struct tuap_err *err);

#endif
