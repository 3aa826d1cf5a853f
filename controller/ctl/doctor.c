/* tuap-ctl doctor's report and its judges of facts; see doctor.h. */
#include "doctor.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- the report ---- */

static const char *level_name(enum doctor_level l)
{
	return l == DOCTOR_OK ? "OK" : l == DOCTOR_WARN ? "WARN" : "FAIL";
}

void doctor_add(struct doctor_report *r, const char *check, enum doctor_level level,
		const char *fmt, ...)
{
	struct doctor_result *d;
	va_list ap;

	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 16;
		if (!(r->v = realloc(r->v, r->cap * sizeof(*r->v))))
			abort();
	}
	d = &r->v[r->n++];
	memset(d, 0, sizeof(*d));
	snprintf(d->check, sizeof(d->check), "%s", check);
	d->level = level;
	va_start(ap, fmt);
	vsnprintf(d->what, sizeof(d->what), fmt, ap);
	va_end(ap);
}

void doctor_fix(struct doctor_report *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->n)
		abort();
	va_start(ap, fmt);
	vsnprintf(r->v[r->n - 1].fix, sizeof(r->v[r->n - 1].fix), fmt, ap);
	va_end(ap);
}

void doctor_report_free(struct doctor_report *r)
{
	free(r->v);
	memset(r, 0, sizeof(*r));
}

void doctor_print(const struct doctor_report *r, FILE *out)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct doctor_result *d = &r->v[i];

		fprintf(out, "%-5s %s: %s\n", level_name(d->level), d->check, d->what);
		if (d->level != DOCTOR_OK && d->fix[0])
			fprintf(out, "      fix: %s\n", d->fix);
	}
}

void doctor_print_json(const struct doctor_report *r, FILE *out)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; i < r->n; i++) {
		const struct doctor_result *d = &r->v[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "check", json_object_new_string(d->check));
		json_object_object_add(o, "status", json_object_new_string(level_name(d->level)));
		json_object_object_add(o, "message", json_object_new_string(d->what));
		if (d->fix[0])
			json_object_object_add(o, "fix", json_object_new_string(d->fix));
		json_object_array_add(a, o);
	}
	fprintf(out, "%s\n",
		json_object_to_json_string_ext(a, JSON_C_TO_STRING_PRETTY |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(a);
}

int doctor_exit_code(const struct doctor_report *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].level == DOCTOR_FAIL)
			return 1;
	return 0;
}

/* ---- firewall rules ---- */

/* Whether the port list word w ("7807", "7000-8000", "22,7807", "{ 22, 7807 }" as one word
 * with blanks) names port. */
static bool ports_name(const char *w, unsigned port)
{
	while (*w) {
		char *end;
		unsigned long a, b;

		w += strspn(w, "{}, \t");
		if (!*w)
			break;
		a = strtoul(w, &end, 10);
		if (end == w)
			return false; /* a service name: not ours to resolve */
		b = a;
		if (*end == '-' || *end == ':')
			b = strtoul(end + 1, &end, 10);
		if (a <= port && port <= b)
			return true;
		w = end;
	}
	return false;
}

/* The ports after "dport " in an nft rule, as one word ("{ 22, 7807 }" kept whole). */
static bool nft_rule_names_port(const char *line, unsigned port)
{
	const char *p = strstr(line, "dport ");
	char w[512];
	size_t n;

	if (!p || strstr(line, "udp dport"))
		return false;
	p += 6;
	n = *p == '{' ? strcspn(p, "}") + 1 : strcspn(p, " \t");
	if (n >= sizeof(w))
		n = sizeof(w) - 1;
	memcpy(w, p, n);
	w[n] = '\0';
	return ports_name(w, port);
}

static bool word_at_end(const char *line, const char *word)
{
	size_t n = strlen(line), k = strlen(word);

	while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--;
	return n >= k && !strncmp(line + n - k, word, k) && (n == k || line[n - k - 1] == ' ');
}

static void copy_trimmed(char *out, size_t len, const char *line, size_t n)
{
	size_t skip = strspn(line, " \t");

	snprintf(out, len, "%.*s", (int)(n > skip ? n - skip : 0), line + skip);
}

/* The name after word in line ("table inet filter {" -> "inet filter"), up to the brace. */
static void block_name(const char *line, const char *word, char *out, size_t len)
{
	const char *p = strstr(line, word) + strlen(word);
	size_t n = strcspn(p, "{");

	while (n && p[n - 1] == ' ')
		n--;
	snprintf(out, len, "%.*s", (int)n, p);
}

enum doctor_fw doctor_nft_judge(const char *ruleset, unsigned port, char *rule, size_t len,
				char *where, size_t wlen)
{
	enum doctor_fw worst = DOCTOR_FW_OPEN;
	bool in_chain = false, input = false, policy_drop = false, decided = false;
	char table[256] = "", chain[256] = "";

	rule[0] = where[0] = '\0';
	for (const char *l = ruleset; l && *l;) {
		size_t n = strcspn(l, "\n");
		char line[1024];

		snprintf(line, sizeof(line), "%.*s", (int)n, l);
		l += n + (l[n] == '\n');
		if (!in_chain && !strncmp(line, "table ", 6) && strchr(line, '{')) {
			block_name(line, "table ", table, sizeof(table));
			continue;
		}
		if (!in_chain && strstr(line, "chain ") && strchr(line, '{')) {
			in_chain = true;
			input = policy_drop = decided = false;
			block_name(line, "chain ", chain, sizeof(chain));
			continue;
		}
		if (!in_chain)
			continue;
		if (strspn(line, " \t}") == strlen(line) && strchr(line, '}')) {
			if (input && policy_drop && !decided && worst == DOCTOR_FW_OPEN) {
				worst = DOCTOR_FW_POLICY_DROP;
				snprintf(rule, len, "policy drop");
				snprintf(where, wlen, "%s %s", table, chain);
			}
			in_chain = false;
			continue;
		}
		if (strstr(line, "hook input")) {
			input = true;
			policy_drop = strstr(line, "policy drop") != NULL;
			continue;
		}
		if (!input || decided || !nft_rule_names_port(line, port))
			continue;
		decided = true; /* the first rule naming the port decides */
		if (word_at_end(line, "drop") || strstr(line, " reject")) {
			copy_trimmed(rule, len, line, strlen(line));
			snprintf(where, wlen, "%s %s", table, chain);
			return DOCTOR_FW_DROPPED;
		}
	}
	return worst;
}

enum doctor_fw doctor_iptables_judge(const char *rules, unsigned port, char *rule, size_t len)
{
	bool policy_drop = false;

	rule[0] = '\0';
	for (const char *l = rules; l && *l;) {
		size_t n = strcspn(l, "\n");
		char line[1024];
		const char *p;

		snprintf(line, sizeof(line), "%.*s", (int)n, l);
		l += n + (l[n] == '\n');
		if (!strncmp(line, "-P INPUT DROP", 13))
			policy_drop = true;
		if (strncmp(line, "-A INPUT ", 9) || strstr(line, "-p udp"))
			continue;
		if (!(p = strstr(line, "--dport ")) && !(p = strstr(line, "--dports ")))
			continue;
		p = strchr(p, ' ') + 1;
		{
			char w[256];

			snprintf(w, sizeof(w), "%.*s", (int)strcspn(p, " "), p);
			if (!ports_name(w, port))
				continue;
		}
		if (strstr(line, "-j DROP") || strstr(line, "-j REJECT")) {
			snprintf(rule, len, "%s", line);
			return DOCTOR_FW_DROPPED;
		}
		if (strstr(line, "-j ACCEPT"))
			return DOCTOR_FW_OPEN;
	}
	if (policy_drop)
		snprintf(rule, len, "-P INPUT DROP");
	return policy_drop ? DOCTOR_FW_POLICY_DROP : DOCTOR_FW_OPEN;
}

/* ---- listening sockets ---- */

bool doctor_tcp_listening(const char *proc_net_tcp, const char *addr, unsigned port)
{
	struct in_addr want;

	if (inet_pton(AF_INET, addr, &want) != 1)
		return false;
	for (const char *l = proc_net_tcp; l && *l;) {
		unsigned long a, p, st;
		char *end;
		const char *c = strchr(l, ':');

		/* "  N: AAAAAAAA:PPPP RRRRRRRR:QQQQ ST ..." */
		if (c && c < l + strcspn(l, "\n")) {
			a = strtoul(c + 1, &end, 16);
			if (*end == ':') {
				p = strtoul(end + 1, &end, 16);
				strtoul(end, &end, 16); /* remote address */
				if (*end == ':') {
					strtoul(end + 1, &end, 16);
					st = strtoul(end, &end, 16);
					if (st == 0x0A && p == port &&
					    ((uint32_t)a == want.s_addr || a == 0))
						return true;
				}
			}
		}
		l += strcspn(l, "\n");
		l += *l == '\n';
	}
	return false;
}

/* ---- sizes ---- */

int doctor_virsh_size(const char *num, const char *unit, uint64_t *bytes)
{
	static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	char *end;
	double v = strtod(num, &end);

	if (end == num || *end || v < 0)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(unit, units[i]))
			continue;
		for (size_t k = 0; k < i; k++)
			v *= 1024;
		*bytes = (uint64_t)v;
		return 0;
	}
	return -1;
}

int doctor_vol_growth(const char *vol_list, uint64_t *grow)
{
	*grow = 0;
	for (const char *l = vol_list; l && *l;) {
		size_t n = strcspn(l, "\n");
		char line[4096 + 256], *tok[64];
		int k = 0;
		uint64_t cap, alloc;

		snprintf(line, sizeof(line), "%.*s", (int)n, l);
		l += n + (l[n] == '\n');
		for (char *save = NULL, *t = strtok_r(line, " \t", &save); t && k < 64;
		     t = strtok_r(NULL, " \t", &save))
			tok[k++] = t;
		if (k == 0 || !strcmp(tok[0], "Name") || tok[0][0] == '-')
			continue; /* the header (virsh -q drops it) and its rule */
		if (k < 5 || doctor_virsh_size(tok[k - 4], tok[k - 3], &cap) < 0 ||
		    doctor_virsh_size(tok[k - 2], tok[k - 1], &alloc) < 0)
			return -1;
		if (cap > alloc)
			*grow += cap - alloc;
	}
	return 0;
}

void doctor_bytes(uint64_t n, char *out, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)n;
	size_t i = 0;

	while (v >= 1024 && i + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(out, len, "%llu B", (unsigned long long)n);
	else
		snprintf(out, len, "%.1f %s", v, units[i]);
}

/* ---- clock ---- */

time_t doctor_build_time(void)
{
	return (time_t)TUAP_BUILD_EPOCH;
}
