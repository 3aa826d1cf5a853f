/*
 * The Config::Simple reader (see config.h). It mirrors Perl Config::Simple 4.58's guess_syntax,
 * parse_ini_file, parse_cfg_file and parse_http_file line by line, and Text::ParseWords's
 * parse_line('\s*,\s*', 0, VALUE) for values, so that every provision.conf upstream read gives
 * the same keys and values here. Where Config::Simple gives up on the whole file at the first bad
 * line, or silently drops a value (an unterminated quote), this reader reports each problem with
 * its line and goes on, so the operator sees every mistake at once. Perl's \s and \w are ASCII
 * only on byte strings, and so are they here.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fsutil.h"

#define STR_(x)		      #x
#define STR(x)		      STR_(x)
#define CONFIG_MAX_VALUES_STR STR(CONFIG_MAX_VALUES)

struct line {
	const char *s;
	size_t len; /* without the "\n" */
	int no;
};

static bool is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_word(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

static bool is_keych(int c)
{
	return is_word(c) || c == '-';
}

static size_t skip_space(const char *s, size_t i, size_t n)
{
	while (i < n && is_space((unsigned char)s[i]))
		i++;
	return i;
}

static size_t skip_key(const char *s, size_t i, size_t n)
{
	while (i < n && is_keych((unsigned char)s[i]))
		i++;
	return i;
}

/* Splits text into lines as Perl's <$fh> does; returns false at the end. */
static bool next_line(const char *text, size_t len, size_t *off, struct line *l)
{
	const char *nl;

	if (*off >= len)
		return false;
	l->s = text + *off;
	nl = memchr(l->s, '\n', len - *off);
	l->len = nl ? (size_t)(nl - l->s) : len - *off;
	*off += l->len + (nl ? 1 : 0);
	l->no++;
	return true;
}

/* A short printable copy of a line for messages. */
static const char *excerpt(const char *s, size_t n, char *out, size_t cap)
{
	size_t k = 0, max = cap - 4;

	for (size_t i = 0; i < n && k < max; i++)
		out[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (n > max)
		memcpy(out + k, "...", 3), k += 3;
	out[k] = '\0';
	return out;
}

static bool has_word(const struct line *l)
{
	for (size_t i = 0; i < l->len; i++)
		if (is_word((unsigned char)l->s[i]))
			return true;
	return false;
}

static bool is_blank(const struct line *l)
{
	return skip_space(l->s, 0, l->len) == l->len;
}

/* ^\s*\[\s*([^\]]+)\s*\]\s*$ (guess_syntax) */
static bool looks_block(const char *s, size_t n)
{
	size_t i = skip_space(s, 0, n);
	const char *close;

	if (i >= n || s[i] != '[')
		return false;
	i++;
	close = memchr(s + i, ']', n - i);
	if (!close || close == s + i)
		return false;
	return skip_space(s, (size_t)(close - s) + 1, n) == n;
}

/* ^\s*[\w-]+\s*SEP (guess_syntax, and parse_http_file with SEP ':') */
static bool looks_pair(const char *s, size_t n, char sep)
{
	size_t i = skip_space(s, 0, n), k = skip_key(s, i, n);

	if (k == i)
		return false;
	k = skip_space(s, k, n);
	return k < n && s[k] == sep;
}

/* ^\s*[\w-]+\s+ (guess_syntax, parse_cfg_file) */
static bool looks_simple(const char *s, size_t n)
{
	size_t i = skip_space(s, 0, n), k = skip_key(s, i, n);

	return k > i && k < n && is_space((unsigned char)s[k]);
}

static bool line_ok(const struct line *l)
{
	return l->len <= CONFIG_MAX_LINE && !memchr(l->s, '\0', l->len);
}

/* guess_syntax: the first line that is not empty, has no '#' or ';' in column 1 and holds a
 * word character decides. Returns -1 when no line does. */
static int guess_syntax(const char *text, size_t len, int *lineno)
{
	struct line l = {0};
	size_t off = 0;

	while (next_line(text, len, &off, &l)) {
		if (l.len == 0 || l.s[0] == '#' || l.s[0] == ';' || !line_ok(&l) || !has_word(&l))
			continue;
		*lineno = l.no;
		if (looks_block(l.s, l.len) || looks_pair(l.s, l.len, '='))
			return CONFIG_INI;
		if (looks_pair(l.s, l.len, ':'))
			return CONFIG_HTTP;
		if (looks_simple(l.s, l.len))
			return CONFIG_SIMPLE;
	}
	*lineno = 0;
	return -1;
}

struct values {
	char **v;
	size_t n;
};

static int push_value(struct values *vals, struct buf *word, const char **why)
{
	char **v;

	if (vals->n >= CONFIG_MAX_VALUES) {
		*why = "more than " CONFIG_MAX_VALUES_STR " list items";
		return -1;
	}
	v = realloc(vals->v, (vals->n + 1) * sizeof(*v));
	if (!v) {
		*why = "out of memory";
		return -1;
	}
	vals->v = v;
	vals->v[vals->n++] = buf_detach(word, NULL);
	return 0;
}

/* \s*,\s* at i: returns the offset after it, or 0 when there is no delimiter at i. */
static size_t delim_at(const char *s, size_t i, size_t n)
{
	i = skip_space(s, i, n);
	if (i >= n || s[i] != ',')
		return 0;
	return skip_space(s, i + 1, n);
}

/* Appends s[from, to) to word, turning "\X" into "X" (parse_line's s/\\(.)/$1/sg). */
static void add_unescaped(struct buf *word, const char *s, size_t from, size_t to)
{
	for (size_t k = from; k < to; k++) {
		if (s[k] == '\\' && k + 1 < to)
			k++;
		buf_add(word, &s[k], 1);
	}
}

/*
 * Text::ParseWords::parse_line('\s*,\s*', 0, v): double or single quotes group text (commas
 * included) and are removed, a backslash escapes the next character outside quotes and inside
 * double quotes, quoted and unquoted pieces join into one word. parse_line returns nothing at
 * all for an unterminated quote or a trailing backslash; that is an error here.
 */
static int split_value(const char *v, size_t n, struct values *vals, const char **why)
{
	struct buf word = BUF_INIT;
	size_t pos = 0;
	int rc = -1;

	while (pos < n) {
		char q = v[pos];
		size_t k, after = 0;

		if (q == '"' || q == '\'') {
			for (k = pos + 1; k < n && v[k] != q;)
				k += v[k] == '\\' ? 2 : 1;
			if (k >= n) {
				*why = q == '"' ? "unterminated double quote in the value "
						  "(Config::Simple "
						  "would drop the whole value)"
						: "unterminated single quote in the value "
						  "(Config::Simple "
						  "would drop the whole value; put a value holding "
						  "' in "
						  "double quotes)";
				goto out;
			}
			if (q == '"')
				add_unescaped(&word, v, pos + 1, k);
			else
				buf_add(&word, v + pos + 1, k - pos - 1);
			pos = k + 1;
			if (pos == n && push_value(vals, &word, why) < 0)
				goto out;
			continue;
		}
		/* The shortest run of (\\.|[^\\"']) followed by the end, a delimiter or a quote. */
		for (k = pos; k < n; k += v[k] == '\\' ? 2 : 1) {
			if ((after = delim_at(v, k, n)) != 0)
				break;
			if (k > pos && (v[k] == '"' || v[k] == '\''))
				break;
			if (v[k] == '\\' && k + 1 >= n) {
				*why = "the value ends with a lone backslash (write \\\\ for one)";
				goto out;
			}
		}
		add_unescaped(&word, v, pos, k);
		if (k >= n) {
			pos = n;
			if (push_value(vals, &word, why) < 0)
				goto out;
		} else if (after) {
			pos = after;
			if (push_value(vals, &word, why) < 0)
				goto out;
			/* "a," ends with an empty item, as parse_line's trailing undef. */
			if (pos == n && push_value(vals, &word, why) < 0)
				goto out;
		} else {
			pos = k;
		}
	}
	rc = 0;
out:
	buf_free(&word);
	return rc;
}

/* Config::Simple's get_param turns a literal "\n" in a value into a newline. */
static void expand_newlines(char *s)
{
	char *w = s;

	for (const char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] == 'n') {
			*w++ = '\n';
			r++;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

static void free_values(struct values *vals)
{
	for (size_t i = 0; i < vals->n; i++)
		free(vals->v[i]);
	free(vals->v);
	vals->v = NULL;
	vals->n = 0;
}

struct reader {
	struct config *cfg;
	struct diags *d;
	int syntax_line;  /* the line that decided the syntax */
	struct buf block; /* the current INI block, "default" before any [block] */
	bool full;
};

static void add_entry(struct reader *r, const struct line *l, const char *key, size_t klen,
		      const char *val, size_t vlen)
{
	struct config *cfg = r->cfg;
	struct config_entry *e, *v;
	struct values vals = {0};
	struct buf k = BUF_INIT;
	const char *why = NULL;

	if (r->full)
		return;
	if (cfg->n_entries >= CONFIG_MAX_ENTRIES) {
		diag_error(r->d, cfg->path, l->no, "",
			   "more than %d keys; the rest of the file is not read",
			   CONFIG_MAX_ENTRIES);
		r->full = true;
		return;
	}
	if (cfg->syntax == CONFIG_INI)
		buf_addf(&k, "%s.", r->block.s);
	buf_add(&k, key, klen);
	if (split_value(val, vlen, &vals, &why) < 0) {
		char ex[80];
		/* Name the key as the operator wrote it: "ips", not "default.ips". */
		const char *shown = cfg->syntax == CONFIG_INI && strcmp(r->block.s, "default") == 0
					    ? k.s + strlen("default.")
					    : k.s;

		diag_error(r->d, cfg->path, l->no, excerpt(shown, strlen(shown), ex, sizeof(ex)),
			   "%s", why);
		free_values(&vals);
		buf_free(&k);
		return;
	}
	for (size_t i = 0; i < vals.n; i++)
		expand_newlines(vals.v[i]);
	v = realloc(cfg->entries, (cfg->n_entries + 1) * sizeof(*v));
	if (!v) {
		diag_error(r->d, cfg->path, l->no, k.s, "out of memory");
		free_values(&vals);
		buf_free(&k);
		return;
	}
	cfg->entries = v;
	e = &cfg->entries[cfg->n_entries++];
	e->key = buf_detach(&k, NULL);
	e->values = vals.v;
	e->n_values = vals.n;
	e->line = l->no;
}

static const char *syntax_shape(enum config_syntax s)
{
	switch (s) {
	case CONFIG_INI:
		return "'key=value' or '[block]'";
	case CONFIG_HTTP:
		return "'key: value'";
	case CONFIG_SIMPLE:
		break;
	}
	return "'key value'";
}

static void syntax_error(struct reader *r, const struct line *l, const char *s, size_t n)
{
	char ex[80];
	bool comment = n && (s[0] == '#' || s[0] == ';');

	diag_error(r->d, r->cfg->path, l->no, "",
		   "syntax error: expected %s as on line %d, got '%s'%s",
		   syntax_shape(r->cfg->syntax), r->syntax_line, excerpt(s, n, ex, sizeof(ex)),
		   comment ? " (a comment must start with '#' in column 1)" : "");
}

/* parse_ini_file: "[block]" lines and "key = value" with the key running to the first '='. */
static void ini_line(struct reader *r, const struct line *l, const char *s, size_t n)
{
	const char *eq;
	size_t klen, v;

	if (s[0] == '[' && s[n - 1] == ']' && n > 2) {
		size_t i = 1;
		const char *close = memchr(s + 1, ']', n - 1);

		/* \[\s*([^\]]+)\s*\]$ : leading blanks go, trailing ones stay (greedy class). */
		while (i < n - 2 && is_space((unsigned char)s[i]))
			i++;
		if (close == s + n - 1) {
			buf_reset(&r->block);
			buf_add(&r->block, s + i, n - 1 - i);
			return;
		}
	}
	eq = memchr(s, '=', n);
	if (eq) {
		klen = (size_t)(eq - s);
		while (klen && is_space((unsigned char)s[klen - 1]))
			klen--;
		if (klen && is_word((unsigned char)s[klen - 1])) {
			v = skip_space(s, (size_t)(eq - s) + 1, n);
			add_entry(r, l, s, klen, s + v, n - v);
			return;
		}
	}
	syntax_error(r, l, s, n);
}

/* parse_cfg_file ("key value") and parse_http_file ("key: value"). */
static void keyed_line(struct reader *r, const struct line *l, const char *s, size_t n)
{
	size_t k = skip_key(s, 0, n), v;

	if (r->cfg->syntax == CONFIG_HTTP) {
		if (looks_pair(s, n, ':')) {
			v = skip_space(s, skip_space(s, k, n) + 1, n);
			add_entry(r, l, s, k, s + v, n - v);
			return;
		}
	} else if (looks_simple(s, n)) {
		v = skip_space(s, k, n);
		add_entry(r, l, s, k, s + v, n - v);
		return;
	}
	syntax_error(r, l, s, n);
}

static void read_line(struct reader *r, const struct line *l)
{
	const char *s = l->s;
	size_t n = l->len, first = skip_space(s, 0, n);

	if (first == n)
		return;
	/* INI skips ^\s*[#;]; the other two only '#' in column 1. */
	if (r->cfg->syntax == CONFIG_INI ? (s[first] == '#' || s[first] == ';') : s[0] == '#')
		return;
	s += first;
	n -= first;
	while (n && is_space((unsigned char)s[n - 1]))
		n--;
	if (r->cfg->syntax == CONFIG_INI)
		ini_line(r, l, s, n);
	else
		keyed_line(r, l, s, n);
}

int config_parse(const char *path, const char *text, size_t len, struct config *cfg,
		 struct diags *d)
{
	struct reader rd = {0}, *r = &rd;
	struct line l = {0};
	size_t errors = d->errors, off = 0;
	int syntax;

	memset(cfg, 0, sizeof(*cfg));
	cfg->syntax = CONFIG_INI;
	cfg->path = strdup(path ? path : "");
	if (!cfg->path)
		return diag_error(d, path, 0, "", "out of memory");
	if (len > CONFIG_MAX_BYTES)
		return diag_error(d, path, 0, "", "larger than %d bytes; is this a provision.conf?",
				  CONFIG_MAX_BYTES);
	r->cfg = cfg;
	r->d = d;
	buf_adds(&r->block, "default");
	syntax = guess_syntax(text, len, &r->syntax_line);
	cfg->syntax = syntax < 0 ? CONFIG_INI : (enum config_syntax)syntax;
	while (next_line(text, len, &off, &l) && !r->full) {
		char ex[80];

		if (l.len > CONFIG_MAX_LINE) {
			diag_error(d, cfg->path, l.no, "", "line longer than %d bytes",
				   CONFIG_MAX_LINE);
			continue;
		}
		if (memchr(l.s, '\0', l.len)) {
			diag_error(d, cfg->path, l.no, "", "line holds a NUL byte");
			continue;
		}
		if (syntax >= 0) {
			read_line(r, &l);
			continue;
		}
		/* Config::Simple gives up on a file where no line shows a syntax. */
		if (l.len == 0 || l.s[0] == '#' || l.s[0] == ';' || is_blank(&l))
			continue;
		diag_error(d, cfg->path, l.no, "",
			   "syntax error: '%s' is not 'key=value', 'key: value', 'key value' or "
			   "'[block]'",
			   excerpt(l.s + skip_space(l.s, 0, l.len),
				   l.len - skip_space(l.s, 0, l.len), ex, sizeof(ex)));
	}
	buf_free(&r->block);
	return d->errors == errors ? 0 : -1;
}

int config_load(const char *path, struct config *cfg, struct diags *d)
{
	struct tuap_err err;
	size_t len = 0;
	char *text = fs_read_file(path, CONFIG_MAX_BYTES, &len, &err);
	int rc;

	if (!text) {
		memset(cfg, 0, sizeof(*cfg));
		return diag_add_err(d, &err);
	}
	rc = config_parse(path, text, len, cfg, d);
	free(text);
	return rc;
}

const struct config_entry *config_get(const struct config *cfg, const char *key)
{
	const char *want = key;
	struct buf k = BUF_INIT;
	const struct config_entry *found = NULL;

	if (cfg->syntax == CONFIG_INI && !strchr(key, '.')) {
		buf_addf(&k, "default.%s", key);
		want = k.s;
	}
	for (size_t i = cfg->n_entries; i-- > 0;) {
		if (strcmp(cfg->entries[i].key, want) == 0) {
			found = &cfg->entries[i];
			break;
		}
	}
	buf_free(&k);
	return found;
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->n_entries; i++) {
		struct config_entry *e = &cfg->entries[i];

		for (size_t j = 0; j < e->n_values; j++)
			free(e->values[j]);
		free(e->values);
		free(e->key);
	}
	free(cfg->entries);
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}
