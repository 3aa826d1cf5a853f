/*
 * Domains: define/start/destroy/undefine, state, the console log path, tuap's <metadata>
 * element (which is how tuapd tells its own domains from the operator's others) and internal
 * qcow2 snapshots. libvirt is the state of VMs: nothing here is cached.
 */
#include "virt_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/virterror.h>
#include <libxml/xpath.h>

/* ---- helpers ---- */

static virDomainPtr dom_get(struct virt *v, const char *name, struct tuap_err *err)
{
	virDomainPtr d = virDomainLookupByName(v->conn, name);

	if (!d)
		virt_fail(err, "cannot find domain %s", name);
	return d;
}

static xmlDocPtr dom_xml(virDomainPtr d, const char *name, unsigned int flags, struct tuap_err *err)
{
	char *xml = virDomainGetXMLDesc(d, flags);
	xmlDocPtr doc;

	if (!xml) {
		virt_fail(err, "cannot read the definition of domain %s", name);
		return NULL;
	}
	doc = xr_parse(xml, strlen(xml), "domain", err);
	free(xml);
	return doc;
}

/* ---- lifecycle ---- */

int virt_domain_define(struct virt *v, const char *xml, struct tuap_err *err)
{
	virDomainPtr d = virDomainDefineXMLFlags(v->conn, xml, VIR_DOMAIN_DEFINE_VALIDATE);

	if (!d)
		return virt_fail(err, "cannot define the domain");
	virDomainFree(d);
	return 0;
}

int virt_domain_exists(struct virt *v, const char *name, struct tuap_err *err)
{
	virDomainPtr d = virDomainLookupByName(v->conn, name);

	if (d) {
		virDomainFree(d);
		return 1;
	}
	if (virt_last_error_is(VIR_ERR_NO_DOMAIN)) {
		virResetLastError();
		return 0;
	}
	return virt_fail(err, "cannot look up domain %s", name);
}

int virt_domain_set_autostart(struct virt *v, const char *name, int on, struct tuap_err *err)
{
	virDomainPtr d = dom_get(v, name, err);
	int rc = 0;

	if (!d)
		return -1;
	if (virDomainSetAutostart(d, on ? 1 : 0) < 0)
		rc = virt_fail(err, "cannot %s autostart of domain %s", on ? "enable" : "disable",
			       name);
	virDomainFree(d);
	return rc;
}

int virt_domain_start(struct virt *v, const char *name, struct tuap_err *err)
{
	virDomainPtr d = dom_get(v, name, err);
	int rc = 0, active;

	if (!d)
		return -1;
	active = virDomainIsActive(d);
	if (active < 0)
		rc = virt_fail(err, "cannot query domain %s", name);
	else if (!active && virDomainCreate(d) < 0)
		rc = virt_fail(err, "cannot start domain %s", name);
	virDomainFree(d);
	return rc;
}

int virt_domain_destroy(struct virt *v, const char *name, struct tuap_err *err)
{
	virDomainPtr d = dom_get(v, name, err);
	int rc = 0, active;

	if (!d)
		return -1;
	active = virDomainIsActive(d);
	if (active < 0)
		rc = virt_fail(err, "cannot query domain %s", name);
	else if (active && virDomainDestroy(d) < 0 &&
		 !virt_last_error_is(VIR_ERR_OPERATION_INVALID)) /* it stopped meanwhile */
		rc = virt_fail(err, "cannot destroy domain %s", name);
	virDomainFree(d);
	return rc;
}

int virt_domain_undefine(struct virt *v, const char *name, struct tuap_err *err)
{
	virDomainPtr d = virDomainLookupByName(v->conn, name);
	/* No checkpoint flag: tuap makes none, and a checkpoint an operator made should stop the
	 * undefine with libvirt's message rather than vanish. */
	unsigned int flags =
		VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA;
	char nvram[4096];
	xmlDocPtr doc;
	int rc = -1;

	if (!d) {
		if (virt_last_error_is(VIR_ERR_NO_DOMAIN))
			return 0;
		return virt_fail(err, "cannot look up domain %s", name);
	}
	/* The nvram flag is refused by drivers and domains without nvram; UEFI guests have
	 * one, and leaving it behind would break a later define of the same name. */
	doc = dom_xml(d, name, VIR_DOMAIN_XML_INACTIVE, err);
	if (!doc)
		goto out;
	if (xr_str(doc, "/domain/os/nvram", nvram, sizeof(nvram)) != 0)
		flags |= VIR_DOMAIN_UNDEFINE_NVRAM;
	xmlFreeDoc(doc);
	if (virDomainUndefineFlags(d, flags) < 0) {
		virt_fail(err, "cannot undefine domain %s", name);
		goto out;
	}
	rc = 0;
out:
	virDomainFree(d);
	return rc;
}

int virt_domain_state(struct virt *v, const char *name, enum virt_state *state,
		      struct tuap_err *err)
{
	virDomainPtr d = dom_get(v, name, err);
	int st, reason, rc = 0;

	if (!d)
		return -1;
	if (virDomainGetState(d, &st, &reason, 0) < 0) {
		rc = virt_fail(err, "cannot read the state of domain %s", name);
	} else {
		switch (st) {
		case VIR_DOMAIN_SHUTOFF:
			*state = VIRT_STATE_SHUTOFF;
			break;
		case VIR_DOMAIN_RUNNING:
			*state = VIRT_STATE_RUNNING;
			break;
		case VIR_DOMAIN_PAUSED:
			*state = VIRT_STATE_PAUSED;
			break;
		default:
			*state = VIRT_STATE_OTHER;
		}
	}
	virDomainFree(d);
	return rc;
}

const char *virt_state_name(enum virt_state state)
{
	switch (state) {
	case VIRT_STATE_SHUTOFF:
		return "shut off";
	case VIRT_STATE_RUNNING:
		return "running";
	case VIRT_STATE_PAUSED:
		return "paused";
	case VIRT_STATE_OTHER:
		break;
	}
	return "other";
}

int virt_domain_console_log(struct virt *v, const char *name, char *path, size_t len,
			    struct tuap_err *err)
{
	static const char *const where[] = {
		"/domain/devices/serial[@type='file']/source/@path",
		"/domain/devices/serial/log/@file",
		"/domain/devices/console[@type='file']/source/@path",
		"/domain/devices/console/log/@file",
	};
	virDomainPtr d = dom_get(v, name, err);
	xmlDocPtr doc = NULL;
	int rc = -1;

	if (!d)
		return -1;
	doc = dom_xml(d, name, 0, err);
	if (!doc)
		goto out;
	rc = 0;
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]) && rc == 0; i++) {
		rc = xr_str(doc, where[i], path, len);
		if (rc < 0)
			err_set(err, "domain %s: console log path is too long", name);
	}
out:
	xmlFreeDoc(doc);
	virDomainFree(d);
	return rc;
}

/* ---- metadata ---- */

static int dom_meta(virDomainPtr d, const char *name, struct tuap_meta *m, struct tuap_err *err)
{
	char *xml = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, META_NS,
					 VIR_DOMAIN_AFFECT_CURRENT);
	struct tuap_meta scratch;
	int rc;

	if (!xml) {
		if (virt_last_error_is(VIR_ERR_NO_DOMAIN_METADATA)) {
			virResetLastError();
			return 0;
		}
		return virt_fail(err, "cannot read the metadata of domain %s", name);
	}
	rc = meta_parse(xml, strlen(xml), m ? m : &scratch, err);
	free(xml);
	if (rc < 0) {
		char msg[sizeof(err->msg)];
		snprintf(msg, sizeof(msg), "%s", err ? err->msg : "");
		return err_set(err, "domain %s: %s", name, msg);
	}
	return 1;
}

int virt_domain_is_ours(struct virt *v, const char *name, struct tuap_meta *m, struct tuap_err *err)
{
	virDomainPtr d = dom_get(v, name, err);
	int rc;

	if (!d)
		return -1;
	rc = dom_meta(d, name, m, err);
	virDomainFree(d);
	return rc;
}

/* Ejects the media of every cdrom of the domain that has one, in its persistent definition
 * and, when it runs, live (the guest sees the tray open). Returns how many, or -1. */
int virt_domain_eject_cdroms(struct virt *v, const char *name, struct tuap_err *err)
{
	virDomainPtr d = dom_get(v, name, err);
	xmlDocPtr doc = NULL;
	xmlXPathContextPtr ctx = NULL;
	xmlXPathObjectPtr obj = NULL;
	int n = 0, active;

	if (!d)
		return -1;
	active = virDomainIsActive(d);
	if (!(doc = dom_xml(d, name, VIR_DOMAIN_XML_INACTIVE, err))) {
		n = -1;
		goto out;
	}
	if ((ctx = xmlXPathNewContext(doc)))
		obj = xmlXPathEvalExpression(
			BAD_CAST "/domain/devices/disk[@device='cdrom'][source/@file]/target", ctx);
	for (int i = 0; obj && obj->nodesetval && i < obj->nodesetval->nodeNr; i++) {
		xmlNodePtr t = obj->nodesetval->nodeTab[i];
		xmlChar *dev = xmlGetProp(t, BAD_CAST "dev"), *bus = xmlGetProp(t, BAD_CAST "bus");
		unsigned flags = VIR_DOMAIN_AFFECT_CONFIG | VIR_DOMAIN_DEVICE_MODIFY_FORCE;
		struct xw x;
		char *xml;

		if (active == 1)
			flags |= VIR_DOMAIN_AFFECT_LIVE;
		xw_open(&x);
		xw_start(&x, "disk");
		xw_attr(&x, "type", "file");
		xw_attr(&x, "device", "cdrom");
		xw_start(&x, "target");
		xw_attr(&x, "dev", dev ? (const char *)dev : "");
		if (bus)
			xw_attr(&x, "bus", (const char *)bus);
		xw_end(&x);
		xw_start(&x, "readonly");
		xw_end(&x);
		xw_end(&x);
		xml = xw_finish(&x, "cdrom", err);
		if (!xml || virDomainUpdateDeviceFlags(d, xml, flags) < 0) {
			if (xml)
				virt_fail(err, "cannot eject %s of domain %s",
					  dev ? (char *)dev : "?", name);
			n = -1;
		} else {
			n++;
		}
		free(xml);
		xmlFree(dev);
		xmlFree(bus);
		if (n < 0)
			break;
	}
out:
	xmlXPathFreeObject(obj);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	virDomainFree(d);
	return n;
}

int virt_domain_set_meta(struct virt *v, const char *name, const struct tuap_meta *m,
			 struct tuap_err *err)
{
	virDomainPtr d = dom_get(v, name, err);
	unsigned int flags = VIR_DOMAIN_AFFECT_CONFIG;
	char *xml = NULL;
	int rc = -1;

	if (!d)
		return -1;
	if (meta_xml(m, false, &xml, err) < 0)
		goto out;
	if (virDomainIsActive(d) == 1)
		flags |= VIR_DOMAIN_AFFECT_LIVE;
	if (virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, xml, META_PREFIX, META_NS, flags) <
	    0) {
		virt_fail(err, "cannot store tuap metadata in domain %s", name);
		goto out;
	}
	rc = 0;
out:
	free(xml);
	virDomainFree(d);
	return rc;
}

int virt_domain_list_ours(struct virt *v, struct strlist *names, struct tuap_err *err)
{
	virDomainPtr *doms = NULL;
	struct strlist found = {0};
	int nd, rc = -1;

	nd = virConnectListAllDomains(v->conn, &doms, 0);
	if (nd < 0)
		return virt_fail(err, "cannot list domains");
	for (int i = 0; i < nd; i++) {
		const char *name = virDomainGetName(doms[i]);
		int ours = dom_meta(doms[i], name, NULL, err);
		/* A domain undefined meanwhile is simply not listed. */
		if (ours < 0 && virt_last_error_is(VIR_ERR_NO_DOMAIN))
			continue;
		if (ours < 0)
			goto out;
		if (ours)
			strlist_add(&found, name);
	}
	strlist_sort(&found, false);
	for (size_t i = 0; i < found.n; i++)
		strlist_add(names, found.v[i]);
	rc = 0;
out:
	strlist_free(&found);
	for (int i = 0; i < nd; i++)
		virDomainFree(doms[i]);
	free(doms);
	return rc;
}

/* ---- snapshots ---- */

/* Snapshot XML: internal snapshots of every writable disk (the seed cdrom and other read-only
 * media are left out, as qemu cannot snapshot a raw ISO), with memory when the domain runs. */
static char *snapshot_xml(virDomainPtr d, const char *domain, const char *name,
			  struct tuap_err *err)
{
	xmlDocPtr doc = dom_xml(d, domain, 0, err);
	xmlXPathContextPtr ctx = NULL;
	xmlXPathObjectPtr obj = NULL;
	struct xw x;
	int active = virDomainIsActive(d);

	if (!doc)
		return NULL;
	ctx = xmlXPathNewContext(doc);
	if (ctx)
		obj = xmlXPathEvalExpression(BAD_CAST "/domain/devices/disk", ctx);
	xw_open(&x);
	xw_start(&x, "domainsnapshot");
	xw_elem(&x, "name", name);
	xw_elem(&x, "description", "tuap snapshot");
	xw_start(&x, "memory");
	xw_attr(&x, "snapshot", active == 1 ? "internal" : "no");
	xw_end(&x);
	xw_start(&x, "disks");
	for (int i = 0; obj && obj->nodesetval && i < obj->nodesetval->nodeNr; i++) {
		xmlNodePtr disk = obj->nodesetval->nodeTab[i];
		xmlChar *device = xmlGetProp(disk, BAD_CAST "device");
		xmlChar *dev = NULL;
		int readonly = 0;
		for (xmlNodePtr c = disk->children; c; c = c->next) {
			if (c->type != XML_ELEMENT_NODE)
				continue;
			if (!strcmp((const char *)c->name, "target") && !dev)
				dev = xmlGetProp(c, BAD_CAST "dev");
			if (!strcmp((const char *)c->name, "readonly"))
				readonly = 1;
		}
		if (dev) {
			int writable = !readonly && (!device || !strcmp((char *)device, "disk"));
			xw_start(&x, "disk");
			xw_attr(&x, "name", (const char *)dev);
			xw_attr(&x, "snapshot", writable ? "internal" : "no");
			xw_end(&x);
		}
		xmlFree(dev);
		xmlFree(device);
	}
	xw_end(&x);
	xw_end(&x);
	if (!obj)
		x.bad = 1;
	xmlXPathFreeObject(obj);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	return xw_finish(&x, "snapshot", err);
}

int virt_snapshot_create(struct virt *v, const char *domain, const char *name, char *out,
			 size_t outlen, struct tuap_err *err)
{
	virDomainPtr d = dom_get(v, domain, err);
	virDomainSnapshotPtr s = NULL;
	char stamp[64], *xml = NULL;
	int rc = -1;

	if (!d)
		return -1;
	if (!name || !name[0]) {
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "tuap-%Y%m%d-%H%M%S", &tm);
		name = stamp;
	}
	if (!virt_name_ok(name)) {
		err_set(err, "'%s' is not a valid snapshot name", name);
		goto out;
	}
	if ((size_t)snprintf(out, outlen, "%s", name) >= outlen) {
		err_set(err, "snapshot name buffer too small");
		goto out;
	}
	xml = snapshot_xml(d, domain, name, err);
	if (!xml)
		goto out;
	s = virDomainSnapshotCreateXML(d, xml, VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC);
	if (!s) {
		virt_fail(err, "cannot snapshot domain %s as %s", domain, name);
		goto out;
	}
	rc = 0;
out:
	if (s)
		virDomainSnapshotFree(s);
	free(xml);
	virDomainFree(d);
	return rc;
}

static int cmp_snap(const void *a, const void *b)
{
	const struct virt_snapshot *x = a, *y = b;

	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int snap_fill(virDomainSnapshotPtr s, struct virt_snapshot *out, struct tuap_err *err)
{
	const char *name = virDomainSnapshotGetName(s);
	char *xml = virDomainSnapshotGetXMLDesc(s, 0);
	char created[32];
	xmlDocPtr doc;

	snprintf(out->name, sizeof(out->name), "%s", name ? name : "");
	if (!xml)
		return virt_fail(err, "cannot read snapshot %s", out->name);
	doc = xr_parse(xml, strlen(xml), "snapshot", err);
	free(xml);
	if (!doc)
		return -1;
	xr_str(doc, "/domainsnapshot/creationTime", created, sizeof(created));
	xr_str(doc, "/domainsnapshot/state", out->state, sizeof(out->state));
	out->created = strtoll(created, NULL, 10);
	xmlFreeDoc(doc);
	out->current = virDomainSnapshotIsCurrent(s, 0) == 1;
	return 0;
}

int virt_snapshot_list(struct virt *v, const char *domain, struct virt_snapshot **list, size_t *n,
		       struct tuap_err *err)
{
	virDomainPtr d = dom_get(v, domain, err);
	virDomainSnapshotPtr *snaps = NULL;
	struct virt_snapshot *out = NULL;
	int ns = 0, rc = -1;

	*list = NULL;
	*n = 0;
	if (!d)
		return -1;
	ns = virDomainListAllSnapshots(d, &snaps, 0);
	if (ns < 0) {
		virt_fail(err, "cannot list the snapshots of domain %s", domain);
		ns = 0;
		goto out;
	}
	out = calloc((size_t)ns + 1, sizeof(*out));
	if (!out) {
		err_set(err, "out of memory");
		goto out;
	}
	for (int i = 0; i < ns; i++)
		if (snap_fill(snaps[i], &out[i], err) < 0)
			goto out;
	qsort(out, (size_t)ns, sizeof(*out), cmp_snap);
	*list = out;
	*n = (size_t)ns;
	out = NULL;
	rc = 0;
out:
	free(out);
	for (int i = 0; i < ns; i++)
		virDomainSnapshotFree(snaps[i]);
	free(snaps);
	virDomainFree(d);
	return rc;
}

static virDomainSnapshotPtr snap_get(virDomainPtr d, const char *domain, const char *name,
				     struct tuap_err *err)
{
	virDomainSnapshotPtr s = virDomainSnapshotLookupByName(d, name, 0);

	if (!s)
		virt_fail(err, "cannot find snapshot %s of domain %s", name, domain);
	return s;
}

int virt_snapshot_revert(struct virt *v, const char *domain, const char *name, int running,
			 struct tuap_err *err)
{
	virDomainPtr d = dom_get(v, domain, err);
	virDomainSnapshotPtr s = NULL;
	int rc = -1;

	if (!d)
		return -1;
	s = snap_get(d, domain, name, err);
	if (!s)
		goto out;
	if (virDomainRevertToSnapshot(s, running ? VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING : 0) < 0) {
		virt_fail(err, "cannot revert domain %s to snapshot %s", domain, name);
		goto out;
	}
	rc = 0;
out:
	if (s)
		virDomainSnapshotFree(s);
	virDomainFree(d);
	return rc;
}

int virt_snapshot_delete(struct virt *v, const char *domain, const char *name, struct tuap_err *err)
{
	virDomainPtr d = dom_get(v, domain, err);
	virDomainSnapshotPtr s = NULL;
	int rc = -1;

	if (!d)
		return -1;
	s = snap_get(d, domain, name, err);
	if (!s)
		goto out;
	if (virDomainSnapshotDelete(s, 0) < 0) {
		virt_fail(err, "cannot delete snapshot %s of domain %s", name, domain);
		goto out;
	}
	rc = 0;
out:
	if (s)
		virDomainSnapshotFree(s);
	virDomainFree(d);
	return rc;
}
