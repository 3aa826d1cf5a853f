/*
 * Envelope encode/decode and the checks every received message goes through; see wire.h.
 * Bounds are checked by one walk over the protobuf-c descriptors, with a small table of fields
 * that need a bound other than the defaults.
 */
#include "wire.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Bounds per field; 0 means "the default" (WIRE_MAX_REPEATED elements, WIRE_MAX_STRING for a
 * string, WIRE_MAX_PAYLOAD for bytes). */
struct limit {
	const ProtobufCMessageDescriptor *msg;
	const char *field;
	size_t count; /* repeated: max elements */
	size_t len;   /* string / bytes: max bytes (per element) */
};

#define JOB_ID_MAX 128
#define DOMAIN_MAX 253

static const struct limit limits[] = {
	{&tuap__envelope__descriptor, "job_id", 0, JOB_ID_MAX},
	{&tuap__hello__descriptor, "session_id", 0, WIRE_SESSION_MAX},
	{&tuap__hello__descriptor, "steps", 4096, 0},
	{&tuap__hello__descriptor, "running_job_id", 0, JOB_ID_MAX},
	{&tuap__step_record__descriptor, "job_id", 0, JOB_ID_MAX},
	{&tuap__plan__descriptor, "job_id", 0, JOB_ID_MAX},
	{&tuap__plan__descriptor, "domain", 0, DOMAIN_MAX},
	{&tuap__plan__descriptor, "steps", 64, 0},
	{&tuap__data_args__descriptor, "sha256", 0, 32},
	{&tuap__data_chunk__descriptor, "data", 0, WIRE_MAX_CHUNK},
	{&tuap__upload_chunk__descriptor, "data", 0, WIRE_MAX_CHUNK},
	{&tuap__step_event__descriptor, "lines", 4096, 0},
	{&tuap__packages_args__descriptor, "packages", 4096, 0},
	{&tuap__phase_event__descriptor, "lines", 1024, 0},
	{&tuap__text_reply__descriptor, "lines", 65536, 0},
	{&tuap__status_reply__descriptor, "domains", 4096, 0},
	{&tuap__list_reply__descriptor, "domains", 4096, 0},
	{&tuap__domain_status__descriptor, "steps", 4096, 0},
};

#define MAX_DEPTH 8

static const struct limit *find_limit(const ProtobufCMessageDescriptor *d, const char *field)
{
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
		if (limits[i].msg == d && strcmp(limits[i].field, field) == 0)
			return &limits[i];
	return NULL;
}

static int walk(const ProtobufCMessage *m, int depth, const char *path, struct tuap_err *err);

/* Checks one value of field f stored at p (a char *, a ProtobufCBinaryData, a message pointer or
 * an int enum, depending on the type). */
static int check_value(const ProtobufCFieldDescriptor *f, const void *p, size_t maxlen, int depth,
		       const char *path, struct tuap_err *err)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		size_t n = s ? strlen(s) : 0;

		if (n > maxlen)
			return err_set(err, "%s: string of %zu bytes exceeds %zu", path, n, maxlen);
		return 0;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;

		if (b->len > maxlen)
			return err_set(err, "%s: %zu bytes exceed %zu", path, b->len, maxlen);
		return 0;
	}
	case PROTOBUF_C_TYPE_ENUM: {
		int v = *(const int *)p;

		if (!protobuf_c_enum_descriptor_get_value(f->descriptor, v))
			return err_set(err, "%s: unknown value %d", path, v);
		return 0;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;

		return sub ? walk(sub, depth + 1, path, err) : 0;
	}
	default:
		return 0;
	}
}

static int check_field(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, int depth,
		       const char *parent, struct tuap_err *err)
{
	const char *base = (const char *)m;
	const struct limit *lim = find_limit(m->descriptor, f->name);
	size_t maxlen = f->type == PROTOBUF_C_TYPE_BYTES ? WIRE_MAX_PAYLOAD : WIRE_MAX_STRING;
	size_t maxcount = WIRE_MAX_REPEATED;
	char path[256];

	if (lim && lim->len)
		maxlen = lim->len;
	if (lim && lim->count)
		maxcount = lim->count;
	snprintf(path, sizeof(path), "%s%s%s", parent, *parent ? "." : "", f->name);

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
			return 0;
	} else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type == PROTOBUF_C_TYPE_ENUM) {
		if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset))
			return 0;
	}
	if (f->label != PROTOBUF_C_LABEL_REPEATED)
		return check_value(f, base + f->offset, maxlen, depth, path, err);

	size_t n = *(const size_t *)(base + f->quantifier_offset);
	const char *arr = *(char *const *)(base + f->offset);
	size_t size;

	if (n > maxcount)
		return err_set(err, "%s: %zu elements exceed %zu", path, n, maxcount);
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		size = sizeof(char *);
		break;
	case PROTOBUF_C_TYPE_BYTES:
		size = sizeof(ProtobufCBinaryData);
		break;
	case PROTOBUF_C_TYPE_MESSAGE:
		size = sizeof(ProtobufCMessage *);
		break;
	case PROTOBUF_C_TYPE_ENUM:
		size = sizeof(int);
		break;
	default:
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		char ipath[280];

		snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
		if (check_value(f, arr + i * size, maxlen, depth, ipath, err) < 0)
			return -1;
	}
	return 0;
}

static int walk(const ProtobufCMessage *m, int depth, const char *path, struct tuap_err *err)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (depth > MAX_DEPTH)
		return err_set(err, "%s: nested deeper than %d", path, MAX_DEPTH);
	/* protobuf-c keeps fields it does not know, including ones numbered 0, which protobuf
	 * forbids and which it would then write back in a form it cannot read. */
	for (size_t i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return err_set(err, "%s%sfield number 0", path, *path ? ": " : "");
	for (unsigned i = 0; i < d->n_fields; i++)
		if (check_field(m, &d->fields[i], depth, path, err) < 0)
			return -1;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */

struct allowed {
	Tuap__Envelope__BodyCase body;
	unsigned dirs; /* bit per enum wire_dir */
};

#define D(x) (1u << (x))

static const struct allowed allow[] = {
	{TUAP__ENVELOPE__BODY__NOT_SET, D(WIRE_FROM_AGENT) | D(WIRE_TO_AGENT)},
	{TUAP__ENVELOPE__BODY_HELLO, D(WIRE_FROM_AGENT)},
	{TUAP__ENVELOPE__BODY_STEP_EVENT, D(WIRE_FROM_AGENT)},
	{TUAP__ENVELOPE__BODY_CHUNK_REQUEST, D(WIRE_FROM_AGENT)},
	{TUAP__ENVELOPE__BODY_PLAN, D(WIRE_TO_AGENT)},
	{TUAP__ENVELOPE__BODY_STEP_REQUEST, D(WIRE_TO_AGENT)},
	{TUAP__ENVELOPE__BODY_DATA_CHUNK, D(WIRE_TO_AGENT)},
	{TUAP__ENVELOPE__BODY_CANCEL, D(WIRE_TO_AGENT)},
	{TUAP__ENVELOPE__BODY_ERROR, D(WIRE_FROM_AGENT) | D(WIRE_TO_AGENT) | D(WIRE_TO_CTL)},
	{TUAP__ENVELOPE__BODY_CTL_REQUEST, D(WIRE_FROM_CTL)},
	{TUAP__ENVELOPE__BODY_UPLOAD_CHUNK, D(WIRE_FROM_CTL)},
	{TUAP__ENVELOPE__BODY_CTL_EVENT, D(WIRE_TO_CTL)},
};

const char *wire_body_name(Tuap__Envelope__BodyCase body)
{
	switch (body) {
	case TUAP__ENVELOPE__BODY__NOT_SET:
		return "none";
	case TUAP__ENVELOPE__BODY_HELLO:
		return "hello";
	case TUAP__ENVELOPE__BODY_STEP_EVENT:
		return "step_event";
	case TUAP__ENVELOPE__BODY_CHUNK_REQUEST:
		return "chunk_request";
	case TUAP__ENVELOPE__BODY_PLAN:
		return "plan";
	case TUAP__ENVELOPE__BODY_STEP_REQUEST:
		return "step_request";
	case TUAP__ENVELOPE__BODY_DATA_CHUNK:
		return "data_chunk";
	case TUAP__ENVELOPE__BODY_CANCEL:
		return "cancel";
	case TUAP__ENVELOPE__BODY_ERROR:
		return "error";
	case TUAP__ENVELOPE__BODY_CTL_REQUEST:
		return "ctl_request";
	case TUAP__ENVELOPE__BODY_UPLOAD_CHUNK:
		return "upload_chunk";
	case TUAP__ENVELOPE__BODY_CTL_EVENT:
		return "ctl_event";
	default:
		return "unknown";
	}
}

const char *wire_dir_name(enum wire_dir dir)
{
	static const char *const names[] = {"agent->controller", "controller->agent", "ctl->tuapd",
					    "tuapd->ctl"};

	return (unsigned)dir < 4 ? names[dir] : "?";
}

int wire_sequenced(Tuap__Envelope__BodyCase body)
{
	return body != TUAP__ENVELOPE__BODY__NOT_SET && body != TUAP__ENVELOPE__BODY_HELLO &&
	       body != TUAP__ENVELOPE__BODY_ERROR;
}

void wire_init(Tuap__Envelope *env)
{
	tuap__envelope__init(env);
	env->version = WIRE_VERSION;
}

static int body_present(const Tuap__Envelope *env)
{
	switch (env->body_case) {
	case TUAP__ENVELOPE__BODY__NOT_SET:
		return 1;
	case TUAP__ENVELOPE__BODY_HELLO:
		return env->hello != NULL;
	case TUAP__ENVELOPE__BODY_STEP_EVENT:
		return env->step_event != NULL;
	case TUAP__ENVELOPE__BODY_CHUNK_REQUEST:
		return env->chunk_request != NULL;
	case TUAP__ENVELOPE__BODY_PLAN:
		return env->plan != NULL;
	case TUAP__ENVELOPE__BODY_STEP_REQUEST:
		return env->step_request != NULL;
	case TUAP__ENVELOPE__BODY_DATA_CHUNK:
		return env->data_chunk != NULL;
	case TUAP__ENVELOPE__BODY_CANCEL:
		return env->cancel != NULL;
	case TUAP__ENVELOPE__BODY_ERROR:
		return env->error != NULL;
	case TUAP__ENVELOPE__BODY_CTL_REQUEST:
		return env->ctl_request != NULL;
	case TUAP__ENVELOPE__BODY_UPLOAD_CHUNK:
		return env->upload_chunk != NULL;
	case TUAP__ENVELOPE__BODY_CTL_EVENT:
		return env->ctl_event != NULL;
	default:
		return 0;
	}
}

/* Keeps an error set by err_set and returns the wire result. */
static int reject(int result, int set)
{
	(void)set;
	return result;
}

static int check_semantics(const Tuap__Envelope *env, enum wire_dir dir, struct tuap_err *err)
{
	int agent_link = dir == WIRE_FROM_AGENT || dir == WIRE_TO_AGENT;
	const char *name = wire_body_name(env->body_case);

	if (agent_link && wire_sequenced(env->body_case) && env->seq == 0)
		return err_set(err, "%s must carry a sequence number (seq 0)", name);
	if (agent_link && !wire_sequenced(env->body_case) && env->seq != 0)
		return err_set(err, "%s is unsequenced but carries seq %llu", name,
			       (unsigned long long)env->seq);
	if (env->body_case == TUAP__ENVELOPE__BODY_HELLO) {
		size_t n = env->hello->session_id.len;

		if (n < WIRE_SESSION_MIN)
			return err_set(err, "hello.session_id: %zu bytes, need %u to %u", n,
				       WIRE_SESSION_MIN, WIRE_SESSION_MAX);
	}
	if (env->body_case == TUAP__ENVELOPE__BODY_CTL_REQUEST &&
	    env->ctl_request->req_case == TUAP__CTL_REQUEST__REQ__NOT_SET)
		return err_set(err, "ctl_request without a request");
	return 0;
}

int wire_check(const Tuap__Envelope *env, enum wire_dir dir, struct tuap_err *err)
{
	const char *name = wire_body_name(env->body_case);
	unsigned dirs = 0;

	if ((unsigned)dir > WIRE_TO_CTL)
		return reject(WIRE_BAD, err_set(err, "bad direction %d", (int)dir));
	if (env->version < WIRE_MIN_VERSION)
		return reject(WIRE_OLD,
			      err_set(err,
				      "protocol version %u is older than %u: upgrade the sender",
				      env->version, WIRE_MIN_VERSION));
	/* Envelope header fields are numbered below 16, bodies from 16 (tuap.proto): an unknown
	 * field from 16 up is a body type this side does not know. */
	for (size_t i = 0; i < env->base.n_unknown_fields; i++)
		if (env->base.unknown_fields[i].tag >= 16)
			return reject(WIRE_DENIED,
				      err_set(err, "unknown body type (field %u) %s",
					      env->base.unknown_fields[i].tag, wire_dir_name(dir)));
	for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]); i++)
		if (allow[i].body == env->body_case)
			dirs = allow[i].dirs;
	if (!(dirs & D(dir)))
		return reject(WIRE_DENIED,
			      err_set(err, "%s is not allowed %s", name, wire_dir_name(dir)));
	if (!body_present(env))
		return reject(WIRE_BAD, err_set(err, "%s: body missing", name));
	if (check_semantics(env, dir, err) < 0)
		return WIRE_BAD;
	if (walk(&env->base, 0, "", err) < 0)
		return WIRE_BAD;
	return WIRE_OK;
}

int wire_encode(const Tuap__Envelope *env, struct buf *out, struct tuap_err *err)
{
	size_t n;

	if (!body_present(env))
		return err_set(err, "%s: body missing", wire_body_name(env->body_case));
	if (!protobuf_c_message_check(&env->base))
		return err_set(err, "%s: a required field is missing",
			       wire_body_name(env->body_case));
	if (walk(&env->base, 0, "", err) < 0)
		return -1;
	n = tuap__envelope__get_packed_size(env);
	if (n > WIRE_MAX_MESSAGE)
		return err_set(err, "%s: encodes to %zu bytes, more than the limit of %u",
			       wire_body_name(env->body_case), n, WIRE_MAX_MESSAGE);
	buf_grow(out, n);
	tuap__envelope__pack(env, (uint8_t *)out->s + out->len);
	out->len += n;
	out->s[out->len] = '\0';
	return 0;
}

/* ------------------------------------------------------------------------------------------ */

/* protobuf-c allocates as it parses; this allocator refuses to hold more than a budget
 * proportional to the message at any time, so 1 MiB of tiny repeated submessages cannot become
 * hundreds of MiB. Each block carries its size, so that wire_free needs no budget. */
union hdr {
	max_align_t align;
	size_t size;
};

struct budget {
	size_t used, cap;
	int refused;
};

static void *budget_alloc(void *data, size_t size)
{
	struct budget *b = data;
	union hdr *h;

	if (b && size > b->cap - b->used) {
		b->refused = 1;
		return NULL;
	}
	h = malloc(sizeof(*h) + size);
	if (!h)
		return NULL;
	if (b)
		b->used += size + sizeof(*h);
	h->size = size;
	return h + 1;
}

static void budget_free(void *data, void *p)
{
	struct budget *b = data;
	union hdr *h;

	if (!p)
		return;
	h = (union hdr *)p - 1;
	if (b)
		b->used -= h->size + sizeof(*h);
	free(h);
}

static ProtobufCAllocator free_allocator = {budget_alloc, budget_free, NULL};

/* Version is field 1, a varint; every encoder writes fields in order, so it comes first. Reading
 * it before parsing lets an old peer whose envelope no longer parses still be told to upgrade. */
static int peek_version(const uint8_t *p, size_t len, uint32_t *version)
{
	uint64_t v = 0;

	if (len < 2 || p[0] != 0x08)
		return -1;
	for (size_t i = 1; i < len && i < 11; i++) {
		v |= (uint64_t)(p[i] & 0x7f) << (7 * (i - 1));
		if (!(p[i] & 0x80)) {
			*version = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
			return 0;
		}
	}
	return -1;
}

void wire_scrub_text(char *s)
{
	for (unsigned char *p = (unsigned char *)s; *p; p++) {
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			*p = '?';
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) /* C1 controls, as UTF-8 */
			p[0] = p[1] = '?', p++;
	}
}

/* Every string field of m and its submessages, through the descriptors: a field added to the
 * .proto later is covered without anyone remembering it. */
static void scrub_message(ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (depth > 32)
		return;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		char *member = (char *)m + f->offset;
		size_t n = 1;
		void **v = (void **)member;

		if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(uint32_t *)((char *)m + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			n = *(size_t *)((char *)m + f->quantifier_offset);
			v = *(void ***)member;
		}
		for (size_t k = 0; v && k < n; k++) {
			if (!v[k])
				continue;
			if (f->type == PROTOBUF_C_TYPE_STRING)
				wire_scrub_text(v[k]);
			else
				scrub_message(v[k], depth + 1);
		}
	}
}

int wire_decode(const void *data, size_t len, enum wire_dir dir, Tuap__Envelope **out,
		struct tuap_err *err)
{
	/* protobuf-c holds ~32 bytes of bookkeeping per field while it parses (a field is 2 bytes
	 * on the wire at least) and a struct per submessage (~60x for empty ones). Legitimate
	 * messages with many small fields are small; large ones are mostly strings and bytes. */
	struct budget b = {0, 32 * len + 4 * 1024 * 1024, 0};
	ProtobufCAllocator alloc = {budget_alloc, budget_free, &b};
	Tuap__Envelope *env;
	uint32_t version;
	int r;

	*out = NULL;
	if (len > WIRE_MAX_MESSAGE)
		return reject(WIRE_BAD, err_set(err, "message of %zu bytes exceeds the limit of %u",
						len, WIRE_MAX_MESSAGE));
	if (peek_version(data, len, &version) == 0 && version < WIRE_MIN_VERSION)
		return reject(WIRE_OLD,
			      err_set(err,
				      "protocol version %u is older than %u: upgrade the sender",
				      version, WIRE_MIN_VERSION));
	env = tuap__envelope__unpack(&alloc, len, data);
	if (!env)
		return reject(WIRE_BAD, err_set(err, "undecodable message of %zu bytes%s", len,
						b.refused ? " (expands too much in memory)" : ""));
	r = wire_check(env, dir, err);
	if (r != WIRE_OK) {
		wire_free(env);
		return r;
	}
	/* what an agent says reaches tuapd's log, setup.log and the operator's terminal */
	if (dir == WIRE_FROM_AGENT || dir == WIRE_TO_CTL)
		scrub_message(&env->base, 0);
	*out = env;
	return WIRE_OK;
}

void wire_free(Tuap__Envelope *env)
{
	if (env)
		tuap__envelope__free_unpacked(env, &free_allocator);
}

void wire_error_reply(Tuap__Envelope *env, Tuap__Error *e, int r, const char *message)
{
	wire_init(env);
	tuap__error__init(e);
	switch (r) {
	case WIRE_OLD:
		e->code = TUAP__ERROR__CODE__UPGRADE_REQUIRED;
		e->has_min_version = 1;
		e->min_version = WIRE_MIN_VERSION;
		break;
	case WIRE_DENIED:
		e->code = TUAP__ERROR__CODE__NOT_ALLOWED;
		break;
	default:
		e->code = TUAP__ERROR__CODE__BAD_MESSAGE;
		break;
	}
	e->message = (char *)message;
	env->body_case = TUAP__ENVELOPE__BODY_ERROR;
	env->error = e;
}
