/*
 * Networks: the libvirt NAT network that carries the management NIC (and DHCP) of every guest.
 * What an existing one must look like, and the public bridge check, are in render/virtdef.c.
 */
#include "virt_priv.h"

#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

static char *network_xml(const char *name, const struct virtdef_subnet *s, const char *bridge,
			 struct tuap_err *err)
{
	struct xw x;

	xw_open(&x);
	xw_start(&x, "network");
	xw_elem(&x, "name", name);
	xw_start(&x, "forward");
	xw_attr(&x, "mode", "nat");
	xw_end(&x);
	xw_start(&x, "bridge");
	xw_attr(&x, "name", bridge);
	xw_attr(&x, "stp", "on");
	xw_attr(&x, "delay", "0");
	xw_end(&x);
	xw_start(&x, "ip");
	xw_attr(&x, "address", s->gateway);
	xw_attr(&x, "prefix", s->prefix);
	xw_start(&x, "dhcp");
	xw_start(&x, "range");
	xw_attr(&x, "start", s->dhcp_start);
	xw_attr(&x, "end", s->dhcp_end);
	xw_end(&x);
	xw_end(&x);
	xw_end(&x);
	xw_end(&x);
	return xw_finish(&x, "network", err);
}

/* An existing network must be the one we would have defined (virtdef_network_check). */
static int network_check_existing(virNetworkPtr net, const char *name,
				  const struct virtdef_subnet *s, const char *bridge,
				  struct tuap_err *err)
{
	char *xml = virNetworkGetXMLDesc(net, 0);
	int rc;

	if (!xml)
		return virt_fail(err, "cannot read the definition of network %s", name);
	rc = virtdef_network_check(xml, strlen(xml), name, s, bridge, err);
	free(xml);
	return rc;
}

int virt_network_ensure_nat(struct virt *v, const char *name, const char *subnet_cidr,
			    const char *bridge, struct tuap_err *err)
{
	virNetworkPtr net = NULL;
	struct virtdef_subnet s;
	char *xml = NULL;
	int rc = -1, active, autostart = 0;

	if (!virt_name_ok(name))
		return err_set(err, "'%s' is not a valid network name", name);
	if (!virtdef_bridge_name_ok(bridge))
		return err_set(err,
			       "'%s' is not a valid bridge name (1-%d characters, no '/', "
			       "':' or blanks)",
			       bridge, IFNAMSIZ - 1);
	if (virtdef_subnet(subnet_cidr, &s, err) < 0)
		return -1;
	net = virNetworkLookupByName(v->conn, name);
	if (!net && !virt_last_error_is(VIR_ERR_NO_NETWORK)) {
		virt_fail(err, "cannot look up network %s", name);
		goto out;
	}
	if (net && network_check_existing(net, name, &s, bridge, err) < 0)
		goto out;
	if (!net) {
		xml = network_xml(name, &s, bridge, err);
		if (!xml)
			goto out;
		net = virNetworkDefineXML(v->conn, xml);
		if (!net) {
			virt_fail(err, "cannot define network %s", name);
			goto out;
		}
	}
	active = virNetworkIsActive(net);
	if (active < 0 || (!active && virNetworkCreate(net) < 0)) {
		virt_fail(err, "cannot start network %s", name);
		goto out;
	}
	if (virNetworkGetAutostart(net, &autostart) < 0 ||
	    (!autostart && virNetworkSetAutostart(net, 1) < 0)) {
		virt_fail(err, "cannot set network %s to autostart", name);
		goto out;
	}
	rc = 0;
out:
	free(xml);
	if (net)
		virNetworkFree(net);
	return rc;
}

int virt_network_delete(struct virt *v, const char *name, struct tuap_err *err)
{
	virNetworkPtr net = virNetworkLookupByName(v->conn, name);
	int rc = -1;

	if (!net) {
		if (virt_last_error_is(VIR_ERR_NO_NETWORK))
			return 0;
		return virt_fail(err, "cannot look up network %s", name);
	}
	if (virNetworkIsActive(net) == 1 && virNetworkDestroy(net) < 0) {
		virt_fail(err, "cannot stop network %s", name);
		goto out;
	}
	if (virNetworkUndefine(net) < 0) {
		virt_fail(err, "cannot undefine network %s", name);
		goto out;
	}
	rc = 0;
out:
	virNetworkFree(net);
	return rc;
}
