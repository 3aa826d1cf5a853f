/* libFuzzer target: the agent's users planner (user_plan_build), which turns what tuapd sends
 * (a UsersArgs message) and the host's /etc/passwd, /etc/group and /etc/shadow into the
 * useradd/usermod/groupadd commands it runs as root. Input: passwd text, 0xff, group text,
 * 0xff, shadow text, 0xff, the agent's users.records text, 0xff, then the UsersArgs bytes
 * (protobuf); the input's size says whether SELinux and snapd are there. The records after
 * the run are made from the plan's and read back by the next plan. Whatever it plans must be
 * commands of the shadow tools, each argument one line of text (no NUL cut, no newline), and
 * a refusal must say why. The root is a directory that does not exist, so that the check of
 * existing homes sees nothing of this machine. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "steps/users.h"
#include "tuap.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next 0xff-separated part of data as a malloc'd string. */
static char *part(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *sep = memchr(*p, 0xff, (size_t)(end - *p));
	size_t n = (size_t)((sep ? sep : end) - *p);
	char *s = malloc(n + 1);

	if (!s)
		abort();
	memcpy(s, *p, n);
	s[n] = '\0';
	*p = sep ? sep + 1 : end;
	return s;
}

static int known_tool(const char *t)
{
	static const char *const tools[] = {"useradd", "usermod", "groupadd", "gpasswd", "chpasswd",
					    "passwd",  "chage",	  "groupmod", "snap"};

	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
		if (!strcmp(t, tools[i]))
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	char *passwd, *group, *shadow, *records;
	Tuap__UsersArgs *a;
	struct user_plan plan;
	struct tuap_err err;

	if (size > 65536)
		return 0;
	passwd = part(&p, end);
	group = part(&p, end);
	shadow = part(&p, end);
	records = part(&p, end);
	a = tuap__users_args__unpack(NULL, (size_t)(end - p), p);
	if (a) {
		struct user_plan_env env = {passwd,
					    group,
					    shadow[0] ? shadow : NULL,
					    "/nonexistent-tuap-fuzz-root",
					    records[0] ? records : NULL,
					    size & 1,
					    (size & 2) != 0};

		err.msg[0] = '\0';
		if (user_plan_build_env(a, &env, &plan, &err) == 0) {
			char *next = user_records_update(env.records, plan.record.v, plan.record.n,
							 passwd, group, env.shadow);
			struct user_plan again;

			/* the records a run leaves are read by the next run's plan */
			env.records = next;
			if (user_plan_build_env(a, &env, &again, &err) < 0 && !err.msg[0])
				abort();
			user_plan_free(&again);
			free(next);
			for (size_t i = 0; i < plan.n_cmds; i++) {
				char **argv = plan.cmds[i].argv;

				if (!argv[0] || !known_tool(argv[0]))
					abort();
				for (size_t k = 0; argv[k]; k++)
					if (strchr(argv[k], '\n'))
						abort();
			}
		} else if (!err.msg[0]) {
			abort();
		}
		user_plan_free(&plan);
		tuap__users_args__free_unpacked(a, NULL);
	}
	free(passwd);
	free(group);
	free(shadow);
	free(records);
	return 0;
}
