/*
 * fleet: the hypervisors of tuapd.conf (settings.h, `hypervisors`), one VM manager (vmjob) each,
 * behind one phase provider. It knows where each site is (tuap's <metadata> on a hypervisor, or
 * the site's storage pool there: libvirt is the state, nothing else records it), places a new
 * site (place.h) from every hypervisor's live figures, and routes each phase, request, event and
 * status question to the hypervisor the site is on. A hypervisor that does not answer makes its
 * sites "unreachable", never lost: their journals stay, and a site that may live there is never
 * placed on another one.
 *
 * With a single hypervisor (no `hypervisors` list: the implicit entry "local") it adds nothing:
 * no capacity check, the same messages as one vmjob.
 *
 * Each vmjob has its own libvirt connection and worker thread, so a slow hypervisor delays only
 * the work queued for it. libvirt's event queue is one; the fleet drains it and hands each event
 * to the vmjob whose connection it came from.
 */
#ifndef TUAP_FLEET_H
#define TUAP_FLEET_H

#include "err.h"
#include "job.h"
#include "settings.h"

struct fleet;

/* set must outlive the fleet. Connects to nothing yet. */
struct fleet *fleet_new(const struct settings *set, struct tuap_err *err);
void fleet_free(struct fleet *f);
void fleet_provider(struct fleet *f, struct phase_provider *p);
/* Readable when a vmjob has results or libvirt has events; then call fleet_dispatch. */
int fleet_fd(const struct fleet *f);
void fleet_dispatch(struct fleet *f, struct engine *e);
/* At start, with several hypervisors: asks each for tuap's domains (so list and status know
 * where each site is) and logs the ones that do not answer. */
void fleet_scan(struct fleet *f);

#endif
