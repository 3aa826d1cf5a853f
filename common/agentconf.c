/* The agent's config file; see agentconf.h. */
#include "agentconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "valid.h"
#include "wire.h"

#define LINE_MAX_LEN 1024

enum key_id {
	K_ENDPOINT,
	K_SERVER_KEY,
	K_PUBLIC_KEY,
	K_SECRET_KEY,
	K_DOMAIN,
	K_STATE_DIR,
	K_MAX_MESSAGE,
	K_COUNT
};

static const struct {
	const char *name;
	int required;
} keydefs[K_COUNT] = {
	{"endpoint", 1}, {"server_public_key", 1}, {"public_key", 1},  {"secret_key", 1},
	{"domain", 1},	 {"state_dir", 1},	   {"max_message", 0},
};

void agentconf_init(struct agentconf *c)
{
	memset(c, 0, sizeof(*c));
	c->max_message = WIRE_MAX_MESSAGE;
}

void agentconf_wipe(struct agentconf *c)
{
	keys_wipe(c, sizeof(*c));
}

/* tcp://HOST:PORT with HOST a name, an IPv4 address or [IPv6]. */
static int check_endpoint(const char *v, char *why, size_t whylen)
{
	char rule[128];

	if (strncmp(v, "tcp://", 6) != 0)
		return snprintf(why, whylen, "'%s' is not tcp://HOST:PORT", v), -1;
	if (valid_host_port(v + 6, false, rule, sizeof(rule)) < 0)
		return snprintf(why, whylen, "'%s': %s", v, rule), -1;
	return 0;
}

static int parse_max_message(const char *v, size_t *out, char *why, size_t whylen)
{
	unsigned long long n;
	char *end;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (!isdigit((unsigned char)v[0]) || errno)
		return snprintf(why, whylen, "'%s' is not a size in bytes", v), -1;
	if ((*end == 'K' || *end == 'k') && end[1] == '\0')
		n *= 1024;
	else if (*end == 'M' && end[1] == '\0')
		n *= 1024 * 1024;
	else if (*end)
		return snprintf(why, whylen, "'%s' is not a size (bytes, or with K or M)", v), -1;
	if (n < WIRE_MIN_MAXMSG || n > WIRE_MAX_MESSAGE)
		return snprintf(why, whylen, "%s is outside %u..%u bytes", v, WIRE_MIN_MAXMSG,
				WIRE_MAX_MESSAGE),
		       -1;
	*out = (size_t)n;
	return 0;
}

/* Checks value v of key k and stores it in c; why gets the reason on failure. */
static int set_value(struct agentconf *c, enum key_id k, const char *v, char *why, size_t whylen)
{
	char *dst = NULL, rule[128];
	size_t cap = 0;

	switch (k) {
	case K_ENDPOINT:
		if (check_endpoint(v, why, whylen) < 0)
			return -1;
		dst = c->endpoint, cap = sizeof(c->endpoint);
		break;
	case K_SERVER_KEY:
	case K_PUBLIC_KEY:
	case K_SECRET_KEY:
		if (!keys_valid(v))
			return snprintf(why, whylen, "not a 40-character Z85 CURVE key"), -1;
		dst = k == K_SERVER_KEY	  ? c->server_public_key
		      : k == K_PUBLIC_KEY ? c->public_key
					  : c->secret_key;
		cap = KEYS_Z85_SIZE;
		break;
	case K_DOMAIN:
		if (valid_domain_name(v, rule, sizeof(rule)) < 0)
			return snprintf(why, whylen, "'%s': %s", v, rule), -1;
		dst = c->domain, cap = sizeof(c->domain);
		break;
	case K_STATE_DIR:
		if (valid_abs_path(v, rule, sizeof(rule)) < 0)
			return snprintf(why, whylen, "'%s': %s", v, rule), -1;
		dst = c->state_dir, cap = sizeof(c->state_dir);
		break;
	case K_MAX_MESSAGE:
		return parse_max_message(v, &c->max_message, why, whylen);
	default:
		return snprintf(why, whylen, "unknown key"), -1;
	}
	if (strlen(v) >= cap)
		return snprintf(why, whylen, "longer than %zu characters", cap - 1), -1;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Handles one line (NUL-terminated, without its newline); seen[] records each key's line. */
static int parse_line(struct agentconf *c, const char *path, int lineno, char *line,
		      int seen[K_COUNT], struct tuap_err *err)
{
	char why[300];
	char *eq, *key, *val;
	int k;

	key = trim(line);
	if (*key == '\0' || *key == '#')
		return 0;
	eq = strchr(key, '=');
	if (!eq)
		return err_at(err, path, lineno, "", "expected 'key = value'");
	*eq = '\0';
	key = trim(key);
	val = trim(eq + 1);
	for (k = 0; k < K_COUNT; k++)
		if (strcmp(key, keydefs[k].name) == 0)
			break;
	if (k == K_COUNT)
		return err_at(err, path, lineno, key,
			      "unknown key (known: endpoint, "
			      "server_public_key, public_key, secret_key, domain, state_dir, "
			      "max_message)");
	if (seen[k])
		return err_at(err, path, lineno, key, "given twice (first on line %d)", seen[k]);
	seen[k] = lineno;
	if (*val == '\0')
		return err_at(err, path, lineno, key, "empty value");
	if (set_value(c, (enum key_id)k, val, why, sizeof(why)) < 0)
		return err_at(err, path, lineno, key, "%s", why);
	return 0;
}

static int check_complete(const struct agentconf *c, const char *path, const int seen[K_COUNT],
			  struct tuap_err *err)
{
	char pub[KEYS_Z85_SIZE];
	struct tuap_err e;
	int rc = 0;

	for (int k = 0; k < K_COUNT; k++)
		if (keydefs[k].required && !seen[k])
			return err_at(err, path, 0, keydefs[k].name, "missing (required)");
	if (keys_public_of(c->secret_key, pub, &e) < 0)
		return err_at(err, path, seen[K_SECRET_KEY], "secret_key", "%s", e.msg);
	if (strcmp(pub, c->public_key) != 0)
		rc = err_at(err, path, seen[K_PUBLIC_KEY], "public_key",
			    "does not belong to secret_key (its public key is %s)", pub);
	keys_wipe(pub, sizeof(pub));
	return rc;
}

int agentconf_parse(struct agentconf *c, const char *path, const char *text, size_t len,
		    struct tuap_err *err)
{
	int seen[K_COUNT] = {0};
	char line[LINE_MAX_LEN + 2];
	int lineno = 0, rc = -1;
	size_t pos = 0;

	agentconf_init(c);
	if (len > AGENTCONF_MAX_SIZE)
		return err_at(err, path, 0, "", "larger than %d bytes", AGENTCONF_MAX_SIZE);
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;

		lineno++;
		if (n > LINE_MAX_LEN) {
			err_at(err, path, lineno, "", "line longer than %d characters",
			       LINE_MAX_LEN);
			goto out;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		if (strlen(line) != n) {
			err_at(err, path, lineno, "", "NUL byte in line");
			goto out;
		}
		if (parse_line(c, path, lineno, line, seen, err) < 0)
			goto out;
		pos += n + (nl ? 1 : 0);
	}
	if (check_complete(c, path, seen, err) < 0)
		goto out;
	rc = 0;
out:
	keys_wipe(line, sizeof(line));
	if (rc < 0)
		agentconf_wipe(c);
	return rc;
}

int agentconf_load(struct agentconf *c, const char *path, struct tuap_err *err)
{
	size_t len;
	char *text = keys_read_private(path, AGENTCONF_MAX_SIZE, &len, err);
	int rc;

	if (!text)
		return -1;
	rc = agentconf_parse(c, path, text, len, err);
	keys_free_private(text, len);
	return rc;
}

int agentconf_format(const struct agentconf *c, struct buf *out, struct tuap_err *err)
{
	struct agentconf check;
	struct buf text = BUF_INIT;
	int rc = -1;

	/* Room for the whole file up front: a realloc would leave a copy of the secret behind. */
	buf_grow(&text, 2048);
	buf_addf(&text,
		 "# tuap-agent configuration, written by tuapd. It holds the agent's secret key:\n"
		 "# keep it mode 0600.\n"
		 "endpoint = %s\nserver_public_key = %s\npublic_key = %s\nsecret_key = %s\n"
		 "domain = %s\nstate_dir = %s\n",
		 c->endpoint, c->server_public_key, c->public_key, c->secret_key, c->domain,
		 c->state_dir);
	if (c->max_message && c->max_message != WIRE_MAX_MESSAGE)
		buf_addf(&text, "max_message = %zu\n", c->max_message);
	/* What we write must read back as the same config: parse it. */
	if (agentconf_parse(&check, "agent config", text.s, text.len, err) < 0)
		goto out;
	/* ...and a value with a newline in it must not have smuggled in another key. */
	if (strcmp(check.endpoint, c->endpoint) || strcmp(check.domain, c->domain) ||
	    strcmp(check.state_dir, c->state_dir) ||
	    strcmp(check.server_public_key, c->server_public_key) ||
	    strcmp(check.public_key, c->public_key) || strcmp(check.secret_key, c->secret_key) ||
	    (c->max_message && check.max_message != c->max_message)) {
		err_set(err, "agent config: a value contains a line break");
		goto out;
	}
	buf_add(out, text.s, text.len);
	rc = 0;
out:
	agentconf_wipe(&check);
	keys_wipe(text.s, text.cap);
	buf_free(&text);
	return rc;
}

int agentconf_write(const struct agentconf *c, const char *path, struct tuap_err *err)
{
	struct buf text = BUF_INIT;
	int rc = -1;

	if (agentconf_format(c, &text, err) < 0)
		goto out;
	rc = fs_write_atomic(path, text.s, text.len, 0600, err);
out:
	if (text.s)
		keys_wipe(text.s, text.cap);
	buf_free(&text);
	return rc;
}
