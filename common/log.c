/* Logging to stderr / journald; see log.h. */
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *prog_name = "tuap";
static int max_level = LOG_LVL_INFO;
static int journald;
static log_writer writer;

void log_set_writer(log_writer w)
{
	writer = w;
}

void log_init(const char *prog, int verbose)
{
	prog_name = prog;
	max_level = verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO;
	journald = getenv("JOURNAL_STREAM") != NULL;
}

static void vlog_about(enum log_level level, const struct log_about *about, const char *fmt,
		       va_list ap) TUAP_PRINTF(3, 0);

static void vlog_about(enum log_level level, const struct log_about *about, const char *fmt,
		       va_list ap)
{
	/* syslog priorities: err 3, warning 4, info 6, debug 7 */
	static const int prio[] = {3, 4, 6, 7};
	static const char *const name[] = {"error", "warning", "info", "debug"};
	char msg[2048];
	int n = 0;

	if ((int)level > max_level)
		return;
	if (about && about->domain)
		n = snprintf(msg, sizeof(msg), "%s: ", about->domain);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	if (writer && writer(level, about, msg))
		return;
	if (journald)
		fprintf(stderr, "<%d>%s\n", prio[level], msg);
	else
		fprintf(stderr, "%s: %s: %s\n", prog_name, name[level], msg);
}

static void vlog(enum log_level level, const char *fmt, va_list ap) TUAP_PRINTF(2, 0);

static void vlog(enum log_level level, const char *fmt, va_list ap)
{
	vlog_about(level, NULL, fmt, ap);
}

void log_job(enum log_level level, const struct log_about *about, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog_about(level, about, fmt, ap);
	va_end(ap);
}

#define DEFINE_LOG(fn, level)                                                                      \
	void fn(const char *fmt, ...)                                                              \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		vlog(level, fmt, ap);                                                              \
		va_end(ap);                                                                        \
	}

DEFINE_LOG(log_error, LOG_LVL_ERROR)
DEFINE_LOG(log_warn, LOG_LVL_WARN)
DEFINE_LOG(log_info, LOG_LVL_INFO)
DEFINE_LOG(log_debug, LOG_LVL_DEBUG)

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LVL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
