/* Input checks shared by the renders in cloudinit.c and domxml.c; see render.h. */
#include "render.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const char z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				".-:+=^!/*?&<>()[]{}@%$#";

int render_need(const char *field, const char *v, struct tuap_err *err)
{
	if (!v || !*v)
		return err_set(err, "render: %s is missing", field);
	return 0;
}

int render_need_model(const struct render_input *in, struct tuap_err *err)
{
	if (!in->conf || !in->set)
		return err_set(err, "render: %s is missing", in->conf ? "set" : "conf");
	return render_need("conf->name", in->conf->name, err);
}

int render_check_mac(const char *field, const char *mac, struct tuap_err *err)
{
	if (render_need(field, mac, err) < 0)
		return -1;
	for (int i = 0; i < 17; i++) {
		int ok = i % 3 == 2 ? mac[i] == ':' : isxdigit((unsigned char)mac[i]) != 0;

		if (!ok)
			return err_set(err, "render: %s '%s' is not a MAC address", field, mac);
	}
	if (mac[17])
		return err_set(err, "render: %s '%s' is not a MAC address", field, mac);
	return 0;
}

int render_check_z85_key(const char *field, const char *key, struct tuap_err *err)
{
	if (render_need(field, key, err) < 0)
		return -1;
	if (strlen(key) != RENDER_Z85_KEY_LEN || strspn(key, z85_chars) != RENDER_Z85_KEY_LEN)
		return err_set(err, "render: %s is not a Z85 key of %d characters", field,
			       RENDER_Z85_KEY_LEN);
	return 0;
}

int render_ip(const struct ip_addr *a, int with_prefix, char *out, size_t len)
{
	char text[INET6_ADDRSTRLEN];
	int n;

	if (a->family != AF_INET && a->family != AF_INET6)
		return -1;
	if (!inet_ntop(a->family, a->addr, text, sizeof(text)))
		return -1;
	if (with_prefix)
		n = snprintf(out, len, "%s/%d", text, a->prefix);
	else
		n = snprintf(out, len, "%s", text);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}
