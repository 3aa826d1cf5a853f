/*
 * Placement (controller/tuapd/vm/place.c), pure: what fits where by memory, vCPUs, disk, labels
 * and max_guests, pins, provisions still running, unreachable hypervisors, and the winner (the
 * one whose tightest resource is least tight afterwards; the first on a tie).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "place.h"

#define GIB (1ull << 30)

static struct settings_hv conf[3];
static struct place_hv hv[3];

static void assert_has(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("'%s' not found in '%s'", needle, hay);
}

/* Three hypervisors: a 16 GiB/8 CPU one with 12 GiB committed, a 32 GiB/4 CPU one with 8 GiB
 * committed and 15 vCPUs, and one that is down. No reserves, overcommit 4. */
static int setup(void **state)
{
	(void)state;
	memset(conf, 0, sizeof(conf));
	memset(hv, 0, sizeof(hv));
	for (int i = 0; i < 3; i++) {
		snprintf(conf[i].name, sizeof(conf[i].name), "hv%d", i + 1);
		conf[i].cpu_overcommit = 4.0;
		hv[i].conf = &conf[i];
	}
	hv[0] = (struct place_hv){.conf = &conf[0],
				  .up = true,
				  .memory_mib = 16384,
				  .committed_mib = 12288,
				  .cpus = 8,
				  .committed_vcpus = 4,
				  .guests = 3,
				  .disk_known = true,
				  .disk_available = 500 * GIB};
	hv[1] = (struct place_hv){.conf = &conf[1],
				  .up = true,
				  .memory_mib = 32768,
				  .committed_mib = 8192,
				  .cpus = 4,
				  .committed_vcpus = 15,
				  .guests = 7};
	hv[2] = (struct place_hv){.conf = &conf[2], .up = false};
	snprintf(hv[2].why_down, sizeof(hv[2].why_down), "connection refused");
	snprintf(conf[0].labels[0], sizeof(conf[0].labels[0]), "ssd");
	conf[0].n_labels = 1;
	return 0;
}

static struct place_need need(unsigned mib, unsigned cpus, unsigned long long size)
{
	return (struct place_need){.memory_mib = mib, .cpus = cpus, .size = size, .check = true};
}

static void test_most_room_wins(void **state)
{
	struct place_need n = need(2048, 1, 10 * GIB);
	char why[4096];

	(void)state;
	/* hv1 keeps 2 of 16 GiB (0.125); hv2 keeps 22 of 32 GiB but 0 of 16 vCPUs:
	 * the tightest resource decides, and hv1's is less tight */
	assert_int_equal(place_choose(hv, 3, &n, why, sizeof(why)), 0);
	assert_has(why, "hv1: placed");
	assert_has(why, "hv3: unreachable: connection refused");
	/* with 2 vCPUs hv2 is over (17 of 16) */
	n.cpus = 2;
	assert_int_equal(place_choose(hv, 3, &n, why, sizeof(why)), 0);
	assert_has(why, "hv2: vCPUs: 2 asked, 1 free");
	/* more memory than hv1 has: hv2 (6 GiB asked, 1 vCPU) */
	n = need(6144, 1, GIB);
	assert_int_equal(place_choose(hv, 3, &n, why, sizeof(why)), 1);
	assert_has(why, "hv1: memory: 6144 MiB asked, 4096 MiB free");
}

static void test_reserves_and_disk(void **state)
{
	struct place_need n = need(1024, 1, 10 * GIB);
	char why[4096];

	(void)state;
	conf[0].reserve_memory_mib = 3584; /* hv1: 512 MiB left for guests */
	assert_int_equal(place_choose(hv, 3, &n, why, sizeof(why)), 1);
	assert_has(why, "3584 kept for the host");
	conf[0].reserve_memory_mib = 0;
	conf[0].reserve_disk_gib = 495; /* hv1: 5 GiB of disk left */
	conf[1].reserve_cpus = 4;	/* hv2: no vCPU at all */
	assert_int_equal(place_choose(hv, 3, &n, why, sizeof(why)), -1);
	assert_has(why, "none fits: ");
	assert_has(why, "hv1: disk: 10.0 GiB asked, 5.0 GiB free");
	assert_has(why, "hv2: vCPUs: 1 asked, 0 free");
	/* hv2's disk is not known (no images pool yet): not a constraint */
	conf[1].reserve_cpus = 0;
	n.size = 100000 * GIB;
	assert_int_equal(place_choose(hv, 3, &n, why, sizeof(why)), 1);
	assert_has(why, "disk not known yet");
}

static void test_pin_labels_guests(void **state)
{
	struct place_need n = need(1024, 1, GIB);
	const char *ssd[] = {"ssd"}, *nvme[] = {"nvme"};
	char why[4096];

	(void)state;
	n.pin = "hv2";
	assert_int_equal(place_choose(hv, 3, &n, why, sizeof(why)), 1);
	assert_has(why, "hv2: pinned by hypervisor=hv2");
	n.pin = "hv3";
	assert_int_equal(place_choose(hv, 3, &n, why, sizeof(why)), -1);
	assert_has(why, "hv3 (hypervisor=hv3) does not fit: unreachable");
	n.pin = "hv9";
	assert_int_equal(place_choose(hv, 3, &n, why, sizeof(why)), -1);
	assert_has(why, "hypervisor=hv9 names no hypervisor of tuapd.conf (it has: hv1 hv2 hv3)");
	n.pin = "hv1";
	n.memory_mib = 8192;
	assert_int_equal(place_choose(hv, 3, &n, why, sizeof(why)), -1);
	assert_has(why, "hv1 (hypervisor=hv1) does not fit: memory");
	n = need(1024, 1, GIB);
	n.labels = ssd;
	n.n_labels = 1;
	n.cpus = 3; /* would go to hv1 anyway; labels make it the only one */
	assert_int_equal(place_choose(hv, 3, &n, why, sizeof(why)), 0);
	assert_has(why, "hv2: has no label ssd");
	n.labels = nvme;
	assert_int_equal(place_choose(hv, 3, &n, why, sizeof(why)), -1);
	assert_has(why, "hv1: has no label nvme");
	n = need(1024, 1, GIB);
	conf[0].max_guests = 3;
	assert_int_equal(place_choose(hv, 3, &n, why, sizeof(why)), 1);
	assert_has(why, "hv1: guests: 3 of max_guests 3 already");
	conf[0].max_guests = 0;
}

static void test_pending_counts(void **state)
{
	struct place_need n = need(2048, 1, GIB);
	char why[4096];

	(void)state;
	/* a provision running on hv1, its VM not defined yet, took 3 GiB: hv1 has 1 left */
	hv[0].pending_mib = 3072;
	hv[0].pending_guests = 1;
	assert_int_equal(place_choose(hv, 3, &n, why, sizeof(why)), 1);
	assert_has(why, "sites being provisioned included");
	hv[0].pending_mib = 0;
}

static void test_tie_and_no_check(void **state)
{
	struct place_need n = need(1024, 1, GIB);
	double s;
	char why[1024];

	(void)state;
	hv[1] = hv[0];
	hv[1].conf = &conf[1];
	assert_int_equal(place_choose(hv, 2, &n, why, sizeof(why)), 0);
	/* check off (one implicit hypervisor): what does not fit is still taken */
	n = need(1u << 20, 64, GIB);
	n.check = false;
	assert_int_equal(place_fit(&hv[0], &n, &s, why, sizeof(why)), 1);
	assert_int_equal(place_choose(hv, 1, &n, why, sizeof(why)), 0);
	assert_has(why, "hv1: the only hypervisor");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_most_room_wins, setup),
		cmocka_unit_test_setup(test_reserves_and_disk, setup),
		cmocka_unit_test_setup(test_pin_labels_guests, setup),
		cmocka_unit_test_setup(test_pending_counts, setup),
		cmocka_unit_test_setup(test_tie_and_no_check, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
