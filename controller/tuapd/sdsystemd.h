/*
 * tuapd under systemd (libsystemd): readiness and stop notices for Type=notify, and log lines
 * in journald's native protocol with the fields DOMAIN, JOB and PHASE (journalctl DOMAIN=x
 * shows one site's lines). Outside systemd all of it does nothing.
 */
#ifndef TUAP_SDSYSTEMD_H
#define TUAP_SDSYSTEMD_H

/* Logs go to journald natively when systemd says it collects stderr (JOURNAL_STREAM). */
void sd_log_init(const char *ident);
/* READY=1 with a status line: the sockets are bound and the journaled jobs resumed. */
void sd_ready(const char *status);
void sd_stopping(void);

#endif
