/* Schema drift against the installed cloud-init (json-c); see schemadrift.h. */
#include "schemadrift.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "users.h"

#define SCHEMA_MAX (8u << 20)

static bool known(const char *key)
{
	for (size_t i = 0; users_known_keys[i]; i++)
		if (strcmp(users_known_keys[i], key) == 0)
			return true;
	return false;
}

int schema_drift(const char *path, struct strlist *unknown, struct tuap_err *err)
{
	struct json_object *root, *defs, *user, *props;
	char *text;
	int rc = -1;

	if (!(text = fs_read_file(path, SCHEMA_MAX, NULL, err)))
		return -1;
	root = json_tokener_parse(text);
	free(text);
	if (!root)
		return err_set(err, "%s: not JSON", path);
	if (!json_object_object_get_ex(root, "$defs", &defs) ||
	    !json_object_object_get_ex(defs, "users_groups.user", &user) ||
	    !json_object_object_get_ex(user, "properties", &props) ||
	    !json_object_is_type(props, json_type_object)) {
		err_set(err, "%s: no $defs.users_groups.user.properties (not cloud-init's schema?)",
			path);
		goto out;
	}
	json_object_object_foreach(props, key, val)
	{
		(void)val;
		if (!known(key))
			strlist_add(unknown, key);
	}
	rc = 0;
out:
	json_object_put(root);
	return rc;
}
