/*
 * place: which hypervisor a new site goes on (pure; fleet.c feeds it libvirt's figures). The rule
 * is the original tool's (shared/notes/upstream.md, "Placement"): memory counted as committed
 * (every defined domain's maximum, running or not, plus sites being provisioned there), vCPUs
 * against the host's CPUs times cpu_overcommit, disk as the images pool's free space minus
 * reserve_disk; a hypervisor fits when the site's memory, cpus and size fit all three (and its
 * labels and max_guests allow it); of those that fit, the winner is the one whose tightest
 * resource is least tight afterwards, the first listed on a tie. `hypervisor=` pins: the pinned
 * one must still fit.
 */
#ifndef TUAP_PLACE_H
#define TUAP_PLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "settings.h"

/* One hypervisor as placement sees it. */
struct place_hv {
	const struct settings_hv *conf;
	bool up;	    /* libvirt answered */
	char why_down[512]; /* when not */
	uint64_t memory_mib, committed_mib;
	unsigned cpus, committed_vcpus, guests;
	bool disk_known;
	uint64_t disk_available; /* bytes */
	/* sites placed here whose VM libvirt does not have yet (their provisions run) */
	uint64_t pending_mib, pending_disk;
	unsigned pending_vcpus, pending_guests;
};

/* What the site asks. */
struct place_need {
	unsigned memory_mib, cpus;
	uint64_t size;	 /* bytes */
	const char *pin; /* provision.conf hypervisor=, or NULL/"" */
	const char *const *labels;
	size_t n_labels;
	bool check; /* false: one implicit hypervisor, no capacity check (a single-hypervisor
		       tuapd.conf, as before there were several) */
};

/* Whether h takes the site: 1 (with *score, the tightest resource's share left afterwards,
 * and what it leaves in why), 0 (why says what does not fit). */
int place_fit(const struct place_hv *h, const struct place_need *need, double *score, char *why,
	      size_t len);

/* The hypervisor the site goes on: its index, with why it won (and what the others lacked) in
 * why; -1 when none fits, why then holds every hypervisor's reason. */
int place_choose(const struct place_hv *hvs, size_t n, const struct place_need *need, char *why,
		 size_t len);

#endif
