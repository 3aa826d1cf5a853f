/*
 * How tuap-ctl shows a job's events (CtlEvent) to the operator: on a terminal, a status line
 * redrawn in place with a progress bar while output lines scroll above it; otherwise plain
 * timestamped lines; with --json, one JSON object per event per line (for scripts).
 */
#ifndef TUAP_PROGRESS_H
#define TUAP_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

#include "tuap.pb-c.h"

enum progress_mode { PROGRESS_PLAIN, PROGRESS_TTY, PROGRESS_JSON };

struct progress {
	enum progress_mode mode;
	FILE *out;
	bool status_shown; /* TTY: a status line is on screen and must be cleared first */
	int width;	   /* TTY columns */
	char status[256];  /* TTY: the status line currently shown */
	char phase[32];	   /* plain: the phase whose progress was last printed */
	int last_pct;	   /* plain: progress is printed every 10 % */
};

/* mode PLAIN or TTY is chosen by isatty(out) unless json. */
void progress_init(struct progress *p, FILE *out, bool json);
void progress_event(struct progress *p, const Tuap__CtlEvent *ev);
/* Clears a status line left on screen. */
void progress_finish(struct progress *p);

/* "1.5 GiB", "12.0 MiB", "512 B" */
void progress_bytes(unsigned long long n, char *out, size_t len);

#endif
