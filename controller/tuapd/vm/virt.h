/*
 * virt: tuapd's hypervisor side, on the libvirt C API only (never virsh). It owns one libvirt
 * connection (`struct virt`), the event thread that turns libvirt's domain lifecycle callbacks
 * into a file descriptor the main loop polls, the storage pools and volumes under /vms (base
 * images, overlays, seeds), the NAT management network, domains (define, start, destroy,
 * undefine, our <metadata>), snapshots and the serial console log path.
 *
 * Every function takes plain parameters (URIs, paths, names). Failures return -1 (or NULL) and
 * fill `err` with what was attempted and libvirt's own message (virGetLastErrorMessage()).
 * Lookups return 1 (found), 0 (missing) or -1 (error). libvirt's default error printing to
 * stderr is turned off: errors travel in `struct tuap_err` only.
 *
 * Files: virt.c (connection, errors, XML helpers), virt_event.c (event thread and queue),
 * virt_storage.c (pools, volumes), virt_net.c (networks, bridges), virt_domain.c (domains,
 * metadata, snapshots, console).
 */
#ifndef TUAP_VIRT_H
#define TUAP_VIRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "err.h"
#include "hash.h"
#include "meta.h"
#include "strlist.h"
#include "virtdef.h"

/* Longest domain, pool, volume, network or snapshot name we handle (DNS names fit). */
#define VIRT_NAME_MAX 256

struct virt; /* one libvirt connection; opaque */

/* ---- connection ---- */

/* Opens uri (e.g. "qemu:///system", "test:///default"). If the event thread runs
 * (virt_event_start() was called first), the connection also gets keepalives, a lifecycle
 * callback for all domains and a close callback, all delivered through virt_event_next().
 * Caller frees with virt_close. */
struct virt *virt_open(const char *uri, struct tuap_err *err);
/* A remote URI's host must take a TCP connection within this long first (virt_open fails at
 * once otherwise): libvirt's connect has no deadline of its own. */
#define VIRT_CONNECT_PROBE_MS 3000
void virt_close(struct virt *v);
const char *virt_uri(const struct virt *v);
/* The underlying connection, for callers that need an API this module does not wrap. */
virConnectPtr virt_conn(struct virt *v);

/* ---- events ---- */

enum virt_event_kind {
	VIRT_EV_LIFECYCLE, /* domain, event (virDomainEventType), detail (its *DetailType) */
	VIRT_EV_CLOSED, /* the connection to libvirtd went away (detail: virConnectCloseReason) */
};

struct virt_event {
	enum virt_event_kind kind;
	const void *conn; /* the connection it came from: virt_conn() of one struct virt */
	char domain[VIRT_NAME_MAX]; /* "" for VIRT_EV_CLOSED */
	int event;
	int detail;
};

/* Registers libvirt's default event implementation and runs virEventRunDefaultImpl in a
 * dedicated thread. Call once, before virt_open. */
int virt_event_start(struct tuap_err *err);
/* Stops and joins the thread (close connections first). Safe when not started. */
void virt_event_stop(void);
/* Readable when events are queued; poll it, then drain with virt_event_next. -1 if stopped. */
int virt_event_fd(void);
/* Takes the oldest queued event: 1 when ev was filled, 0 when the queue is empty. */
int virt_event_next(struct virt_event *ev);
/* Events lost because the queue (VIRT_EVENT_QUEUE) was full; counted since start. */
#define VIRT_EVENT_QUEUE 512
unsigned long virt_event_dropped(void);
/* "started/booted", "stopped/destroyed", "connection closed/eof", ... */
const char *virt_event_str(const struct virt_event *ev, char *buf, size_t len);

/* ---- capacity (placement, tuap-ctl hypervisors) ---- */

struct virt_capacity {
	uint64_t memory_kib;	  /* the host's memory (virNodeGetInfo) */
	unsigned cpus;		  /* the host's CPUs */
	uint64_t committed_kib;	  /* every defined domain's maximum memory, running or not */
	unsigned committed_vcpus; /* and their vCPUs */
	unsigned guests;	  /* defined domains, tuap's or not */
	bool disk_known;	  /* the pool exists (its figures below) */
	uint64_t disk_capacity;	  /* bytes of the pool's file system */
	uint64_t disk_available;  /* bytes free there */
	struct strlist domains;	  /* the names of the defined domains; caller frees */
};

/* Fills c from libvirt's node info, every defined domain's info and pool's info (pool may be
 * missing: disk_known false). */
int virt_capacity(struct virt *v, const char *pool, struct virt_capacity *c, struct tuap_err *err);
/* 1 when storage pool `name` is defined, 0 when not. */
int virt_pool_exists(struct virt *v, const char *name, struct tuap_err *err);

/* ---- storage pools (type dir) ---- */

/* Makes sure pool `name` exists with target dir_path: defined, built (the directory is
 * created), started and set to autostart when missing; started and set to autostart when
 * present but inactive. A pool of that name at another path is an error. */
int virt_pool_ensure(struct virt *v, const char *name, const char *dir_path, struct tuap_err *err);
/* Deletes every volume of the pool, then stops it, removes its directory and undefines it.
 * A missing pool is not an error. */
int virt_pool_delete(struct virt *v, const char *name, struct tuap_err *err);

/* ---- volumes ---- */

struct virt_vol_info {
	uint64_t capacity; /* guest-visible size (virtual size of a qcow2) */
	uint64_t physical; /* bytes of the file on the hypervisor */
	char path[4096];
};

/* Looks volume `name` up in `pool`; fills info (may be NULL) when found. 1/0/-1. */
int virt_vol_lookup(struct virt *v, const char *pool, const char *name, struct virt_vol_info *info,
		    struct tuap_err *err);
/* Uploads the local file src_path as volume `name` (a byte-exact copy; libvirt probes the
 * format on refresh). Volume names are content-hashed (virt_vol_name), so an existing volume
 * of the same name whose file has the same size is kept as is; one of another size is the
 * remnant of an interrupted upload and is replaced. A failed upload deletes the volume, as
 * does one progress stops (file_progress_fn). */
int virt_vol_upload(struct virt *v, const char *pool, const char *name, const char *src_path,
		    file_progress_fn progress, void *arg, struct tuap_err *err);
/* Creates qcow2 volume `name` in `pool` with base_path (a qcow2 volume of some pool) as its
 * backing store, then resizes it to size bytes. size below the base's virtual size is an
 * error (that would cut the guest's file system). An existing volume is an error. */
int virt_vol_create_overlay(struct virt *v, const char *pool, const char *name,
			    const char *base_path, uint64_t size, struct tuap_err *err);
/* The last max bytes (at most) of volume `name` of `pool`, read through libvirt (the console log
 * of a remote hypervisor): into out, *len bytes from offset *from. 1 read, 0 no such pool or
 * volume, -1 error. */
int virt_vol_read_tail(struct virt *v, const char *pool, const char *name, size_t max, char *out,
		       size_t *len, uint64_t *from, struct tuap_err *err);
/* Deletes volume `name` of `pool`; a missing volume is not an error. */
int virt_vol_delete(struct virt *v, const char *pool, const char *name, struct tuap_err *err);
/* Writes "PREFIX-<first 16 hex of sha256>.EXT" into out: the content-hashed volume name.
 * prefix: [A-Za-z0-9._-], not starting with '.'; ext: [a-z0-9]. */
int virt_vol_name(char *out, size_t len, const char *prefix, const char *sha256_hex,
		  const char *ext, struct tuap_err *err);

/* ---- networks ---- */

/* Makes sure the NAT network `name` exists, is active and autostarts: bridge `bridge`, the
 * subnet's first address as the host side, DHCP over the rest (subnet_cidr: "10.77.77.0/24",
 * prefix 8..29). An existing network with another address, prefix or forward mode is an
 * error naming both. */
int virt_network_ensure_nat(struct virt *v, const char *name, const char *subnet_cidr,
			    const char *bridge, struct tuap_err *err);
/* Stops and undefines network `name`; a missing network is not an error. */
int virt_network_delete(struct virt *v, const char *name, struct tuap_err *err);
/* The public bridge check, and what an existing network or pool must look like: virtdef.h. */

/* ---- domains ---- */

enum virt_state {
	VIRT_STATE_SHUTOFF,
	VIRT_STATE_RUNNING,
	VIRT_STATE_PAUSED,
	VIRT_STATE_OTHER, /* blocked, shutting down, crashed, suspended to memory */
};

/* Defines (or redefines) the domain from its XML, validated against libvirt's schema
 * (VIR_DOMAIN_DEFINE_VALIDATE). */
int virt_domain_define(struct virt *v, const char *xml, struct tuap_err *err);
/* 1 when domain `name` is defined, 0 when not. */
int virt_domain_exists(struct virt *v, const char *name, struct tuap_err *err);
int virt_domain_set_autostart(struct virt *v, const char *name, int on, struct tuap_err *err);
/* Starts the domain; one that already runs is left alone. */
int virt_domain_start(struct virt *v, const char *name, struct tuap_err *err);
/* Powers the domain off at once; a domain that is not running is left alone. */
int virt_domain_destroy(struct virt *v, const char *name, struct tuap_err *err);
/* Undefines the domain with its snapshot and checkpoint metadata, managed save image and (when
 * it has one) nvram. A missing domain is not an error; a running one becomes transient and
 * goes away when destroyed. */
int virt_domain_undefine(struct virt *v, const char *name, struct tuap_err *err);
int virt_domain_state(struct virt *v, const char *name, enum virt_state *state,
		      struct tuap_err *err);
const char *virt_state_name(enum virt_state state);
/* Path of the file the serial console is logged to (<serial type='file'> source or a
 * <log file=...> of a serial/console device). 1 found, 0 none, -1 error. */
int virt_domain_console_log(struct virt *v, const char *name, char *path, size_t len,
			    struct tuap_err *err);

/* ---- our metadata ---- */

/* What tuap stores in the domain's <metadata> (namespace META_NS):
 *   <tuap:domain xmlns:tuap="https://tuap.dev/xmlns/domain/1">
 *     <tuap:version>0.1.0</tuap:version>
 *     <tuap:provision-id>...</tuap:provision-id>
 *     <tuap:instance-id>...</tuap:instance-id>
 *     <tuap:agent-public-key>Z85 CURVE public key</tuap:agent-public-key>
 *     <tuap:image>debian-12</tuap:image>
 *   </tuap:domain>
 * (the element domxml_render writes; the parser also takes the older name <tuap:agent-key>).
 * virDomainGetMetadata hands the element back with the namespace stripped, so the parser also
 * takes elements in no namespace. Unknown child elements are ignored (a newer tuap may add
 * some); a missing field is "". */
/* 1 when the domain carries our metadata (m, which may be NULL, gets its fields), 0 when it
 * is not tuap's, -1 on error (including a tuap element we cannot parse). */
int virt_domain_is_ours(struct virt *v, const char *name, struct tuap_meta *m,
			struct tuap_err *err);
/* Ejects the media of the domain's cdroms (the seed, which holds the agent's secret key):
 * persistent definition and, if the domain runs, live. Returns how many were ejected, or -1. */
int virt_domain_eject_cdroms(struct virt *v, const char *name, struct tuap_err *err);
/* Replaces our metadata, in the persistent definition and, if the domain runs, live. */
int virt_domain_set_meta(struct virt *v, const char *name, const struct tuap_meta *m,
			 struct tuap_err *err);
/* Appends the names of all defined domains that are ours, sorted; on error names may hold
 * none of them. */
int virt_domain_list_ours(struct virt *v, struct strlist *names, struct tuap_err *err);

/* ---- snapshots (internal, qcow2) ---- */

struct virt_snapshot {
	char name[VIRT_NAME_MAX];
	long long created; /* seconds since the epoch */
	char state[32];	   /* domain state recorded: "running", "shutoff", ... */
	int current;	   /* 1 for the domain's current snapshot */
};

/* Creates an internal snapshot (atomic) of the domain, named `name` or, when NULL or "", after
 * the UTC time ("tuap-20261125-093000"); the name used goes to out. */
int virt_snapshot_create(struct virt *v, const char *domain, const char *name, char *out,
			 size_t outlen, struct tuap_err *err);
/* The domain's snapshots, oldest first. Caller frees *list with free(). */
int virt_snapshot_list(struct virt *v, const char *domain, struct virt_snapshot **list, size_t *n,
		       struct tuap_err *err);
/* Reverts to the snapshot; running: start the domain afterwards whatever the snapshot's state. */
int virt_snapshot_revert(struct virt *v, const char *domain, const char *name, int running,
			 struct tuap_err *err);
int virt_snapshot_delete(struct virt *v, const char *domain, const char *name,
			 struct tuap_err *err);

#endif
