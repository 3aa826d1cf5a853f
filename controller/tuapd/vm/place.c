/*
 * Placement of a site on one of tuapd.conf's hypervisors (place.h).
 */
#include "place.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define GIB (1024.0 * 1024.0 * 1024.0)

static void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

static bool has_label(const struct settings_hv *hv, const char *label)
{
	for (size_t i = 0; i < hv->n_labels; i++)
		if (!strcmp(hv->labels[i], label))
			return true;
	return false;
}

int place_fit(const struct place_hv *h, const struct place_need *need, double *score, char *why,
	      size_t len)
{
	const struct settings_hv *c = h->conf;
	double mem_cap, mem_left, cpu_cap, cpu_left, disk_cap = 0, disk_left = 0, s;

	if (!h->up) {
		say(why, len, "unreachable: %s", h->why_down);
		return 0;
	}
	for (size_t i = 0; i < need->n_labels; i++)
		if (!has_label(c, need->labels[i])) {
			say(why, len, "has no label %s", need->labels[i]);
			return 0;
		}
	mem_cap = (double)h->memory_mib - (double)c->reserve_memory_mib;
	mem_left = mem_cap - (double)h->committed_mib - (double)h->pending_mib -
		   (double)need->memory_mib;
	cpu_cap = ((double)h->cpus - (double)c->reserve_cpus) * c->cpu_overcommit;
	cpu_left = cpu_cap - (double)h->committed_vcpus - (double)h->pending_vcpus -
		   (double)need->cpus;
	if (h->disk_known) {
		disk_cap = (double)h->disk_available - (double)c->reserve_disk_gib * GIB;
		disk_left = disk_cap - (double)h->pending_disk - (double)need->size;
	}
	if (need->check) {
		if (mem_left < 0) {
			say(why, len,
			    "memory: %u MiB asked, %.0f MiB free (%llu MiB, %u kept for the host, "
			    "%llu committed to its domains%s)",
			    need->memory_mib,
			    mem_left + need->memory_mib > 0 ? mem_left + need->memory_mib : 0,
			    (unsigned long long)h->memory_mib, c->reserve_memory_mib,
			    (unsigned long long)(h->committed_mib + h->pending_mib),
			    h->pending_mib ? ", sites being provisioned included" : "");
			return 0;
		}
		if (cpu_left < 0) {
			say(why, len,
			    "vCPUs: %u asked, %.0f free ((%u CPUs - %u kept) x %.1f, %u committed)",
			    need->cpus, cpu_left + need->cpus > 0 ? cpu_left + need->cpus : 0,
			    h->cpus, c->reserve_cpus, c->cpu_overcommit,
			    h->committed_vcpus + h->pending_vcpus);
			return 0;
		}
		if (h->disk_known && disk_left < 0) {
			say(why, len,
			    "disk: %.1f GiB asked, %.1f GiB free in its images pool after the %u "
			    "GiB "
			    "kept (reserve_disk)",
			    (double)need->size / GIB,
			    disk_cap - (double)h->pending_disk > 0
				    ? (disk_cap - (double)h->pending_disk) / GIB
				    : 0,
			    c->reserve_disk_gib);
			return 0;
		}
		if (c->max_guests && h->guests + h->pending_guests + 1 > c->max_guests) {
			say(why, len, "guests: %u of max_guests %u already",
			    h->guests + h->pending_guests, c->max_guests);
			return 0;
		}
	}
	s = mem_cap > 0 ? mem_left / mem_cap : 0;
	if (cpu_cap > 0 && cpu_left / cpu_cap < s)
		s = cpu_left / cpu_cap;
	if (h->disk_known && disk_cap > 0 && disk_left / disk_cap < s)
		s = disk_left / disk_cap;
	*score = s;
	if (h->disk_known)
		say(why, len, "memory %.1f GiB, vCPUs %.0f, disk %.1f GiB free after",
		    mem_left / 1024.0, cpu_left, disk_left / GIB);
	else
		say(why, len,
		    "memory %.1f GiB, vCPUs %.0f free after, disk not known yet (no tuap-images "
		    "pool)",
		    mem_left / 1024.0, cpu_left);
	return 1;
}

/* Appends "; NAME: TEXT" (or "NAME: TEXT" first) to out. */
static void add(char *out, size_t len, const char *name, const char *text)
{
	size_t n = strlen(out);

	if (n + 1 < len)
		snprintf(out + n, len - n, "%s%s: %s", n ? "; " : "", name, text);
}

int place_choose(const struct place_hv *hvs, size_t n, const struct place_need *need, char *why,
		 size_t len)
{
	char one[600], best_why[600] = "", others[2048] = "";
	double score, best_score = 0;
	int best = -1;

	why[0] = '\0';
	if (need->pin && *need->pin) {
		for (size_t i = 0; i < n; i++) {
			if (strcmp(hvs[i].conf->name, need->pin))
				continue;
			if (!place_fit(&hvs[i], need, &score, one, sizeof(one))) {
				say(why, len, "%s (hypervisor=%s) does not fit: %s", need->pin,
				    need->pin, one);
				return -1;
			}
			say(why, len, "%s: pinned by hypervisor=%s; %s", need->pin, need->pin, one);
			return (int)i;
		}
		say(why, len,
		    "hypervisor=%s names no hypervisor of tuapd.conf (it has:", need->pin);
		for (size_t i = 0; i < n; i++)
			snprintf(why + strlen(why), len - strlen(why), " %s", hvs[i].conf->name);
		snprintf(why + strlen(why), len - strlen(why), ")");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!place_fit(&hvs[i], need, &score, one, sizeof(one))) {
			add(others, sizeof(others), hvs[i].conf->name, one);
			continue;
		}
		if (best < 0 || score > best_score) {
			if (best >= 0)
				add(others, sizeof(others), hvs[best].conf->name, best_why);
			best = (int)i;
			best_score = score;
			snprintf(best_why, sizeof(best_why), "%s", one);
		} else {
			add(others, sizeof(others), hvs[i].conf->name, one);
		}
	}
	if (best < 0) {
		say(why, len, "none fits: %s", others);
		return -1;
	}
	if (n == 1)
		say(why, len, "%s: the only hypervisor; %s", hvs[best].conf->name, best_why);
	else
		say(why, len, "%s: placed, its tightest resource least tight after (%s)%s%s%s",
		    hvs[best].conf->name, best_why, others[0] ? "; others: " : "", others, "");
	return best;
}
