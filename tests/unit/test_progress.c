/* Unit tests for tuap-ctl's event rendering (plain lines and JSON). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"

static Tuap__CtlEvent phase_ev(const char *name, Tuap__PhaseEvent__State st, uint64_t elapsed,
			       Tuap__PhaseEvent *ph)
{
	Tuap__CtlEvent ev = TUAP__CTL_EVENT__INIT;

	tuap__phase_event__init(ph);
	ph->phase = (char *)name;
	ph->state = st;
	ev.ev_case = TUAP__CTL_EVENT__EV_PHASE;
	ev.phase = ph;
	ev.has_elapsed_ms = 1;
	ev.elapsed_ms = elapsed;
	ev.domain = "example.test";
	ev.job_id = "j1";
	return ev;
}

static char *render(bool json, void (*feed)(struct progress *))
{
	struct progress p;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	progress_init(&p, f, json);
	assert_int_not_equal(p.mode, PROGRESS_TTY);
	feed(&p);
	progress_finish(&p);
	fclose(f);
	return out;
}

static void feed_job(struct progress *p)
{
	Tuap__PhaseEvent ph;
	Tuap__StepEvent st = TUAP__STEP_EVENT__INIT;
	char *lines[] = {"install -d /var/www/example.test", "content: 1 files"};
	Tuap__CtlEvent ev = phase_ev("image", TUAP__PHASE_EVENT__STATE__STARTED, 100, &ph);

	progress_event(p, &ev);
	ev = phase_ev("image", TUAP__PHASE_EVENT__STATE__DONE, 3200, &ph);
	ph.has_phase_ms = 1;
	ph.phase_ms = 3100;
	progress_event(p, &ev);
	/* data progress: 0..100 % in 1 % steps prints only every 10 % */
	st.step = TUAP__STEP__STEP_DATA;
	st.state = TUAP__STEP_STATE__STATE_PROGRESS;
	st.has_done = st.has_total = 1;
	st.total = 100 << 20;
	ev.ev_case = TUAP__CTL_EVENT__EV_STEP;
	ev.step = &st;
	for (int i = 0; i <= 100; i++) {
		st.done = (uint64_t)i << 20;
		progress_event(p, &ev);
	}
	st.step = TUAP__STEP__STEP_MAKE;
	st.state = TUAP__STEP_STATE__STATE_LOG;
	st.has_done = st.has_total = 0;
	st.n_lines = 2;
	st.lines = lines;
	progress_event(p, &ev);
	st.n_lines = 0;
	st.state = TUAP__STEP_STATE__STATE_FAILED;
	st.has_exit_code = 1;
	st.exit_code = 2;
	st.message = "make exited with 2";
	progress_event(p, &ev);
}

static int count(const char *s, const char *needle)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void test_plain(void **state)
{
	char *out = render(false, feed_job);

	assert_non_null(strstr(out, "[    0.1s] image: started\n"));
	assert_non_null(strstr(out, "[    3.2s] image: done in 3.1s\n"));
	assert_int_equal(count(out, "data: "), 11);
	assert_non_null(strstr(out, "data: 50% (50.0 MiB of 100.0 MiB)\n"));
	assert_non_null(strstr(out, "    make| install -d /var/www/example.test\n"));
	assert_non_null(strstr(out, "make: FAILED (exit 2): make exited with 2\n"));
	free(out);
}

/* A phase that reports progress in words (the push to an existing host) shows them. */
static void feed_words(struct progress *p)
{
	Tuap__PhaseEvent ph;
	Tuap__CtlEvent ev = phase_ev("push", TUAP__PHASE_EVENT__STATE__PROGRESS, 500, &ph);

	ph.message = "admin@192.0.2.2: checking passwordless sudo";
	progress_event(p, &ev);
}

static void test_progress_words(void **state)
{
	char *out = render(false, feed_words);

	assert_string_equal(out, "[    0.5s] push: admin@192.0.2.2: checking passwordless sudo\n");
	free(out);
}

static void test_json(void **state)
{
	char *out = render(true, feed_job), *save = NULL;
	int n = 0;
	const char *expect_first[] = {"phase", "phase", "step"};

	for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		json_object *o = json_tokener_parse(l), *t;

		assert_non_null(o);
		assert_true(json_object_object_get_ex(o, "type", &t));
		if (n < 3)
			assert_string_equal(json_object_get_string(t), expect_first[n]);
		assert_true(json_object_object_get_ex(o, "domain", &t));
		assert_string_equal(json_object_get_string(t), "example.test");
		json_object_put(o);
		n++;
	}
	/* every event is one line, progress events are not thinned out in JSON */
	assert_int_equal(n, 2 + 101 + 2);
	free(out);
}

static void test_bytes(void **state)
{
	char b[32];

	progress_bytes(512, b, sizeof(b));
	assert_string_equal(b, "512 B");
	progress_bytes(1536, b, sizeof(b));
	assert_string_equal(b, "1.5 KiB");
	progress_bytes(3ULL << 30, b, sizeof(b));
	assert_string_equal(b, "3.0 GiB");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_progress_words),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
