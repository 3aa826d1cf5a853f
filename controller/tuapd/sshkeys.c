/* ssh_import_id resolution with libcurl; see sshkeys.h. */
#include "sshkeys.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "settings.h"

#define KEYS_MAX (64 << 10)

static size_t collect(char *data, size_t size, size_t n, void *ctx)
{
	struct buf *b = ctx;

	if (b->len + size * n > KEYS_MAX)
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	buf_add(b, data, size * n);
	return size * n;
}

static int key_line(const char *l)
{
	static const char *const types[] = {"ssh-", "ecdsa-", "sk-ssh-", "sk-ecdsa-"};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strncmp(l, types[i], strlen(types[i])) && strchr(l, ' '))
			return 1;
	return 0;
}

int sshkeys_fetch(void *ctx, const char *import_id, char **keys, struct tuap_err *err)
{
	const struct settings *s = ctx;
	struct buf body = BUF_INIT, out = BUF_INIT;
	char url[2048], id[128], *save = NULL;
	long status = 0;
	CURLcode rc;
	CURL *c;
	int ret = -1;

	/* cloud-init reads a bare name as Launchpad's */
	snprintf(id, sizeof(id), "%s%s", strchr(import_id, ':') ? "" : "lp:", import_id);
	if (settings_ssh_key_url(s, id, url, sizeof(url), err) < 0) {
		char why[sizeof(err->msg)];

		snprintf(why, sizeof(why), "%s", err->msg);
		return err_set(err, "ssh_import_id '%s': %s", import_id, why);
	}
	if (!(c = curl_easy_init()))
		return err_set(err, "curl_easy_init failed");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "tuapd/" TUAP_VERSION);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK) {
		err_set(err, "ssh_import_id '%s': %s: %s", import_id, url,
			rc == CURLE_WRITE_ERROR ? "answer too large" : curl_easy_strerror(rc));
		goto out;
	}
	if (status != 200) {
		err_set(err, "ssh_import_id '%s': %s answered HTTP %ld", import_id, url, status);
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
				import_id, url);
			goto out;
		}
		buf_adds(&out, l);
		buf_adds(&out, "\n");
	}
	if (out.len == 0) {
		err_set(err, "ssh_import_id '%s': %s lists no keys", import_id, url);
		goto out;
	}
	*keys = buf_detach(&out, NULL);
	ret = 0;
out:
	curl_easy_cleanup(c);
	buf_free(&body);
	buf_free(&out);
	return ret;
}
