/* Rendering a job's events for the operator; see progress.h. */
#include "progress.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "names.h"

void progress_bytes(unsigned long long n, char *out, size_t len)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(out, len, "%llu B", n);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, "%.1f %s", v, unit[u]);
}

void progress_init(struct progress *p, FILE *out, bool json)
{
	struct winsize ws;

	memset(p, 0, sizeof(*p));
	p->out = out;
	p->last_pct = -1;
	p->width = 80;
	if (json)
		p->mode = PROGRESS_JSON;
	else if (isatty(fileno(out)))
		p->mode = PROGRESS_TTY;
	else
		p->mode = PROGRESS_PLAIN;
	if (p->mode == PROGRESS_TTY && ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
		p->width = ws.ws_col;
}

static void clear_status(struct progress *p)
{
	if (p->mode == PROGRESS_TTY && p->status_shown) {
		fputs("\r\033[K", p->out);
		p->status_shown = false;
	}
}

static void show_status(struct progress *p)
{
	if (p->mode == PROGRESS_TTY && p->status[0]) {
		fprintf(p->out, "\r\033[K%.*s", p->width - 1, p->status);
		p->status_shown = true;
		fflush(p->out);
	}
}

/* One output line, above the status line on a terminal. */
static void line(struct progress *p, const Tuap__CtlEvent *ev, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void line(struct progress *p, const Tuap__CtlEvent *ev, const char *fmt, ...)
{
	va_list ap;

	clear_status(p);
	if (ev && ev->has_elapsed_ms)
		fprintf(p->out, "[%7.1fs] ", (double)ev->elapsed_ms / 1000.0);
	va_start(ap, fmt);
	vfprintf(p->out, fmt, ap);
	va_end(ap);
	fputc('\n', p->out);
	show_status(p);
	fflush(p->out);
}

static void progress_line(struct progress *p, const Tuap__CtlEvent *ev, const char *name,
			  unsigned long long done, unsigned long long total)
{
	char d[32], t[32];
	int pct = total ? (int)(done * 100 / total) : -1;

	progress_bytes(done, d, sizeof(d));
	progress_bytes(total, t, sizeof(t));
	if (p->mode == PROGRESS_TTY) {
		char bar[41];
		int fill = pct < 0 ? 0 : pct * 40 / 100;

		for (int i = 0; i < 40; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[40] = '\0';
		if (total)
			snprintf(p->status, sizeof(p->status), "%s [%s] %3d%% %s / %s  %.0fs", name,
				 bar, pct, d, t, ev->has_elapsed_ms ? ev->elapsed_ms / 1000.0 : 0);
		else
			snprintf(p->status, sizeof(p->status), "%s %llu done", name, done);
		show_status(p);
		return;
	}
	/* plain: every 10 %, so a log file gets a readable trace, not thousands of lines */
	if (strcmp(p->phase, name)) {
		snprintf(p->phase, sizeof(p->phase), "%s", name);
		p->last_pct = -1;
	}
	if (pct >= 0 && pct / 10 == p->last_pct / 10 && p->last_pct >= 0)
		return;
	p->last_pct = pct;
	if (total)
		line(p, ev, "%s: %d%% (%s of %s)", name, pct, d, t);
	else
		line(p, ev, "%s: %llu done", name, done);
}

static void phase_event(struct progress *p, const Tuap__CtlEvent *ev, const Tuap__PhaseEvent *ph)
{
	const char *msg = ph->message ? ph->message : "";
	const char *sep = *msg ? ": " : "";

	switch (ph->state) {
	case TUAP__PHASE_EVENT__STATE__STARTED:
		p->status[0] = '\0';
		line(p, ev, "%s: started%s%s", ph->phase, sep, msg);
		if (p->mode == PROGRESS_TTY)
			snprintf(p->status, sizeof(p->status), "%s ...", ph->phase);
		break;
	case TUAP__PHASE_EVENT__STATE__PROGRESS:
		if (!ph->total && *msg) { /* a step told in words (the push to a host) */
			if (p->mode == PROGRESS_TTY) {
				snprintf(p->status, sizeof(p->status), "%s: %s", ph->phase, msg);
				show_status(p);
			} else {
				line(p, ev, "%s: %s", ph->phase, msg);
			}
			break;
		}
		progress_line(p, ev, ph->phase, ph->done, ph->total);
		break;
	case TUAP__PHASE_EVENT__STATE__DONE:
		p->status[0] = '\0';
		line(p, ev, "%s: done in %.1fs%s%s", ph->phase, (double)ph->phase_ms / 1000.0, sep,
		     msg);
		break;
	default: /* FAILED, STALLED */
		p->status[0] = '\0';
		line(p, ev, "%s: %s%s%s", ph->phase,
		     ph->state == TUAP__PHASE_EVENT__STATE__STALLED ? "STALLED" : "FAILED", sep,
		     msg);
		for (size_t i = 0; i < ph->n_lines; i++)
			line(p, NULL, "    | %s", ph->lines[i]);
		break;
	}
}

static void step_event(struct progress *p, const Tuap__CtlEvent *ev, const Tuap__StepEvent *st)
{
	const char *name = step_name(st->step);
	const char *msg = st->message ? st->message : "";
	const char *sep = *msg ? ": " : "";

	switch (st->state) {
	case TUAP__STEP_STATE__STATE_STARTED:
		line(p, ev, "%s: started%s%s", name, sep, msg);
		if (p->mode == PROGRESS_TTY)
			snprintf(p->status, sizeof(p->status), "%s ...", name);
		break;
	case TUAP__STEP_STATE__STATE_PROGRESS:
		progress_line(p, ev, name, st->done, st->total);
		break;
	case TUAP__STEP_STATE__STATE_LOG:
		for (size_t i = 0; i < st->n_lines; i++)
			line(p, NULL, "%8s| %s", name, st->lines[i]);
		break;
	case TUAP__STEP_STATE__STATE_DONE:
		p->status[0] = '\0';
		if (st->has_exit_code)
			line(p, ev, "%s: done (exit %d)%s%s", name, st->exit_code, sep, msg);
		else
			line(p, ev, "%s: done%s%s", name, sep, msg);
		break;
	default:
		p->status[0] = '\0';
		if (st->has_exit_code)
			line(p, ev, "%s: %s (exit %d)%s%s", name,
			     st->state == TUAP__STEP_STATE__STATE_INTERRUPTED ? "INTERRUPTED"
									      : "FAILED",
			     st->exit_code, sep, msg);
		else
			line(p, ev, "%s: %s%s%s", name,
			     st->state == TUAP__STEP_STATE__STATE_INTERRUPTED ? "INTERRUPTED"
									      : "FAILED",
			     sep, msg);
		break;
	}
}

static void status_table(struct progress *p, Tuap__DomainStatus **v, size_t n)
{
	if (n == 0) {
		line(p, NULL, "no domains");
		return;
	}
	line(p, NULL, "%-28s %-12s %-14s %-12s %-10s %s", "DOMAIN", "HYPERVISOR", "VM", "JOB",
	     "PHASE", "AGENT");
	for (size_t i = 0; i < n; i++) {
		const Tuap__DomainStatus *s = v[i];

		line(p, NULL, "%-28s %-12s %-14s %-12s %-10s %s", s->domain,
		     s->hypervisor ? s->hypervisor : "-", s->vm_state ? s->vm_state : "-",
		     s->job_state ? s->job_state : "-", s->phase ? s->phase : "-",
		     s->agent_version ? s->agent_version : "-");
		if (s->n_steps) {
			char steps[256];
			size_t k = 0;

			for (size_t j = 0; j < s->n_steps && k < sizeof(steps); j++)
				k += (size_t)snprintf(steps + k, sizeof(steps) - k, "%s%s %s",
						      j ? ", " : "", step_name(s->steps[j]->step),
						      step_state_name(s->steps[j]->state));
			line(p, NULL, "  steps: %s", steps);
		}
	}
}

#define MIB_GIB(x) ((double)(x) / 1024.0)

static void hypervisor_table(struct progress *p, const Tuap__HypervisorsReply *r)
{
	line(p, NULL, "%-12s %-11s %-14s %-12s %-10s %-7s %-6s %s", "NAME", "STATE", "MEMORY GiB",
	     "VCPUS", "DISK GiB", "GUESTS", "SITES", "URI / LABELS");
	for (size_t i = 0; i < r->n_hypervisors; i++) {
		const Tuap__HypervisorInfo *h = r->hypervisors[i];
		char mem[32] = "-", cpu[32] = "-", disk[32] = "-", guests[16] = "-",
		     sites[16] = "-";
		char labels[600] = "";

		for (size_t k = 0; k < h->n_labels; k++)
			snprintf(labels + strlen(labels), sizeof(labels) - strlen(labels), "%s%s",
				 k ? "," : " [", h->labels[k]);
		if (h->n_labels)
			snprintf(labels + strlen(labels), sizeof(labels) - strlen(labels), "]");
		if (h->has_memory_total_mib) {
			/* committed of what guests may have (host memory less reserve_memory) */
			snprintf(mem, sizeof(mem), "%.1f/%.1f", MIB_GIB(h->memory_committed_mib),
				 MIB_GIB(h->memory_total_mib > h->memory_reserved_mib
						 ? h->memory_total_mib - h->memory_reserved_mib
						 : 0));
			snprintf(cpu, sizeof(cpu), "%u/%.0f", h->vcpus_committed,
				 (h->cpus > h->cpus_reserved ? h->cpus - h->cpus_reserved : 0) *
					 h->cpu_overcommit);
			snprintf(guests, sizeof(guests), "%u", h->guests);
			snprintf(sites, sizeof(sites), "%u", h->sites);
		}
		if (h->has_disk_free_bytes)
			snprintf(disk, sizeof(disk), "%.1f free",
				 (double)h->disk_free_bytes / 1073741824.0);
		line(p, NULL, "%-12s %-11s %-14s %-12s %-10s %-7s %-6s %s%s", h->name, h->state,
		     mem, cpu, disk, guests, sites, h->uri, labels);
		if (h->error && *h->error)
			line(p, NULL, "  %s: %s", h->name, h->error);
	}
}

#define ADD_STR(k, v) json_object_object_add(o, k, json_object_new_string(v))
#define ADD_INT(k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
static json_object *hypervisors_json(const Tuap__HypervisorsReply *r)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < r->n_hypervisors; i++) {
		const Tuap__HypervisorInfo *h = r->hypervisors[i];
		json_object *o = json_object_new_object(), *labels = json_object_new_array();

		ADD_STR("name", h->name);
		ADD_STR("state", h->state);
		ADD_STR("uri", h->uri);
		if (h->error)
			ADD_STR("error", h->error);
		if (h->has_memory_total_mib) {
			ADD_INT("memory_total_mib", h->memory_total_mib);
			ADD_INT("memory_committed_mib", h->memory_committed_mib);
			ADD_INT("cpus", h->cpus);
			ADD_INT("vcpus_committed", h->vcpus_committed);
			ADD_INT("guests", h->guests);
			ADD_INT("sites", h->sites);
		}
		ADD_INT("memory_reserved_mib", h->memory_reserved_mib);
		ADD_INT("cpus_reserved", h->cpus_reserved);
		json_object_object_add(o, "cpu_overcommit",
				       json_object_new_double(h->cpu_overcommit));
		ADD_INT("max_guests", h->max_guests);
		ADD_INT("disk_reserved_bytes", h->disk_reserved_bytes);
		if (h->has_disk_free_bytes)
			ADD_INT("disk_free_bytes", h->disk_free_bytes);
		for (size_t k = 0; k < h->n_labels; k++)
			json_object_array_add(labels, json_object_new_string(h->labels[k]));
		json_object_object_add(o, "labels", labels);
		json_object_array_add(a, o);
	}
	return a;
}
#undef ADD_STR
#undef ADD_INT

static void lines_json(json_object *o, const char *key, char **lines, size_t n)
{
	json_object *a;

	if (!n)
		return;
	a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(lines[i]));
	json_object_object_add(o, key, a);
}

static void json_event(struct progress *p, const Tuap__CtlEvent *ev)
{
	json_object *o = json_object_new_object();

#define ADD_STR(k, v) json_object_object_add(o, k, json_object_new_string(v))
#define ADD_INT(k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
	if (ev->has_unix_ms)
		ADD_INT("unix_ms", ev->unix_ms);
	if (ev->has_elapsed_ms)
		ADD_INT("elapsed_ms", ev->elapsed_ms);
	if (ev->domain)
		ADD_STR("domain", ev->domain);
	if (ev->job_id)
		ADD_STR("job", ev->job_id);
	switch (ev->ev_case) {
	case TUAP__CTL_EVENT__EV_PHASE:
		ADD_STR("type", "phase");
		ADD_STR("name", ev->phase->phase);
		ADD_STR("state", phase_state_name(ev->phase->state));
		if (ev->phase->has_done)
			ADD_INT("done", ev->phase->done);
		if (ev->phase->has_total)
			ADD_INT("total", ev->phase->total);
		if (ev->phase->has_phase_ms)
			ADD_INT("phase_ms", ev->phase->phase_ms);
		if (ev->phase->message)
			ADD_STR("message", ev->phase->message);
		lines_json(o, "lines", ev->phase->lines, ev->phase->n_lines);
		break;
	case TUAP__CTL_EVENT__EV_STEP:
		ADD_STR("type", "step");
		ADD_STR("name", step_name(ev->step->step));
		ADD_STR("state", step_state_name(ev->step->state));
		if (ev->step->has_done)
			ADD_INT("done", ev->step->done);
		if (ev->step->has_total)
			ADD_INT("total", ev->step->total);
		if (ev->step->has_exit_code)
			ADD_INT("exit_code", ev->step->exit_code);
		if (ev->step->message)
			ADD_STR("message", ev->step->message);
		lines_json(o, "lines", ev->step->lines, ev->step->n_lines);
		break;
	case TUAP__CTL_EVENT__EV_ERROR:
		ADD_STR("type", "error");
		ADD_STR("message", ev->error->message ? ev->error->message : "");
		break;
	case TUAP__CTL_EVENT__EV_TEXT:
		ADD_STR("type", "text");
		lines_json(o, "lines", ev->text->lines, ev->text->n_lines);
		break;
	case TUAP__CTL_EVENT__EV_HYPERVISORS:
		ADD_STR("type", "hypervisors");
		json_object_object_add(o, "hypervisors", hypervisors_json(ev->hypervisors));
		break;
	case TUAP__CTL_EVENT__EV_STATUS:
	case TUAP__CTL_EVENT__EV_LIST: {
		Tuap__DomainStatus **v = ev->ev_case == TUAP__CTL_EVENT__EV_STATUS
						 ? ev->status->domains
						 : ev->list->domains;
		size_t n = ev->ev_case == TUAP__CTL_EVENT__EV_STATUS ? ev->status->n_domains
								     : ev->list->n_domains;
		json_object *a = json_object_new_array();

		ADD_STR("type", ev->ev_case == TUAP__CTL_EVENT__EV_STATUS ? "status" : "list");
		for (size_t i = 0; i < n; i++) {
			json_object *d = json_object_new_object();

			json_object_object_add(d, "domain", json_object_new_string(v[i]->domain));
			if (v[i]->hypervisor)
				json_object_object_add(d, "hypervisor",
						       json_object_new_string(v[i]->hypervisor));
			if (v[i]->vm_state)
				json_object_object_add(d, "vm",
						       json_object_new_string(v[i]->vm_state));
			if (v[i]->job_state)
				json_object_object_add(d, "job",
						       json_object_new_string(v[i]->job_state));
			if (v[i]->phase)
				json_object_object_add(d, "phase",
						       json_object_new_string(v[i]->phase));
			if (v[i]->agent_version)
				json_object_object_add(d, "agent_version",
						       json_object_new_string(v[i]->agent_version));
			if (v[i]->job_id)
				json_object_object_add(d, "job_id",
						       json_object_new_string(v[i]->job_id));
			if (v[i]->n_steps) {
				json_object *steps = json_object_new_object();

				for (size_t j = 0; j < v[i]->n_steps; j++)
					json_object_object_add(
						steps, step_name(v[i]->steps[j]->step),
						json_object_new_string(
							step_state_name(v[i]->steps[j]->state)));
				json_object_object_add(d, "steps", steps);
			}
			json_object_array_add(a, d);
		}
		json_object_object_add(o, "domains", a);
		break;
	}
	default:
		ADD_STR("type", "other");
		break;
	}
	if (ev->has_final && ev->final) {
		json_object_object_add(o, "final", json_object_new_boolean(1));
		ADD_INT("exit_code", ev->exit_code);
	}
#undef ADD_STR
#undef ADD_INT
	fprintf(p->out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	fflush(p->out);
	json_object_put(o);
}

void progress_event(struct progress *p, const Tuap__CtlEvent *ev)
{
	if (p->mode == PROGRESS_JSON) {
		json_event(p, ev);
		return;
	}
	switch (ev->ev_case) {
	case TUAP__CTL_EVENT__EV_PHASE:
		phase_event(p, ev, ev->phase);
		break;
	case TUAP__CTL_EVENT__EV_STEP:
		step_event(p, ev, ev->step);
		break;
	case TUAP__CTL_EVENT__EV_ERROR:
		line(p, NULL, "error: %s", ev->error->message ? ev->error->message : "(none)");
		break;
	case TUAP__CTL_EVENT__EV_TEXT:
		for (size_t i = 0; i < ev->text->n_lines; i++)
			line(p, NULL, "%s", ev->text->lines[i]);
		break;
	case TUAP__CTL_EVENT__EV_STATUS:
		status_table(p, ev->status->domains, ev->status->n_domains);
		break;
	case TUAP__CTL_EVENT__EV_LIST:
		status_table(p, ev->list->domains, ev->list->n_domains);
		break;
	case TUAP__CTL_EVENT__EV_HYPERVISORS:
		hypervisor_table(p, ev->hypervisors);
		break;
	default:
		break;
	}
}

void progress_finish(struct progress *p)
{
	clear_status(p);
	fflush(p->out);
}
