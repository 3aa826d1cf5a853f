/* tuapd's systemd side; see sdsystemd.h. */
#include "sdsystemd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include "log.h"

static char ident_field[64];

static bool journal_writer(enum log_level level, const struct log_about *about, const char *msg)
{
	static const int prio[] = {3, 4, 6, 7}; /* err, warning, info, debug */
	char prio_field[16], dom[128], job[64], phase[48], *m;
	struct iovec iov[6];
	int n = 0, rc;

	if (asprintf(&m, "MESSAGE=%s", msg) < 0)
		return false;
	snprintf(prio_field, sizeof(prio_field), "PRIORITY=%d", prio[level]);
	iov[n++] = (struct iovec){m, strlen(m)};
	iov[n++] = (struct iovec){prio_field, strlen(prio_field)};
	iov[n++] = (struct iovec){ident_field, strlen(ident_field)};
#define FIELD(buf, name, v)                                                                        \
	if (about && (v)) {                                                                        \
		snprintf(buf, sizeof(buf), name "=%s", v);                                         \
		iov[n++] = (struct iovec){buf, strlen(buf)};                                       \
	}
	FIELD(dom, "DOMAIN", about->domain)
	FIELD(job, "JOB", about->job)
	FIELD(phase, "PHASE", about->phase)
#undef FIELD
	rc = sd_journal_sendv(iov, n);
	free(m);
	return rc >= 0; /* else stderr, as without journald */
}

void sd_log_init(const char *ident)
{
	if (!getenv("JOURNAL_STREAM"))
		return;
	snprintf(ident_field, sizeof(ident_field), "SYSLOG_IDENTIFIER=%s", ident);
	log_set_writer(journal_writer);
}

void sd_ready(const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void sd_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}
