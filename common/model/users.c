/*
 * users.yaml: libyaml's event parser builds a small bounded node tree (depth, node count, alias
 * count and alias expansion are all capped, recursive aliases refused), then a walker checks
 * it against the cloud-init users schema subset tuap supports and fills struct users. Every
 * problem is reported as "PATH:LINE: users[I].KEY: message"; nothing is silently dropped.
 *
 * Aliases are supported (PyYAML, which cloud-init uses, supports them) but bounded: at most
 * YAML_MAX_ALIASES alias events, and the document expanded through its aliases may not exceed
 * YAML_MAX_EXPANDED nodes, so a "billion laughs" document is refused before it is walked. An
 * alias is a pointer to the anchored node, never a copy. Merge keys (`<<`) are not supported.
 */
#include "users.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "fsutil.h"
#include "valid.h"

#define USERS_MAX_INPUT	  (1u << 20)
#define YAML_MAX_DEPTH	  8
#define YAML_MAX_ALIASES  64
#define YAML_MAX_ANCHORS  256
#define YAML_MAX_NODES	  (1u << 18)
#define YAML_MAX_EXPANDED (1u << 18)
#define TEXT_MAX	  4096

/* ---- the node tree ---- */

enum node_kind { N_SCALAR, N_SEQ, N_MAP, N_ALIAS };

struct node {
	enum node_kind kind;
	int line;
	bool plain; /* scalar in plain style: YAML 1.1 type resolution applies */
	bool open;  /* collection whose end event has not come yet */
	char *tag;  /* explicit tag, NULL when none */
	char *text; /* scalar value (may hold NULs, see len) */
	size_t len;
	struct node **kids; /* sequence items; mapping keys and values alternating */
	size_t n, cap;
	struct node *target; /* N_ALIAS */
	uint64_t weight;     /* nodes in the subtree with aliases expanded */
	struct node *next;   /* every node, for freeing */
};

struct anchor {
	char *name;
	struct node *node;
};

struct tree {
	struct node *all;
	struct node *root;
	size_t nodes, aliases;
	struct anchor anchors[YAML_MAX_ANCHORS];
	size_t n_anchors;
	struct node *stack[YAML_MAX_DEPTH];
	size_t depth;
	bool documents;
};

static void tree_free(struct tree *t)
{
	struct node *n = t->all;

	while (n) {
		struct node *next = n->next;

		free(n->tag);
		free(n->text);
		free(n->kids);
		free(n);
		n = next;
	}
	for (size_t i = 0; i < t->n_anchors; i++)
		free(t->anchors[i].name);
	memset(t, 0, sizeof(*t));
}

static int line_of(const yaml_event_t *ev)
{
	return (int)ev->start_mark.line + 1;
}

static struct node *node_new(struct tree *t, enum node_kind kind, const yaml_event_t *ev)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->kind = kind;
	n->line = line_of(ev);
	n->weight = 1;
	n->next = t->all;
	t->all = n;
	t->nodes++;
	return n;
}

static int add_kid(struct node *parent, struct node *kid)
{
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 4;
		struct node **v = realloc(parent->kids, cap * sizeof(*v));

		if (!v)
			return -1;
		parent->kids = v;
		parent->cap = cap;
	}
	parent->kids[parent->n++] = kid;
	return 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

/* Attaches a new node under the open collection (or as the document root) and records its
 * anchor. Returns NULL with msg set when a bound is hit. */
static struct node *attach(struct tree *t, enum node_kind kind, const yaml_event_t *ev,
			   const yaml_char_t *anchor, const yaml_char_t *tag, const char **msg)
{
	struct node *n;

	if (t->nodes >= YAML_MAX_NODES) {
		*msg = "too many YAML nodes";
		return NULL;
	}
	if (!(n = node_new(t, kind, ev)) || (tag && !(n->tag = strdup((const char *)tag)))) {
		*msg = "out of memory";
		return NULL;
	}
	if (t->depth > 0) {
		if (add_kid(t->stack[t->depth - 1], n) < 0) {
			*msg = "out of memory";
			return NULL;
		}
	} else if (t->root) {
		*msg = "only one YAML document is supported";
		return NULL;
	} else {
		t->root = n;
	}
	if (anchor) {
		if (t->n_anchors >= YAML_MAX_ANCHORS) {
			*msg = "too many YAML anchors";
			return NULL;
		}
		if (!(t->anchors[t->n_anchors].name = strdup((const char *)anchor))) {
			*msg = "out of memory";
			return NULL;
		}
		t->anchors[t->n_anchors++].node = n;
	}
	return n;
}

static struct node *find_anchor(struct tree *t, const char *name)
{
	/* The latest definition wins, as in YAML. */
	for (size_t i = t->n_anchors; i-- > 0;)
		if (strcmp(t->anchors[i].name, name) == 0)
			return t->anchors[i].node;
	return NULL;
}

/* Feeds one event into the tree. Returns 0, or -1 with msg set. */
static int tree_event(struct tree *t, const yaml_event_t *ev, const char **msg)
{
	struct node *n;

	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		n = attach(t, N_SCALAR, ev, ev->data.scalar.anchor, ev->data.scalar.tag, msg);
		if (!n)
			return -1;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		n->len = ev->data.scalar.length;
		if (!(n->text = malloc(n->len + 1))) {
			*msg = "out of memory";
			return -1;
		}
		memcpy(n->text, ev->data.scalar.value, n->len);
		n->text[n->len] = '\0';
		return 0;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (t->depth >= YAML_MAX_DEPTH) {
			*msg = "YAML nesting deeper than 8 levels";
			return -1;
		}
		if (ev->type == YAML_SEQUENCE_START_EVENT)
			n = attach(t, N_SEQ, ev, ev->data.sequence_start.anchor,
				   ev->data.sequence_start.tag, msg);
		else
			n = attach(t, N_MAP, ev, ev->data.mapping_start.anchor,
				   ev->data.mapping_start.tag, msg);
		if (!n)
			return -1;
		n->open = true;
		t->stack[t->depth++] = n;
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		n = t->stack[--t->depth];
		n->open = false;
		for (size_t i = 0; i < n->n; i++)
			n->weight = sat_add(n->weight, n->kids[i]->weight);
		if (n->weight > YAML_MAX_EXPANDED) {
			*msg = "aliases expand to too large a document";
			return -1;
		}
		return 0;
	case YAML_ALIAS_EVENT: {
		struct node *target = find_anchor(t, (const char *)ev->data.alias.anchor);

		if (++t->aliases > YAML_MAX_ALIASES) {
			*msg = "more than 64 YAML aliases";
			return -1;
		}
		if (!target) {
			*msg = "alias to an unknown anchor";
			return -1;
		}
		if (target->open) {
			*msg = "recursive alias (an alias inside the node it names)";
			return -1;
		}
		if (!(n = attach(t, N_ALIAS, ev, NULL, NULL, msg)))
			return -1;
		n->target = target;
		n->weight = target->weight;
		return 0;
	}
	case YAML_DOCUMENT_START_EVENT:
		if (t->documents) {
			*msg = "only one YAML document is supported";
			return -1;
		}
		t->documents = true;
		return 0;
	default:
		return 0;
	}
}

static int offset_line(const char *text, size_t len, size_t off)
{
	int line = 1;

	for (size_t i = 0; i < off && i < len; i++)
		line += text[i] == '\n';
	return line;
}

/* Parses text into t. On a YAML error or a bound, adds one diagnostic and returns -1. */
static int tree_parse(struct tree *t, const char *path, const char *text, size_t len,
		      struct diags *d)
{
	yaml_parser_t p;
	yaml_event_t ev;
	int rc = -1;

	if (!yaml_parser_initialize(&p))
		return diag_error(d, path, 0, "", "out of memory");
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	for (;;) {
		const char *msg = NULL;
		int line, stop;

		if (!yaml_parser_parse(&p, &ev)) {
			if (p.error == YAML_READER_ERROR)
				line = offset_line(text, len, p.problem_offset);
			else
				line = (int)p.problem_mark.line + 1;
			diag_error(d, path, line, "", "yaml: %s",
				   p.problem ? p.problem : "cannot parse");
			break;
		}
		line = line_of(&ev);
		stop = ev.type == YAML_STREAM_END_EVENT;
		if (tree_event(t, &ev, &msg) < 0) {
			yaml_event_delete(&ev);
			diag_error(d, path, line, "", "%s", msg);
			break;
		}
		yaml_event_delete(&ev);
		if (stop) {
			rc = 0;
			break;
		}
	}
	yaml_parser_delete(&p);
	return rc;
}

/* ---- scalar helpers (YAML 1.1 as PyYAML resolves plain scalars) ---- */

struct ctx {
	const char *path;
	struct diags *d;
};

static void problem(struct ctx *c, int line, const char *key, const char *fmt, ...)
	TUAP_PRINTF(4, 5);

static void problem(struct ctx *c, int line, const char *key, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_verror(c->d, DIAG_ERROR, c->path, line, key, fmt, ap);
	va_end(ap);
}

static void warn(struct ctx *c, int line, const char *key, const char *fmt, ...) TUAP_PRINTF(4, 5);

static void warn(struct ctx *c, int line, const char *key, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_verror(c->d, DIAG_WARNING, c->path, line, key, fmt, ap);
	va_end(ap);
}

static const struct node *deref(const struct node *n)
{
	return n && n->kind == N_ALIAS ? n->target : n;
}

static bool tag_is(const struct node *n, const char *what)
{
	char full[64];

	snprintf(full, sizeof(full), "tag:yaml.org,2002:%s", what);
	return n->tag && strcmp(n->tag, full) == 0;
}

/* A plain, untagged scalar is resolved; "!" and "!!str" make it a string. */
static bool resolvable(const struct node *n)
{
	return n->kind == N_SCALAR && n->plain && !n->tag;
}

static bool is_null(const struct node *n)
{
	static const char *const words[] = {"", "~", "null", "Null", "NULL"};

	if (n->kind == N_SCALAR && tag_is(n, "null"))
		return true;
	if (!resolvable(n))
		return false;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(n->text, words[i]) == 0)
			return true;
	return false;
}

/* 1 true, 0 false, -1 not a boolean. */
static int bool_value(const struct node *n)
{
	static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes",
					  "YES",  "on",	  "On",	  "ON"};
	static const char *const no[] = {"false", "False", "FALSE", "no", "No",
					 "NO",	  "off",   "Off",   "OFF"};

	if (n->kind != N_SCALAR || !(resolvable(n) || tag_is(n, "bool")))
		return -1;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(n->text, yes[i]) == 0)
			return 1;
		if (strcmp(n->text, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* What a value is, for messages: "a list", "null", "'yes' (a boolean)", "'abc'". */
static const char *describe(const struct node *n, char *buf, size_t len)
{
	size_t i, o = 0;

	if (n->kind == N_SEQ)
		return "a list";
	if (n->kind == N_MAP)
		return "a mapping";
	if (is_null(n))
		return "null";
	buf[o++] = '\'';
	for (i = 0; i < n->len && o + 8 < len && i < 40; i++)
		buf[o++] = isprint((unsigned char)n->text[i]) ? n->text[i] : '?';
	snprintf(buf + o, len - o, "%s'%s", i < n->len ? "..." : "",
		 bool_value(n) >= 0 ? " (a YAML boolean)" : "");
	return buf;
}

/* A scalar usable as a key in messages: short, printable. */
static bool printable(const struct node *n)
{
	if (n->kind != N_SCALAR || n->len == 0 || n->len > 40)
		return false;
	for (size_t i = 0; i < n->len; i++)
		if (!isprint((unsigned char)n->text[i]))
			return false;
	return true;
}

/* Tags other than the core ones would mean Python objects to PyYAML: refuse them. */
static int check_tag(struct ctx *c, const struct node *n, const char *key)
{
	static const char *const ok[] = {"str", "int", "bool", "null", "seq", "map"};

	if (!n->tag || strcmp(n->tag, "!") == 0)
		return 0;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (tag_is(n, ok[i]))
			return 0;
	problem(c, n->line, key, "unsupported YAML tag '%s'", n->tag);
	return -1;
}

/* Text that goes into /etc/passwd, sudoers or authorized_keys: one line, no NUL. */
static int check_text(struct ctx *c, const struct node *n, const char *key)
{
	char why[128];

	if (memchr(n->text, '\0', n->len)) {
		problem(c, n->line, key, "contains control character 0x00");
		return -1;
	}
	if (valid_text_line(n->text, TEXT_MAX, true, why, sizeof(why)) < 0) {
		problem(c, n->line, key, "%s", why);
		return -1;
	}
	return 0;
}

/* A string scalar (numbers keep their text); null and booleans are refused, since PyYAML
 * would not hand cloud-init a string for them. */
static int get_text(struct ctx *c, const struct node *n, const char *key, const char **out)
{
	char d[64];

	n = deref(n);
	if (check_tag(c, n, key) < 0)
		return -1;
	if (n->kind != N_SCALAR || (!tag_is(n, "str") && (is_null(n) || bool_value(n) >= 0))) {
		problem(c, n->line, key, "expected a string, got %s%s", describe(n, d, sizeof(d)),
			n->kind == N_SCALAR ? "; quote it if it is meant as text" : "");
		return -1;
	}
	if (check_text(c, n, key) < 0)
		return -1;
	*out = n->text;
	return 0;
}

static int get_bool(struct ctx *c, const struct node *n, const char *key, bool *out)
{
	char d[64];
	int v;

	n = deref(n);
	if (check_tag(c, n, key) < 0)
		return -1;
	if ((v = bool_value(n)) < 0) {
		problem(c, n->line, key, "expected true or false, got %s",
			describe(n, d, sizeof(d)));
		return -1;
	}
	*out = v == 1;
	return 0;
}

static int dup_str(struct ctx *c, int line, const char *key, const char *s, char **out)
{
	if (!(*out = strdup(s))) {
		problem(c, line, key, "out of memory");
		return -1;
	}
	return 0;
}

/* ---- value validators: each returns 0 or fills why ---- */

/* A path in an /etc/passwd field: valid_abs_path, and no ':'. */
static int valid_passwd_path(const char *s, char *why, size_t len)
{
	char rule[128];

	if (valid_abs_path(s, rule, sizeof(rule)) < 0)
		return valid_why(why, len, "'%s': %s", s, rule);
	if (strchr(s, ':'))
		return valid_why(why, len, "':' is not allowed (it separates /etc/passwd fields)");
	return 0;
}

static int valid_home(const char *s, char *why, size_t len)
{
	char rule[128];

	if (valid_passwd_path(s, why, len) < 0)
		return -1;
	if (valid_home_dir(s, rule, sizeof(rule)) < 0)
		return valid_why(why, len, "%s", rule);
	return 0;
}

static int valid_shell(const char *s, char *why, size_t len)
{
	if (valid_passwd_path(s, why, len) < 0)
		return -1;
	for (const char *p = s; *p; p++)
		if (isspace((unsigned char)*p))
			return snprintf(why, len, "a shell path has no spaces"), -1;
	return 0;
}

static int valid_gecos(const char *s, char *why, size_t len)
{
	if (strchr(s, ':'))
		return snprintf(why, len, "':' is not allowed (it separates /etc/passwd fields)"),
		       -1;
	return 0;
}

/* crypt(3) output: $id$[param$]salt$hash. A plaintext password never reaches a guest. */
static int valid_hash(const char *s, char *why, size_t len)
{
	const char *p = s + 1;
	size_t dollars = 0;

	if (s[0] != '$' || (!islower((unsigned char)*p) && !isdigit((unsigned char)*p)))
		goto bad;
	while (islower((unsigned char)*p) || isdigit((unsigned char)*p))
		p++;
	if (*p != '$')
		goto bad;
	for (; *p; p++) {
		if (*p == '$')
			dollars++;
		else if (!isalnum((unsigned char)*p) && !strchr("./=,+-", *p))
			goto bad;
	}
	if (dollars < 2 || p[-1] == '$')
		goto bad;
	return 0;
bad:
	snprintf(why, len,
		 "not a crypt(3) hash such as $6$salt$hash (tuap never puts plaintext "
		 "passwords in a guest; make one with mkpasswd -m sha-512)");
	return -1;
}

/* expiredate: YYYY-MM-DD, a real day (useradd --expiredate takes it so). */
static int valid_date(const char *s, char *why, size_t len)
{
	static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, m, d, n = 0;

	if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 ||
	    strspn(s, "0123456789-") != 10 || s[4] != '-' || s[7] != '-')
		return valid_why(why, len, "'%s' is not a date YYYY-MM-DD", s);
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > days[m - 1] ||
	    (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)))
		return valid_why(why, len, "'%s' is not a day of the calendar (from 1970)", s);
	return 0;
}

/* inactive: days after the password expires until the account is disabled; -1 never. */
static int valid_days(const char *s, char *why, size_t len)
{
	size_t n = strlen(s);

	if (strcmp(s, "-1") != 0 && (n == 0 || n > 5 || strspn(s, "0123456789") != n))
		return valid_why(why, len, "'%s' is not a number of days (0..99999, or -1)", s);
	return 0;
}

static int valid_selinux_user(const char *s, char *why, size_t len)
{
	size_t n = strlen(s);

	if (n > 64 ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") != n)
		return valid_why(why, len, "'%s' is not an SELinux user such as staff_u", s);
	return 0;
}

/* A doas.conf(5) rule: "permit|deny [options] identity [as target] [cmd ...]". */
static int valid_doas_rule(const char *s, char *why, size_t len)
{
	if (strncmp(s, "permit ", 7) != 0 && strncmp(s, "deny ", 5) != 0)
		return valid_why(why, len, "'%s' is not a doas rule (permit|deny ...)", s);
	if (strchr(s, '\\') || strchr(s, '#'))
		return valid_why(why, len, "'\\' and '#' are not allowed in a doas rule");
	return 0;
}

static const char *const key_types[] = {
	"ssh-ed25519",
	"ssh-rsa",
	"ssh-dss",
	"ecdsa-sha2-nistp256",
	"ecdsa-sha2-nistp384",
	"ecdsa-sha2-nistp521",
	"sk-ssh-ed25519@openssh.com",
	"sk-ecdsa-sha2-nistp256@openssh.com",
	"ssh-ed25519-cert-v01@openssh.com",
	"ssh-rsa-cert-v01@openssh.com",
	"ssh-dss-cert-v01@openssh.com",
	"ecdsa-sha2-nistp256-cert-v01@openssh.com",
	"ecdsa-sha2-nistp384-cert-v01@openssh.com",
	"ecdsa-sha2-nistp521-cert-v01@openssh.com",
	"sk-ssh-ed25519-cert-v01@openssh.com",
	"sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
};

static bool known_key_type(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(key_types) / sizeof(key_types[0]); i++)
		if (strlen(key_types[i]) == n && memcmp(key_types[i], s, n) == 0)
			return true;
	return false;
}

static int b64_value(char ch)
{
	const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = ch ? strchr(tab, ch) : NULL;

	return p ? (int)(p - tab) : -1;
}

/* The key blob starts with the key type as an SSH string (uint32 length, bytes); decoding its
 * first bytes catches a type/body mismatch and pasted garbage. */
static int check_blob(const char *b64, size_t n, const char *type, size_t tlen)
{
	unsigned char head[64];
	size_t got = 0, i;
	uint32_t acc = 0, l;
	int bits = 0;

	if (n < 32 || n % 4 != 0 || 4 + tlen > sizeof(head))
		return -1;
	for (i = 0; i < n; i++) {
		int v = b64_value(b64[i]);

		if (v < 0)
			break;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (got < sizeof(head))
				head[got++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* at most two '=' of padding, only at the end */
	if (n - i > 2 || strspn(b64 + i, "=") != n - i || got < 4 + tlen)
		return -1;
	l = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
	return l == tlen && memcmp(head + 4, type, tlen) == 0 ? 0 : -1;
}

/* An authorized_keys line: [options] TYPE BASE64 [comment]. */
static int valid_ssh_key(const char *s, char *why, size_t len)
{
	const char *p = s, *type, *body;
	size_t tlen, blen;

	while (*p == ' ' || *p == '\t')
		p++;
	type = p;
	tlen = strcspn(p, " \t");
	if (!known_key_type(type, tlen)) {
		/* skip an options field: up to unquoted whitespace */
		bool quoted = false;

		for (; *p && (quoted || (*p != ' ' && *p != '\t')); p++) {
			if (*p == '\\' && quoted && p[1])
				p++;
			else if (*p == '"')
				quoted = !quoted;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		type = p;
		tlen = strcspn(p, " \t");
		if (!known_key_type(type, tlen))
			return snprintf(why, len,
					"not an OpenSSH public key (expected 'ssh-ed25519 AAAA...'"
					" or another known key type)"),
			       -1;
	}
	body = type + tlen;
	while (*body == ' ' || *body == '\t')
		body++;
	blen = strcspn(body, " \t");
	if (blen == 0 || check_blob(body, blen, type, tlen) < 0)
		return snprintf(why, len, "the base64 key body of this %.*s key is not valid",
				(int)tlen, type),
		       -1;
	return 0;
}

/* gh:USER, lp:USER or USER (Launchpad), as ssh-import-id takes them. */
static int valid_import_id(const char *s, char *why, size_t len)
{
	const char *user = s;
	bool gh = false;

	if (strncmp(s, "gh:", 3) == 0) {
		gh = true;
		user = s + 3;
	} else if (strncmp(s, "lp:", 3) == 0) {
		user = s + 3;
	} else if (strchr(s, ':')) {
		return snprintf(why, len, "unknown service in '%s' (use gh:USER or lp:USER)", s),
		       -1;
	}
	if (!*user)
		return snprintf(why, len, "no user name after the service"), -1;
	if (strlen(user) > 64)
		return snprintf(why, len, "user name too long"), -1;
	for (const char *p = user; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		bool ok = gh ? isalnum(ch) || (ch == '-' && p != user)
			     : islower(ch) || isdigit(ch) || (p != user && strchr("+.-", ch));

		if (!ok)
			return snprintf(why, len, "'%s' is not a valid %s user name", user,
					gh ? "GitHub" : "Launchpad"),
			       -1;
	}
	return 0;
}

/* ---- lists ---- */

typedef int (*validator)(const char *s, char *why, size_t len);

static int list_push(struct ctx *c, int line, const char *key, struct strlist *l, const char *s,
		     size_t n)
{
	if (l->n >= USERS_MAX_LIST) {
		problem(c, line, key, "more than %d items", USERS_MAX_LIST);
		return -1;
	}
	strlist_addn(l, s, n);
	return 0;
}

static int check_item(struct ctx *c, int line, const char *key, validator ok, const char *s)
{
	char why[256];

	if (!*s) {
		problem(c, line, key, "empty value");
		return -1;
	}
	if (ok && ok(s, why, sizeof(why)) < 0) {
		problem(c, line, key, "%s", why);
		return -1;
	}
	return 0;
}

/* A list of strings; with split, a single string is split on commas (cloud-init's groups). */
static int get_list(struct ctx *c, const struct node *n, const char *key, bool split,
		    bool allow_string, validator ok, struct strlist *out)
{
	char ikey[96], d[64];
	const char *s;
	int rc = 0;

	n = deref(n);
	if (check_tag(c, n, key) < 0)
		return -1;
	if (n->kind == N_SCALAR && allow_string && !is_null(n)) {
		if (get_text(c, n, key, &s) < 0)
			return -1;
		if (!split)
			return check_item(c, n->line, key, ok, s) < 0 ||
					       list_push(c, n->line, key, out, s, strlen(s)) < 0
				       ? -1
				       : 0;
		for (size_t i = 0;; i++) {
			size_t w = strcspn(s, ",");
			const char *b = s, *e = s + w;
			char item[TEXT_MAX + 1];

			while (b < e && isspace((unsigned char)*b))
				b++;
			while (e > b && isspace((unsigned char)e[-1]))
				e--;
			snprintf(item, sizeof(item), "%.*s", (int)(e - b), b);
			snprintf(ikey, sizeof(ikey), "%s[%zu]", key, i);
			if (check_item(c, n->line, ikey, ok, item) < 0 ||
			    list_push(c, n->line, key, out, item, strlen(item)) < 0)
				return -1;
			if (!s[w])
				break;
			s += w + 1;
		}
		return 0;
	}
	if (n->kind != N_SEQ) {
		problem(c, n->line, key, "expected a list%s, got %s",
			allow_string ? " or a string" : "", describe(n, d, sizeof(d)));
		return -1;
	}
	if (n->n > USERS_MAX_LIST) {
		problem(c, n->line, key, "more than %d items", USERS_MAX_LIST);
		return -1;
	}
	for (size_t i = 0; i < n->n; i++) {
		const struct node *item = deref(n->kids[i]);

		snprintf(ikey, sizeof(ikey), "%s[%zu]", key, i);
		if (get_text(c, item, ikey, &s) < 0 || check_item(c, item->line, ikey, ok, s) < 0) {
			rc = -1;
			continue;
		}
		if (list_push(c, item->line, ikey, out, s, strlen(s)) < 0)
			return -1;
	}
	return rc;
}

/* ---- one user ---- */

enum ukey {
	K_NAME,
	K_GECOS,
	K_GROUPS,
	K_PRIMARY_GROUP,
	K_SUDO,
	K_SHELL,
	K_SSH_AUTHORIZED_KEYS,
	K_SSH_IMPORT_ID,
	K_LOCK_PASSWD,
	K_LOCK_PASSWD_DASH,
	K_PASSWD,
	K_HASHED_PASSWD,
	K_PLAIN_TEXT_PASSWD,
	K_HOMEDIR,
	K_UID,
	K_SYSTEM,
	K_NO_CREATE_HOME,
	K_NO_USER_GROUP,
	K_NO_LOG_INIT,
	K_CREATE_GROUPS,
	K_EXPIREDATE,
	K_INACTIVE,
	K_SELINUX_USER,
	K_SNAPUSER,
	K_SSH_REDIRECT_USER,
	K_DOAS,
	K_COUNT
};

const char *const users_known_keys[K_COUNT + 1] = {
	"name",
	"gecos",
	"groups",
	"primary_group",
	"sudo",
	"shell",
	"ssh_authorized_keys",
	"ssh_import_id",
	"lock_passwd",
	"lock-passwd",
	"passwd",
	"hashed_passwd",
	"plain_text_passwd",
	"homedir",
	"uid",
	"system",
	"no_create_home",
	"no_user_group",
	"no_log_init",
	"create_groups",
	"expiredate",
	"inactive",
	"selinux_user",
	"snapuser",
	"ssh_redirect_user",
	"doas",
	NULL,
};

static int get_string_field(struct ctx *c, const struct node *v, const char *key, validator ok,
			    char **out)
{
	const char *s;

	if (get_text(c, v, key, &s) < 0 || check_item(c, deref(v)->line, key, ok, s) < 0)
		return -1;
	return dup_str(c, deref(v)->line, key, s, out);
}

/* groups: a comma-separated string, a list, or (deprecated) a mapping of names to null. */
static int get_groups(struct ctx *c, const struct node *v, const char *key, struct strlist *out)
{
	const struct node *n = deref(v);
	char ikey[128];
	int rc = 0;

	if (n->kind != N_MAP)
		return get_list(c, n, key, true, true, valid_user_name, out);
	warn(c, n->line, key,
	     "a mapping of groups is deprecated (cloud-init: dropped after April 2027); write a "
	     "list or a comma-separated string");
	for (size_t i = 0; i + 1 < n->n; i += 2) {
		const struct node *k = deref(n->kids[i]), *val = deref(n->kids[i + 1]);
		const char *s;

		snprintf(ikey, sizeof(ikey), "%s.%s", key, printable(k) ? k->text : "?");
		if (get_text(c, k, key, &s) < 0 ||
		    check_item(c, k->line, ikey, valid_user_name, s) < 0) {
			rc = -1;
			continue;
		}
		if (!is_null(val)) {
			problem(c, val->line, ikey,
				"expected null (a mapping of groups lists names "
				"only)");
			rc = -1;
			continue;
		}
		if (list_push(c, k->line, ikey, out, s, strlen(s)) < 0)
			return -1;
	}
	return rc;
}

/* expiredate, inactive: cloud-init passes them to useradd only when YAML made them strings;
 * an unquoted 2032-09-01 (a YAML timestamp) or 5 (an integer) is silently ignored there. tuap
 * applies them, and says so. */
static int get_useradd_text(struct ctx *c, const struct node *v, const char *key, validator ok,
			    char **out)
{
	const struct node *n = deref(v);

	if (get_string_field(c, v, key, ok, out) < 0)
		return -1;
	if (resolvable(n))
		warn(c, n->line, key,
		     "unquoted, this is not a string to YAML, and cloud-init would ignore it; tuap "
		     "applies it: quote it ('%s') so that both do",
		     n->text);
	return 0;
}

static int get_sudo(struct ctx *c, const struct node *v, const char *key, struct user *u)
{
	const struct node *n = deref(v);

	if (is_null(n)) {
		u->sudo = SUDO_NONE;
		return 0;
	}
	if (bool_value(n) == 0) {
		warn(c, n->line, key,
		     "sudo: false is deprecated (cloud-init: dropped after April 2027); write "
		     "null or leave sudo out");
		u->sudo = SUDO_NONE;
		return 0;
	}
	if (bool_value(n) == 1) {
		problem(c, n->line, key,
			"true is not a sudo rule (write a rule such as 'ALL=(ALL) NOPASSWD:ALL', "
			"or false for none)");
		return -1;
	}
	u->sudo = SUDO_RULES;
	return get_list(c, n, key, false, true, valid_sudo_rule, &u->sudo_rules);
}

/* uid: a decimal 0..VALID_UID_MAX. A leading zero is refused: YAML 1.1 reads it as octal. */
static int get_uid(struct ctx *c, const struct node *v, const char *key, long *out)
{
	const struct node *n = deref(v);
	unsigned long long x = 0;
	char d[64];

	if (check_tag(c, n, key) < 0)
		return -1;
	if (n->kind != N_SCALAR || n->len == 0 || n->len > 10 ||
	    strspn(n->text, "0123456789") != n->len || (n->text[0] == '0' && n->len > 1)) {
		problem(c, n->line, key, "expected a decimal number 0..%lu, got %s%s",
			VALID_UID_MAX, describe(n, d, sizeof(d)),
			n->kind == N_SCALAR && n->text[0] == '0' && n->len > 1 && !n->tag &&
					n->plain
				? " (a leading zero makes it octal in YAML 1.1)"
				: "");
		return -1;
	}
	if (!resolvable(n))
		warn(c, n->line, key,
		     "a uid given as a string is deprecated (cloud-init: dropped after April "
		     "2027); "
		     "write the number unquoted");
	x = strtoull(n->text, NULL, 10);
	if (x > VALID_UID_MAX) {
		problem(c, n->line, key, "%s is out of range (0..%lu)", n->text, VALID_UID_MAX);
		return -1;
	}
	*out = (long)x;
	return 0;
}

static int get_tristate(struct ctx *c, const struct node *v, const char *key, enum tristate *out)
{
	bool b;

	if (get_bool(c, v, key, &b) < 0)
		return -1;
	*out = b ? TRI_TRUE : TRI_FALSE;
	return 0;
}

static int user_field(struct ctx *c, enum ukey k, const struct node *v, const char *key,
		      struct user *u)
{
	switch (k) {
	case K_NAME:
		return get_string_field(c, v, key, valid_user_name, &u->name);
	case K_GECOS:
		return get_string_field(c, v, key, valid_gecos, &u->gecos);
	case K_GROUPS:
		return get_groups(c, v, key, &u->groups);
	case K_PRIMARY_GROUP:
		return get_string_field(c, v, key, valid_user_name, &u->primary_group);
	case K_SUDO:
		return get_sudo(c, v, key, u);
	case K_SHELL:
		return get_string_field(c, v, key, valid_shell, &u->shell);
	case K_SSH_AUTHORIZED_KEYS:
		return get_list(c, v, key, false, false, valid_ssh_key, &u->ssh_authorized_keys);
	case K_SSH_IMPORT_ID:
		return get_list(c, v, key, false, true, valid_import_id, &u->ssh_import_id);
	case K_LOCK_PASSWD_DASH:
		warn(c, deref(v)->line, key,
		     "lock-passwd is deprecated (cloud-init: dropped after April 2027); write "
		     "lock_passwd");
		/* fall through */
	case K_LOCK_PASSWD:
		return get_tristate(c, v, key, &u->lock_passwd);
	case K_PASSWD:
		return get_string_field(c, v, key, valid_hash, &u->passwd);
	case K_HASHED_PASSWD:
		return get_string_field(c, v, key, valid_hash, &u->hashed_passwd);
	case K_PLAIN_TEXT_PASSWD:
		warn(c, deref(v)->line, key,
		     "a plain-text password in users.yaml: tuapd hashes it (as chpasswd would) so "
		     "that it never reaches the guest, but anyone who reads this file has it; "
		     "prefer "
		     "hashed_passwd (mkpasswd -m sha-512) or ssh keys");
		return get_string_field(c, v, key, NULL, &u->plain_text_passwd);
	case K_HOMEDIR:
		return get_string_field(c, v, key, valid_home, &u->homedir);
	case K_UID:
		return get_uid(c, v, key, &u->uid);
	case K_SYSTEM:
		return get_bool(c, v, key, &u->system);
	case K_NO_CREATE_HOME:
		return get_bool(c, v, key, &u->no_create_home);
	case K_NO_USER_GROUP:
		return get_bool(c, v, key, &u->no_user_group);
	case K_NO_LOG_INIT:
		return get_bool(c, v, key, &u->no_log_init);
	case K_CREATE_GROUPS:
		return get_tristate(c, v, key, &u->create_groups);
	case K_SSH_REDIRECT_USER:
		return get_bool(c, v, key, &u->ssh_redirect_user);
	case K_EXPIREDATE:
		return get_useradd_text(c, v, key, valid_date, &u->expiredate);
	case K_INACTIVE:
		return get_useradd_text(c, v, key, valid_days, &u->inactive);
	case K_SELINUX_USER:
		return get_string_field(c, v, key, valid_selinux_user, &u->selinux_user);
	case K_SNAPUSER:
		return get_string_field(c, v, key, valid_email, &u->snapuser);
	case K_DOAS:
		return get_list(c, v, key, false, false, valid_doas_rule, &u->doas);
	default:
		return -1;
	}
}

/* The schema's exclusions: name or snapuser (oneOf), ssh_redirect_user without keys, one of
 * lock_passwd and lock-passwd. */
static int check_exclusive(struct ctx *c, size_t idx, const struct user *u, const int *line_of_key)
{
	char key[96];
	int rc = 0;

#define BOTH(a, b, fmt, ...)                                                                       \
	do {                                                                                       \
		if (line_of_key[a] && line_of_key[b]) {                                            \
			snprintf(key, sizeof(key), "users[%zu].%s", idx, users_known_keys[b]);     \
			problem(c, line_of_key[b], key, fmt, __VA_ARGS__);                         \
			rc = -1;                                                                   \
		}                                                                                  \
	} while (0)
	BOTH(K_NAME, K_SNAPUSER,
	     "give name or snapuser, not both (the name of a snap user "
	     "comes from its store account; line %d)",
	     line_of_key[K_NAME]);
	BOTH(K_LOCK_PASSWD, K_LOCK_PASSWD_DASH, "give lock_passwd only (lock_passwd at line %d)",
	     line_of_key[K_LOCK_PASSWD]);
	if (u->ssh_redirect_user) {
		BOTH(K_SSH_REDIRECT_USER, K_SSH_AUTHORIZED_KEYS,
		     "cannot be combined with ssh_redirect_user (line %d)",
		     line_of_key[K_SSH_REDIRECT_USER]);
		BOTH(K_SSH_REDIRECT_USER, K_SSH_IMPORT_ID,
		     "cannot be combined with ssh_redirect_user (line %d)",
		     line_of_key[K_SSH_REDIRECT_USER]);
	}
#undef BOTH
	return rc;
}

static int parse_user(struct ctx *c, size_t idx, const struct node *m, struct user *u,
		      int *name_line)
{
	int line_of_key[K_COUNT] = {0};
	int rc = 0;
	char key[96];

	for (size_t i = 0; i + 1 < m->n; i += 2) {
		const struct node *k = deref(m->kids[i]), *v = m->kids[i + 1];
		size_t f;

		if (!printable(k)) {
			snprintf(key, sizeof(key), "users[%zu]", idx);
			problem(c, k->line, key, "a key must be a short printable string");
			rc = -1;
			continue;
		}
		snprintf(key, sizeof(key), "users[%zu].%s", idx, k->text);
		for (f = 0; f < K_COUNT; f++)
			if (strcmp(k->text, users_known_keys[f]) == 0)
				break;
		if (f == K_COUNT) {
			if (strcmp(k->text, "<<") == 0)
				problem(c, k->line, key,
					"YAML merge keys are not supported (write the keys out)");
			else
				problem(c, k->line, key,
					"unknown key (cloud-init's users schema has no such key)");
			rc = -1;
			continue;
		}
		if (line_of_key[f]) {
			problem(c, k->line, key, "duplicate key (first at line %d)",
				line_of_key[f]);
			rc = -1;
			continue;
		}
		line_of_key[f] = k->line;
		if (user_field(c, (enum ukey)f, v, key, u) < 0)
			rc = -1;
	}
	*name_line = line_of_key[K_NAME];
	if (!line_of_key[K_NAME] && !line_of_key[K_SNAPUSER]) {
		snprintf(key, sizeof(key), "users[%zu].name", idx);
		problem(c, m->line, key,
			"missing (every user entry needs a name or a snapuser, or use 'default')");
		rc = -1;
	}
	if (check_exclusive(c, idx, u, line_of_key) < 0)
		rc = -1;
	if (u->ssh_redirect_user) {
		snprintf(key, sizeof(key), "users[%zu].ssh_redirect_user", idx);
		warn(c, line_of_key[K_SSH_REDIRECT_USER], key,
		     "no effect: it redirects the cloud's metadata keys, and a tuap site has none "
		     "(cloud-init says the same and does nothing)");
	}
	return rc;
}

static void user_init(struct user *u, int line)
{
	memset(u, 0, sizeof(*u));
	u->uid = -1;
	u->lock_passwd = TRI_UNSET;
	u->sudo = SUDO_UNSET;
	u->create_groups = TRI_UNSET;
	u->line = line;
}

static void user_free(struct user *u)
{
	free(u->name);
	free(u->gecos);
	strlist_free(&u->groups);
	free(u->primary_group);
	strlist_free(&u->sudo_rules);
	free(u->shell);
	strlist_free(&u->ssh_authorized_keys);
	strlist_free(&u->ssh_import_id);
	free(u->passwd);
	free(u->hashed_passwd);
	free(u->plain_text_passwd);
	free(u->homedir);
	free(u->expiredate);
	free(u->inactive);
	free(u->selinux_user);
	free(u->snapuser);
	strlist_free(&u->doas);
}

/* ---- the document ---- */

/* The parts of the document: the root itself as the users list, or a mapping with `users:`,
 * `groups:` and `user:` (a #cloud-config's keys for them). */
struct doc {
	const struct node *users, *groups, *user;
};

static int doc_parts(struct ctx *c, const struct node *root, struct doc *doc)
{
	static const char *const names[] = {"users", "groups", "user"};
	const struct node **slot[] = {&doc->users, &doc->groups, &doc->user};
	int lines[3] = {0};
	char d[64];
	int rc = 0;

	memset(doc, 0, sizeof(*doc));
	root = deref(root);
	if (!root || is_null(root))
		return problem(c, root ? root->line : 1, "users",
			       "empty document (expected a list of users, or 'users:' holding "
			       "one)"),
		       -1;
	if (check_tag(c, root, "users") < 0)
		return -1;
	if (root->kind == N_SEQ) {
		doc->users = root;
		return 0;
	}
	if (root->kind != N_MAP)
		return problem(c, root->line, "users",
			       "expected a list of users, or a mapping with 'users:', got %s",
			       describe(root, d, sizeof(d))),
		       -1;
	for (size_t i = 0; i + 1 < root->n; i += 2) {
		const struct node *k = deref(root->kids[i]);
		size_t f = 0;

		while (f < 3 && !(k->kind == N_SCALAR && strcmp(k->text, names[f]) == 0))
			f++;
		if (f == 3) {
			if (printable(k))
				problem(c, k->line, k->text,
					"unsupported top-level key (users.yaml holds 'users:', "
					"'groups:' and 'user:')");
			else
				problem(c, k->line, "", "a key must be a short printable string");
			rc = -1;
		} else if (lines[f]) {
			problem(c, k->line, names[f], "duplicate key (first at line %d)", lines[f]);
			rc = -1;
		} else {
			lines[f] = k->line;
			*slot[f] = deref(root->kids[i + 1]);
		}
	}
	if (rc == 0 && !lines[0] && !lines[1] && !lines[2])
		return problem(c, root->line, "users",
			       "missing (expected 'users:' holding a list)"),
		       -1;
	if (doc->users && is_null(doc->users))
		doc->users = NULL;
	if (doc->users && (check_tag(c, doc->users, "users") < 0 || doc->users->kind != N_SEQ)) {
		if (!doc->users->tag || doc->users->kind != N_SEQ)
			problem(c, doc->users->line, "users", "expected a list of users, got %s",
				describe(doc->users, d, sizeof(d)));
		rc = -1;
	}
	return rc;
}

/* A name entry ("bob", or "bob, alice" as cloud-init splits it): users with no keys. */
static int parse_names(struct ctx *c, size_t i, const struct node *e, struct strlist *names)
{
	char key[64];

	snprintf(key, sizeof(key), "users[%zu]", i);
	return get_list(c, e, key, true, true, valid_user_name, names);
}

static int parse_entry(struct ctx *c, size_t i, const struct node *e, struct user *u,
		       int *name_line)
{
	char key[64], d[64];

	snprintf(key, sizeof(key), "users[%zu]", i);
	user_init(u, e->line);
	if (check_tag(c, e, key) < 0)
		return -1;
	if (e->kind == N_MAP)
		return parse_user(c, i, e, u, name_line);
	if (e->kind == N_SCALAR && !is_null(e) && strcmp(e->text, "default") == 0) {
		u->is_default = true;
		return 0;
	}
	problem(c, e->line, key,
		"expected 'default', a user name or a mapping with 'name:', got %s",
		describe(e, d, sizeof(d)));
	return -1;
}

/* groups: "a,b", a list of names and {name: members} mappings, or one such mapping. Members
 * are a list or a comma-separated string. */
static int add_group(struct ctx *c, struct users *out, const struct node *k,
		     const struct node *members, const char *key)
{
	struct user_group *g, *v;
	const char *name;

	if (get_text(c, k, key, &name) < 0 ||
	    check_item(c, k->line, key, valid_user_name, name) < 0)
		return -1;
	for (size_t i = 0; i < out->n_groups; i++)
		if (!strcmp(out->groups[i].name, name)) {
			g = &out->groups[i];
			goto members;
		}
	if (out->n_groups >= USERS_MAX) {
		problem(c, k->line, "groups", "more than %d groups", USERS_MAX);
		return -1;
	}
	v = realloc(out->groups, (out->n_groups + 1) * sizeof(*v));
	if (!v) {
		problem(c, k->line, key, "out of memory");
		return -1;
	}
	out->groups = v;
	g = &out->groups[out->n_groups++];
	memset(g, 0, sizeof(*g));
	g->line = k->line;
	if (dup_str(c, k->line, key, name, &g->name) < 0)
		return -1;
members:
	if (!members || is_null(deref(members)))
		return 0;
	return get_list(c, members, key, true, true, valid_user_name, &g->members);
}

static int parse_groups(struct ctx *c, const struct node *n, struct users *out)
{
	char key[64];
	int rc = 0;

	if (is_null(n))
		return 0;
	if (check_tag(c, n, "groups") < 0)
		return -1;
	if (n->kind == N_MAP) {
		for (size_t i = 0; i + 1 < n->n; i += 2) {
			const struct node *k = deref(n->kids[i]);

			snprintf(key, sizeof(key), "groups.%s", printable(k) ? k->text : "?");
			if (add_group(c, out, k, n->kids[i + 1], key) < 0)
				rc = -1;
		}
		return rc;
	}
	if (n->kind == N_SCALAR) {
		struct strlist names = {0};

		rc = get_list(c, n, "groups", true, true, valid_user_name, &names);
		for (size_t i = 0; rc == 0 && i < names.n; i++) {
			struct node k = {.kind = N_SCALAR,
					 .line = n->line,
					 .text = names.v[i],
					 .len = strlen(names.v[i])};

			rc = add_group(c, out, &k, NULL, "groups");
		}
		strlist_free(&names);
		return rc;
	}
	if (n->kind != N_SEQ) {
		problem(c, n->line, "groups", "expected a list of groups, got a %s",
			"value of another kind");
		return -1;
	}
	for (size_t i = 0; i < n->n; i++) {
		const struct node *e = deref(n->kids[i]);

		snprintf(key, sizeof(key), "groups[%zu]", i);
		if (e->kind == N_MAP) {
			for (size_t j = 0; j + 1 < e->n; j += 2)
				if (add_group(c, out, deref(e->kids[j]), e->kids[j + 1], key) < 0)
					rc = -1;
		} else if (add_group(c, out, e, NULL, key) < 0) {
			rc = -1;
		}
	}
	return rc;
}

/* user: (cloud-init's first, older form) the default user, named and set as it says over
 * Debian's default user. It replaces the image's default user: `default` entries mean it. */
static int parse_singular(struct ctx *c, const struct node *n, struct user *u, int *name_line)
{
	char d[64];
	int rc;

	user_init(u, n->line);
	if (n->kind == N_SCALAR && !is_null(n)) {
		warn(c, n->line, "user",
		     "'user' as a string is deprecated (cloud-init); write 'users:' with a list");
		rc = get_string_field(c, n, "user", valid_user_name, &u->name);
		*name_line = n->line;
	} else if (n->kind == N_MAP) {
		rc = parse_user(c, 0, n, u, name_line);
	} else {
		problem(c, n->line, "user", "expected a user name or a mapping, got %s",
			describe(n, d, sizeof(d)));
		return -1;
	}
	if (rc < 0)
		return -1;
	/* Debian's cloud.cfg default_user, under what `user:` said */
	if (!u->gecos && dup_str(c, n->line, "user", USERS_DEBIAN_DEFAULT_GECOS, &u->gecos) < 0)
		return -1;
	if (!u->shell && dup_str(c, n->line, "user", USERS_DEBIAN_DEFAULT_SHELL, &u->shell) < 0)
		return -1;
	if (u->sudo == SUDO_UNSET) {
		u->sudo = SUDO_RULES;
		strlist_add(&u->sudo_rules, USERS_DEBIAN_DEFAULT_SUDO);
	}
	/* groups: user's own replace Debian's (cloud-init's mergemanydict); sorted */
	for (const char *p = u->groups.n ? "" : USERS_DEBIAN_DEFAULT_GROUPS; *p;) {
		size_t w = strcspn(p, ",");

		strlist_addn(&u->groups, p, w);
		p += w + (p[w] == ',');
	}
	strlist_sort(&u->groups, true);
	return 0;
}

static int check_duplicates(struct ctx *c, const struct users *out, const int *name_lines)
{
	int rc = 0;
	int default_line = 0;
	char key[64];

	for (size_t i = 0; i < out->n; i++) {
		const struct user *u = &out->v[i];

		snprintf(key, sizeof(key), "users[%zu]", i);
		if (u->is_default) {
			if (default_line) {
				problem(c, u->line, key,
					"'default' listed twice (first at line %d)", default_line);
				rc = -1;
			}
			default_line = u->line;
			continue;
		}
		for (size_t j = 0; u->name && j < i; j++) {
			if (out->v[j].name && strcmp(out->v[j].name, u->name) == 0) {
				snprintf(key, sizeof(key), "users[%zu].name", i);
				problem(c, name_lines[i], key,
					"duplicate user '%s' (first as users[%zu], line %d)",
					u->name, j, name_lines[j]);
				rc = -1;
				break;
			}
		}
	}
	return rc;
}

/* Diagnostics come from several passes; the operator reads them top-down. Stable. */
static void sort_by_line(struct diags *d, size_t from)
{
	for (size_t i = from + 1; i < d->n; i++) {
		struct diag x = d->v[i];
		size_t j = i;

		for (; j > from && d->v[j - 1].e.line > x.e.line; j--)
			d->v[j] = d->v[j - 1];
		d->v[j] = x;
	}
}

int users_parse(const char *path, const char *text, size_t len, struct users *out, struct diags *d)
{
	struct ctx c = {path, d};
	struct tree t;
	struct doc doc;
	const struct node *list;
	int *name_lines = NULL;
	size_t first = d->n, errors = d->errors, cap;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	memset(&t, 0, sizeof(t));
	if (len > USERS_MAX_INPUT) {
		diag_error(d, path, 0, "", "larger than 1 MiB (%zu bytes)", len);
		return -1;
	}
	if (tree_parse(&t, path, text, len, d) < 0 || doc_parts(&c, t.root, &doc) < 0)
		goto out;
	list = doc.users;
	cap = (list ? list->n : 0) + (doc.user ? 1 : 0);
	if (cap > USERS_MAX) {
		problem(&c, list->line, "users", "more than %d users", USERS_MAX);
		goto out;
	}
	if (cap && (!(out->v = calloc(cap, sizeof(*out->v))) ||
		    !(name_lines = calloc(cap, sizeof(*name_lines))))) {
		problem(&c, list ? list->line : doc.user->line, "users", "out of memory");
		goto out;
	}
	if (doc.groups)
		parse_groups(&c, doc.groups, out);
	if (doc.user) {
		parse_singular(&c, doc.user, &out->v[0], &name_lines[0]);
		out->n = 1;
		out->singular = true;
	}
	for (size_t i = 0; list && i < list->n; i++) {
		const struct node *e = deref(list->kids[i]);
		struct strlist names = {0};

		if (e->kind == N_SCALAR && !is_null(e) && strcmp(e->text, "default") != 0) {
			/* "bob" or "bob, alice": users with no keys */
			size_t want;

			if (parse_names(&c, i, e, &names) < 0) {
				strlist_free(&names); /* the names before the bad one */
				continue;
			}
			if (out->n + names.n > USERS_MAX) {
				strlist_free(&names);
				problem(&c, e->line, "users", "more than %d users", USERS_MAX);
				goto out;
			}
			/* room for these names and one per entry still to come */
			want = out->n + names.n + (list->n - i - 1);
			if (want > cap) {
				struct user *v = realloc(out->v, want * sizeof(*v));
				int *l = realloc(name_lines, want * sizeof(*l));

				if (v)
					out->v = v;
				if (l)
					name_lines = l;
				if (!v || !l) {
					strlist_free(&names);
					problem(&c, e->line, "users", "out of memory");
					goto out;
				}
				cap = want;
			}
			for (size_t k = 0; k < names.n && out->n < cap; k++) {
				user_init(&out->v[out->n], e->line);
				out->v[out->n].name = strdup(names.v[k]);
				name_lines[out->n++] = e->line;
			}
			strlist_free(&names);
			continue;
		}
		parse_entry(&c, i, e, &out->v[out->n], &name_lines[out->n]);
		/* with `user:`, `default` is that user (cloud-init), not the image's */
		if (out->singular && out->v[out->n].is_default) {
			user_free(&out->v[out->n]);
			continue;
		}
		out->n++;
	}
	if (out->n > USERS_MAX)
		problem(&c, list->line, "users", "more than %d users", USERS_MAX);
	check_duplicates(&c, out, name_lines);
	/* every check reports into d; any error fails the whole file */
	rc = d->errors == errors ? 0 : -1;
out:
	free(name_lines);
	tree_free(&t);
	sort_by_line(d, first);
	if (rc < 0)
		users_free(out);
	return rc;
}

int users_load(const char *path, struct users *out, struct diags *d)
{
	struct tuap_err err;
	size_t len;
	char *text;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!(text = fs_read_file(path, USERS_MAX_INPUT, &len, &err)))
		return diag_add_err(d, &err);
	rc = users_parse(path, text, len, out, d);
	free(text);
	return rc;
}

void users_free(struct users *u)
{
	for (size_t i = 0; i < u->n; i++)
		user_free(&u->v[i]);
	free(u->v);
	for (size_t i = 0; i < u->n_groups; i++) {
		free(u->groups[i].name);
		strlist_free(&u->groups[i].members);
	}
	free(u->groups);
	memset(u, 0, sizeof(*u));
}
