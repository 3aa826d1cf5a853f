/*
 * Logging for all three binaries, in the OpenBSD manner: log_info/log_warn/log_debug/fatal.
 * Lines go to stderr as "PROG: LEVEL: message"; under systemd (JOURNAL_STREAM set) the level is
 * given as a "<N>" priority prefix instead so journald files it correctly.
 */
#ifndef TUAP_LOG_H
#define TUAP_LOG_H

#include "err.h"

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* prog: short name shown on each line; verbose: 0 info, 1 debug. */
void log_init(const char *prog, int verbose);
void log_error(const char *fmt, ...) TUAP_PRINTF(1, 2);
void log_warn(const char *fmt, ...) TUAP_PRINTF(1, 2);
void log_info(const char *fmt, ...) TUAP_PRINTF(1, 2);
void log_debug(const char *fmt, ...) TUAP_PRINTF(1, 2);
/* Logs and exits with status 1. */
_Noreturn void fatal(const char *fmt, ...) TUAP_PRINTF(1, 2);

#endif
