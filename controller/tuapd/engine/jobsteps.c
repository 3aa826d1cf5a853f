/* Building StepRequests from the domain model; see jobsteps.h. */
#include "jobsteps.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (!p)
		abort();
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");

	if (!p)
		abort();
	return p;
}

static char **copy_list(const struct strlist *l, size_t *n)
{
	char **v = xcalloc(l->n, sizeof(*v));

	for (size_t i = 0; i < l->n; i++)
		v[i] = xstrdup(l->v[i]);
	*n = l->n;
	return v;
}

/* Adds the keys an ssh_import_id names to u's authorized keys. */
static int import_keys(Tuap__User *u, const char *id, const struct jobsteps_args *a,
		       struct tuap_err *err)
{
	char *keys = NULL, *save = NULL;

	if (!a->resolve)
		return err_set(err, "user %s: ssh_import_id %s: tuapd has no key URL configured",
			       u->name, id);
	if (a->resolve(a->resolve_ctx, id, &keys, err) < 0)
		return -1;
	for (char *l = strtok_r(keys, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char **v;

		if (!*l)
			continue;
		v = realloc(u->ssh_authorized_keys, (u->n_ssh_authorized_keys + 1) * sizeof(*v));
		if (!v)
			abort();
		u->ssh_authorized_keys = v;
		v[u->n_ssh_authorized_keys++] = xstrdup(l);
	}
	free(keys);
	return 0;
}

/* plain_text_passwd as a crypt(3) hash of libxcrypt's default method (yescrypt on Debian 12,
 * what chpasswd makes in the guest for cloud-init), made here so that the password itself
 * never leaves the hypervisor. */
static char *hash_plain(const char *user, const char *plain, struct tuap_err *err)
{
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));
	char *salt = NULL, *hash = NULL;

	salt = crypt_gensalt_rn(NULL, 0, NULL, 0, cd->setting, sizeof(cd->setting));
	if (salt)
		hash = crypt_r(plain, salt, cd);
	if (!hash || hash[0] != '$') {
		err_set(err, "user %s: cannot hash plain_text_passwd (libcrypt)", user);
		hash = NULL;
	} else {
		hash = xstrdup(hash);
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return hash;
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static Tuap__User *user_msg(const struct user *in, const struct jobsteps_args *a,
			    struct tuap_err *err)
{
	Tuap__User *u = xcalloc(1, sizeof(*u));

	tuap__user__init(u);
	u->name = xstrdup(in->name); /* "" for a snapuser */
	if (in->gecos)
		u->gecos = xstrdup(in->gecos);
	u->groups = copy_list(&in->groups, &u->n_groups);
	if (in->primary_group)
		u->primary_group = xstrdup(in->primary_group);
	if (in->sudo == SUDO_RULES)
		u->sudo = copy_list(&in->sudo_rules, &u->n_sudo);
	if (in->shell)
		u->shell = xstrdup(in->shell);
	u->ssh_authorized_keys = copy_list(&in->ssh_authorized_keys, &u->n_ssh_authorized_keys);
	u->has_lock_passwd = 1;
	u->lock_passwd = in->lock_passwd != TRI_FALSE; /* cloud-init locks by default */
	/* cloud-init: passwd when the user is created; then plain_text_passwd and hashed_passwd on
	 * every run, hashed_passwd last (so it wins) */
	u->passwd = dup_or_null(in->passwd);
	if (in->hashed_passwd)
		u->hashed_passwd = xstrdup(in->hashed_passwd);
	else if (in->plain_text_passwd &&
		 !(u->hashed_passwd = hash_plain(u->name, in->plain_text_passwd, err))) {
		tuap__user__free_unpacked(u, NULL);
		return NULL;
	}
	u->expiredate = dup_or_null(in->expiredate);
	u->inactive = dup_or_null(in->inactive);
	u->selinux_user = dup_or_null(in->selinux_user);
	u->snapuser = dup_or_null(in->snapuser);
	u->doas = copy_list(&in->doas, &u->n_doas);
	if (in->line > 0) {
		u->has_line = 1;
		u->line = (uint32_t)in->line;
	}
	u->has_no_user_group = u->has_no_log_init = u->has_create_groups = 1;
	u->no_user_group = in->no_user_group;
	u->no_log_init = in->no_log_init;
	u->create_groups = in->create_groups != TRI_FALSE;
	if (in->homedir)
		u->homedir = xstrdup(in->homedir);
	if (in->uid >= 0) {
		u->has_uid = 1;
		u->uid = (uint32_t)in->uid;
	}
	u->has_system = u->has_no_create_home = 1;
	u->system = in->system;
	u->no_create_home = in->no_create_home;
	for (size_t i = 0; i < in->ssh_import_id.n; i++) {
		if (import_keys(u, in->ssh_import_id.v[i], a, err) < 0) {
			tuap__user__free_unpacked(u, NULL);
			return NULL;
		}
	}
	return u;
}

static int users_args(Tuap__StepRequest *r, const struct domain *dom, const struct jobsteps_args *a,
		      struct tuap_err *err)
{
	Tuap__UsersArgs *ua = xcalloc(1, sizeof(*ua));

	tuap__users_args__init(ua);
	r->args_case = TUAP__STEP_REQUEST__ARGS_USERS;
	r->users = ua;
	ua->has_force = 1;
	ua->force = a->force_users;
	ua->groups = xcalloc(dom->users.n_groups, sizeof(*ua->groups));
	for (size_t i = 0; i < dom->users.n_groups; i++) {
		Tuap__Group *g = xcalloc(1, sizeof(*g));

		tuap__group__init(g);
		g->name = xstrdup(dom->users.groups[i].name);
		g->members = copy_list(&dom->users.groups[i].members, &g->n_members);
		ua->groups[ua->n_groups++] = g;
	}
	ua->users = xcalloc(dom->users.n, sizeof(*ua->users));
	for (size_t i = 0; i < dom->users.n; i++) {
		if (dom->users.v[i].is_default)
			continue; /* the image's default user is cloud-init's business */
		if (!(ua->users[ua->n_users] = user_msg(&dom->users.v[i], a, err)))
			return -1;
		ua->n_users++;
	}
	return 0;
}

Tuap__StepRequest *jobsteps_request(const struct domain *dom, const struct jobsteps_args *a,
				    struct tuap_err *err)
{
	Tuap__StepRequest *r = xcalloc(1, sizeof(*r));

	tuap__step_request__init(r);
	r->step = a->step;
	if (a->deadline_s) {
		r->has_deadline_s = 1;
		r->deadline_s = a->deadline_s;
	}
	switch (a->step) {
	case TUAP__STEP__STEP_USERS:
		if (users_args(r, dom, a, err) < 0)
			goto fail;
		break;
	case TUAP__STEP__STEP_PACKAGES: {
		Tuap__PackagesArgs *p = xcalloc(1, sizeof(*p));

		tuap__packages_args__init(p);
		r->args_case = TUAP__STEP_REQUEST__ARGS_PACKAGES;
		r->packages = p;
		p->packages = xcalloc(dom->conf.n_packages, sizeof(*p->packages));
		for (size_t i = 0; i < dom->conf.n_packages; i++)
			p->packages[i] = xstrdup(dom->conf.packages[i]);
		p->n_packages = dom->conf.n_packages;
		p->has_update = p->update = 1;
		break;
	}
	case TUAP__STEP__STEP_MAIL: {
		Tuap__MailArgs *m = xcalloc(1, sizeof(*m));

		tuap__mail_args__init(m);
		r->args_case = TUAP__STEP_REQUEST__ARGS_MAIL;
		r->mail = m;
		m->contact_email = xstrdup(dom->conf.contact_email);
		break;
	}
	case TUAP__STEP__STEP_DATA: {
		Tuap__DataArgs *d = xcalloc(1, sizeof(*d));

		tuap__data_args__init(d);
		r->args_case = TUAP__STEP_REQUEST__ARGS_DATA;
		r->data = d;
		d->size = a->data_size;
		d->sha256.len = 32;
		d->sha256.data = xcalloc(32, 1);
		for (size_t i = 0; i < 32 && a->data_sha256 && strlen(a->data_sha256) == 64; i++) {
			unsigned v;

			sscanf(a->data_sha256 + 2 * i, "%2x", &v);
			d->sha256.data[i] = (uint8_t)v;
		}
		d->has_chunk_size = 1;
		d->chunk_size = a->data_chunk;
		break;
	}
	case TUAP__STEP__STEP_MAKE: {
		Tuap__MakeArgs *m = xcalloc(1, sizeof(*m));

		tuap__make_args__init(m);
		r->args_case = TUAP__STEP_REQUEST__ARGS_MAKE;
		r->make = m;
		if (a->make_target && *a->make_target)
			m->target = xstrdup(a->make_target);
		if (dom->conf.pre_make_script[0])
			m->pre_make_script = xstrdup(dom->conf.pre_make_script);
		m->has_rerun = 1;
		m->rerun = a->rerun_make;
		break;
	}
	default:
		err_set(err, "no such step %d", a->step);
		goto fail;
	}
	return r;
fail:
	jobsteps_free(r);
	return NULL;
}

void jobsteps_free(Tuap__StepRequest *r)
{
	/* Everything above is malloc'd, which is what protobuf-c's free_unpacked expects with
	 * the default allocator. */
	if (r)
		tuap__step_request__free_unpacked(r, NULL);
}
