/* The mail step: contact_email becomes root's alias (atomic write), then newaliases if there. */
#include "mail.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "buf.h"
#include "valid.h"
#include "fsutil.h"
#include "run.h"

/* 1 when the line starts an entry named root. */
static int is_root_entry(const char *line, size_t len)
{
	size_t i = 0;

	if (len < 5 || strncasecmp(line, "root", 4) != 0)
		return 0;
	i = 4;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	return i < len && line[i] == ':';
}

char *aliases_set_root(const char *old, const char *email, bool *changed)
{
	struct buf out = BUF_INIT;
	const char *p = old ? old : "";
	bool placed = false, skipping = false;
	char *res;

	while (*p) {
		size_t len = strcspn(p, "\n");
		bool cont = (*p == ' ' || *p == '\t') && len > 0;

		if (skipping && cont) {
			/* a continuation of a root entry we replace */
		} else if (is_root_entry(p, len)) {
			skipping = true;
			if (!placed)
				buf_addf(&out, "root: %s\n", email);
			placed = true;
		} else {
			skipping = false;
			buf_add(&out, p, len);
			buf_adds(&out, "\n");
		}
		p += len;
		if (*p == '\n')
			p++;
	}
	if (!placed)
		buf_addf(&out, "root: %s\n", email);
	res = buf_detach(&out, NULL);
	*changed = strcmp(res, old ? old : "") != 0;
	return res;
}

struct mail_job {
	char email[256];
};

static int write_aliases(struct step_run *r, void *arg, struct tuap_err *err)
{
	struct mail_job *m = arg;
	char path[4096], *old, *text;
	mode_t mode = 0644;
	struct stat st;
	bool changed;
	int rc;

	run_root_path(r, "/etc/aliases", path, sizeof(path));
	old = fs_read_file(path, 4 << 20, NULL, NULL);
	if (!old && errno != ENOENT && fs_exists(path))
		return err_set(err, "%s: cannot read it", path);
	if (stat(path, &st) == 0)
		mode = st.st_mode & 07777;
	text = aliases_set_root(old, m->email, &changed);
	rc = 0;
	if (!changed) {
		run_log(r, "%s: root already goes to %s", path, m->email);
	} else {
		rc = fs_write_atomic(path, text, strlen(text), mode, err);
		if (rc == 0)
			run_log(r, "%s: root: %s", path, m->email);
	}
	free(old);
	free(text);
	return rc;
}

int mail_start(struct step_run *r, const Tuap__MailArgs *a, struct tuap_err *err)
{
	struct mail_job *m;
	char path[256];

	if (valid_email(a->contact_email, NULL, 0) < 0)
		return err_at(err, NULL, 0, "contact_email", "'%s' is not a mail address",
			      a->contact_email ? a->contact_email : "");
	if (!(m = calloc(1, sizeof(*m))))
		return err_set(err, "out of memory");
	snprintf(m->email, sizeof(m->email), "%s", a->contact_email);
	run_queue_fn(r, write_aliases, m, free, NULL);
	if (strcmp(r->env.root, "/") != 0)
		run_log(r, "newaliases not run (root is %s)", r->env.root);
	else if (proc_which("newaliases", path, sizeof(path)) == 0)
		run_queue_cmd(r, (const char *const[]){"newaliases", NULL}, -1);
	else
		run_log(r, "newaliases not found (no MTA installed yet); /etc/aliases is written");
	return 0;
}
