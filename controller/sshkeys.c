/* ssh_import_id resolution with libcurl; see sshkeys.h. */
#include "sshkeys.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define KEYS_MAX (64 << 10)

static size_t collect(char *data, size_t size, size_t n, void *ctx)
{
	struct buf *b = ctx;

	if (b->len + size * n > KEYS_MAX)
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	buf_add(b, data, size * n);
	return size * n;
}

static int valid_user(const char *u)
{
	if (!*u || strlen(u) > 64)
		return 0;
	for (; *u; u++)
		if (!(*u == '-' || *u == '_' || *u == '.' || (*u >= '0' && *u <= '9') ||
		      (*u >= 'a' && *u <= 'z') || (*u >= 'A' && *u <= 'Z')))
			return 0;
	return 1;
}

static int key_line(const char *l)
{
	static const char *const types[] = {"ssh-", "ecdsa-", "sk-ssh-", "sk-ecdsa-"};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strncmp(l, types[i], strlen(types[i])) && strchr(l, ' '))
			return 1;
	return 0;
}

/* The template with its "%s" replaced by user (no printf: the template is configuration). */
static int expand(const char *tmpl, const char *user, struct buf *url)
{
	const char *p = strstr(tmpl, "%s");

	if (!p)
		return -1;
	buf_add(url, tmpl, (size_t)(p - tmpl));
	buf_adds(url, user);
	buf_adds(url, p + 2);
	return 0;
}

int sshkeys_fetch(void *ctx, const char *import_id, char **keys, struct tuap_err *err)
{
	const struct sshkeys *s = ctx;
	struct buf url = BUF_INIT, body = BUF_INIT, out = BUF_INIT;
	const char *user = import_id, *tmpl = s->lp_url;
	char *save = NULL;
	long status = 0;
	CURLcode rc;
	CURL *c;
	int ret = -1;

	if (!strncmp(import_id, "gh:", 3)) {
		tmpl = s->gh_url;
		user = import_id + 3;
	} else if (!strncmp(import_id, "lp:", 3)) {
		user = import_id + 3;
	}
	if (!valid_user(user))
		return err_set(err, "ssh_import_id '%s': not a user name", import_id);
	if (!tmpl || expand(tmpl, user, &url) < 0)
		return err_set(err, "ssh_import_id '%s': no key URL for it in tuapd.conf",
			       import_id);
	if (!(c = curl_easy_init())) {
		buf_free(&url);
		return err_set(err, "curl_easy_init failed");
	}
	curl_easy_setopt(c, CURLOPT_URL, url.s);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, s->timeout_s > 0 ? s->timeout_s : 30L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "tuapd/" TUAP_VERSION);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK) {
		err_set(err, "ssh_import_id '%s': %s: %s", import_id, url.s,
			rc == CURLE_WRITE_ERROR ? "answer too large" : curl_easy_strerror(rc));
		goto out;
	}
	if (status != 200) {
		err_set(err, "ssh_import_id '%s': %s answered HTTP %ld", import_id, url.s, status);
		goto out;
	}
	buf_add(&body, "", 0);
	for (char *l = strtok_r(body.s, "\r\n", &save); l; l = strtok_r(NULL, "\r\n", &save)) {
		if (!*l)
			continue;
		if (!key_line(l)) {
			err_set(err,
				"ssh_import_id '%s': %s returned something that is not an "
				"SSH public key",
				import_id, url.s);
			goto out;
		}
		buf_adds(&out, l);
		buf_adds(&out, "\n");
	}
	if (out.len == 0) {
		err_set(err, "ssh_import_id '%s': %s lists no keys", import_id, url.s);
		goto out;
	}
	*keys = buf_detach(&out, NULL);
	ret = 0;
out:
	curl_easy_cleanup(c);
	buf_free(&url);
	buf_free(&body);
	buf_free(&out);
	return ret;
}
