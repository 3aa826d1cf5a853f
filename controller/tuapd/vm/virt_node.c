/*
 * What a hypervisor has and has promised, for placement and `tuap-ctl hypervisors` (virt.h,
 * "capacity"): the host's memory and CPUs, the memory and vCPUs every defined domain may take,
 * and the free space of a storage pool.
 */
#include <stdlib.h>

#include "virt_priv.h"

int virt_capacity(struct virt *v, const char *pool, struct virt_capacity *c, struct tuap_err *err)
{
	virNodeInfo node;
	virDomainPtr *doms = NULL;
	virStoragePoolPtr p;
	int nd;

	c->memory_kib = c->committed_kib = 0;
	c->cpus = c->committed_vcpus = c->guests = 0;
	c->disk_known = false;
	c->disk_capacity = c->disk_available = 0;
	if (virNodeGetInfo(v->conn, &node) < 0)
		return virt_fail(err, "%s: cannot read the host's memory and CPUs", v->uri);
	c->memory_kib = node.memory;
	c->cpus = node.cpus;
	nd = virConnectListAllDomains(v->conn, &doms, 0);
	if (nd < 0)
		return virt_fail(err, "%s: cannot list domains", v->uri);
	for (int i = 0; i < nd; i++) {
		virDomainInfo info;

		/* a domain undefined meanwhile promises nothing any more */
		if (virDomainGetInfo(doms[i], &info) == 0) {
			c->committed_kib += info.maxMem;
			c->committed_vcpus += info.nrVirtCpu;
			c->guests++;
			strlist_add(&c->domains, virDomainGetName(doms[i]));
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	p = pool ? virStoragePoolLookupByName(v->conn, pool) : NULL;
	if (p) {
		virStoragePoolInfo pi;

		if (virStoragePoolIsActive(p) == 1 && virStoragePoolGetInfo(p, &pi) == 0) {
			c->disk_known = true;
			c->disk_capacity = pi.capacity;
			c->disk_available = pi.available;
		}
		virStoragePoolFree(p);
	}
	return 0;
}

int virt_pool_exists(struct virt *v, const char *name, struct tuap_err *err)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(v->conn, name);

	if (p) {
		virStoragePoolFree(p);
		return 1;
	}
	if (virt_last_error_is(VIR_ERR_NO_STORAGE_POOL))
		return 0;
	return virt_fail(err, "%s: cannot look storage pool %s up", v->uri, name);
}
