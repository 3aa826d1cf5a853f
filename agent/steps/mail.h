/* The mail step's pure part, exposed for tests: root's alias in /etc/aliases. */
#ifndef TUAP_AGENT_STEPS_MAIL_H
#define TUAP_AGENT_STEPS_MAIL_H

#include <stdbool.h>

/* old (may be NULL) with its root entry (continuation lines included) replaced by
 * "root: EMAIL", later root entries dropped, or the entry appended. malloc'd; *changed tells
 * whether it differs from old. */
char *aliases_set_root(const char *old, const char *email, bool *changed);

#endif
