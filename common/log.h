/*
 * Logging for all three binaries, in the OpenBSD manner: log_info/log_warn/log_debug/fatal.
 * Lines go to stderr as "PROG: LEVEL: message"; under systemd (JOURNAL_STREAM set) the level is
 * given as a "<N>" priority prefix instead so journald files it correctly. A program may set a
 * writer instead (tuapd: journald's native protocol, with the fields of log_job).
 */
#ifndef TUAP_LOG_H
#define TUAP_LOG_H

#include <stdbool.h>

#include "err.h"

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* prog: short name shown on each line; verbose: 0 info, 1 debug. */
void log_init(const char *prog, int verbose);
void log_error(const char *fmt, ...) TUAP_PRINTF(1, 2);
void log_warn(const char *fmt, ...) TUAP_PRINTF(1, 2);
void log_info(const char *fmt, ...) TUAP_PRINTF(1, 2);
void log_debug(const char *fmt, ...) TUAP_PRINTF(1, 2);
/* What a line is about, for journald's fields DOMAIN, JOB and PHASE (each may be NULL). */
struct log_about {
	const char *domain, *job, *phase;
};
/* A line about a job; shown on stderr as "DOMAIN: message" (job and phase only as fields). */
void log_job(enum log_level level, const struct log_about *about, const char *fmt, ...)
	TUAP_PRINTF(3, 4);

/* Takes every line that passes the level (about may be NULL); returns false when it could
 * not write it, and the line then goes to stderr. NULL: stderr only. */
typedef bool (*log_writer)(enum log_level level, const struct log_about *about, const char *msg);
void log_set_writer(log_writer w);

/* Logs and exits with status 1. */
_Noreturn void fatal(const char *fmt, ...) TUAP_PRINTF(1, 2);

#endif
