/*
 * tuap-ctl doctor's internals, shared by doctor.c (the host, tuapd, the agent port, the
 * firewall, the clock, the command) and doctor_virt.c (libvirt, its network and pools, the
 * bridge, space and the catalog's images). Nothing else includes this.
 */
#ifndef TUAP_DOCTOR_CHECKS_H
#define TUAP_DOCTOR_CHECKS_H

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ctlclient.h"
#include "doctor.h"
#include "fsutil.h"
#include "hash.h"
#include "image.h"
#include "settings.h"
#include "subproc.h"
#include "virtdef.h"

#define VIRSH_DEADLINE_MS 15000
#define TUAPD_DEADLINE_MS 10000
#define TOOL_DEADLINE_MS  5000
#define HASH_DEADLINE_S	  300
#define DOCTOR_POOLS_MAX  4096

struct doctor {
	struct settings s;
	char conf[4096];
	struct doctor_report r;
	bool virsh, libvirt; /* virsh found; libvirt answered */
	bool tuapd;	     /* tuapd answered */
	bool socket_denied;  /* the socket exists but the caller may not use it */
	uid_t tuapd_uid;     /* the control socket's owner, when it exists */
	bool tuapd_uid_known;
	uint64_t growth;	/* how much the domains' volumes may still grow */
	size_t n_volumes_pools; /* domain pools whose volumes were summed */
};

/* A program's message: its lines joined by "; " (virsh says the cause on its second line). */
const char *doctor_first_line(const struct buf *b, char *out, size_t len);

/* doctor_virt.c */
void doctor_check_libvirt(struct doctor *d);
void doctor_check_hypervisors(struct doctor *d);
void doctor_check_network(struct doctor *d);
void doctor_check_pools(struct doctor *d);
void doctor_check_bridge(struct doctor *d);
void doctor_check_space(struct doctor *d);
void doctor_check_images(struct doctor *d);

#endif
