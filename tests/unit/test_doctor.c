/* Unit tests for controller/ctl/doctor.c (tuap-ctl doctor's judges and report) and
 * controller/render/virtdef.c (the network and pool rules doctor shares with tuapd), and
 * controller/ctl/subproc.c (its deadline). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "doctor.h"
#include "subproc.h"
#include "virtdef.h"

static const char nft_drop[] = "table inet filter {\n"
			       "\tchain input {\n"
			       "\t\ttype filter hook input priority filter; policy accept;\n"
			       "\t\tct state established,related accept\n"
			       "\t\ttcp dport 7000-7900 counter packets 3 bytes 180 drop\n"
			       "\t}\n"
			       "\tchain output {\n"
			       "\t\ttype filter hook output priority filter; policy accept;\n"
			       "\t\ttcp dport 7807 drop\n"
			       "\t}\n"
			       "}\n";

static void test_nft(void **state)
{
	char rule[256], where[64];

	(void)state;
	assert_int_equal(doctor_nft_judge(nft_drop, 7807, rule, sizeof(rule), where, sizeof(where)),
			 DOCTOR_FW_DROPPED);
	assert_string_equal(rule, "tcp dport 7000-7900 counter packets 3 bytes 180 drop");
	assert_string_equal(where, "inet filter input");
	/* outside the range; output chains do not count */
	assert_int_equal(doctor_nft_judge(nft_drop, 22, rule, sizeof(rule), where, sizeof(where)),
			 DOCTOR_FW_OPEN);
	/* an accept before the drop wins; a set names the port; udp is not tcp */
	assert_int_equal(
		doctor_nft_judge("table ip t {\n chain c {\n  type filter hook input "
				 "priority 0; policy accept;\n  iifname \"virbr0\" tcp "
				 "dport 7807 accept\n  tcp dport { 22, 7807 } reject\n }\n}\n",
				 7807, rule, sizeof(rule), where, sizeof(where)),
		DOCTOR_FW_OPEN);
	assert_int_equal(
		doctor_nft_judge("table ip t {\n chain c {\n  type filter hook input "
				 "priority 0; policy accept;\n  udp dport 7807 drop\n  tcp "
				 "dport { 22, 7807 } reject with tcp reset\n }\n}\n",
				 7807, rule, sizeof(rule), where, sizeof(where)),
		DOCTOR_FW_DROPPED);
	assert_string_equal(rule, "tcp dport { 22, 7807 } reject with tcp reset");
	assert_int_equal(
		doctor_nft_judge("table inet f {\n chain in {\n  type filter hook input "
				 "priority 0; policy drop;\n  tcp dport 22 accept\n }\n}\n",
				 7807, rule, sizeof(rule), where, sizeof(where)),
		DOCTOR_FW_POLICY_DROP);
	assert_string_equal(where, "inet f in");
	assert_int_equal(doctor_nft_judge("", 7807, rule, sizeof(rule), where, sizeof(where)),
			 DOCTOR_FW_OPEN);
}

static void test_iptables(void **state)
{
	char rule[256];

	(void)state;
	assert_int_equal(doctor_iptables_judge("-P INPUT ACCEPT\n-A INPUT -p tcp -m multiport "
					       "--dports 22,7807 -j REJECT\n",
					       7807, rule, sizeof(rule)),
			 DOCTOR_FW_DROPPED);
	assert_int_equal(doctor_iptables_judge("-P INPUT DROP\n-A INPUT -p tcp -m tcp --dport "
					       "7807 -j ACCEPT\n",
					       7807, rule, sizeof(rule)),
			 DOCTOR_FW_OPEN);
	assert_int_equal(doctor_iptables_judge("-P INPUT DROP\n", 7807, rule, sizeof(rule)),
			 DOCTOR_FW_POLICY_DROP);
}

static void test_tcp_listening(void **state)
{
	/* 198.51.100.1:7807 (0x1E7F) listening; 127.0.0.1:7808 established */
	const char tcp[] =
		"  sl  local_address rem_address   st tx_queue rx_queue\n"
		"   0: 016433C6:1E7F 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n"
		"   1: 0100007F:1E80 0100007F:9C40 01 00000000:00000000 00:00000000 00000000\n";

	(void)state;
	assert_true(doctor_tcp_listening(tcp, "198.51.100.1", 7807));
	assert_false(doctor_tcp_listening(tcp, "198.51.100.2", 7807));
	assert_false(doctor_tcp_listening(tcp, "127.0.0.1", 7808));
	assert_true(doctor_tcp_listening("0: 00000000:1E7F 00000000:0000 0A\n", "10.0.0.1", 7807));
}

static void test_vol_growth(void **state)
{
	uint64_t g;

	(void)state;
	assert_int_equal(doctor_vol_growth(" disk.qcow2  /vms/a/disk.qcow2  file  10.00 GiB  "
					   "196.00 KiB\n seed.iso  /vms/a/seed.iso  file  364.00 "
					   "KiB  364.00 KiB\n",
					   &g),
			 0);
	assert_int_equal(g, 10ull * 1073741824 - 196 * 1024);
	assert_int_equal(doctor_vol_growth("", &g), 0);
	assert_int_equal(g, 0);
	assert_int_equal(doctor_vol_growth(" x /p file 1.0 GB 2 KiB\n", &g), -1);
}

static void test_report(void **state)
{
	struct doctor_report r = {0};
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	doctor_add(&r, "kvm", DOCTOR_WARN, "TCG");
	doctor_fix(&r, "set %s", "virt_type");
	assert_int_equal(doctor_exit_code(&r), 0);
	doctor_add(&r, "pools", DOCTOR_FAIL, "elsewhere");
	doctor_fix(&r, "virsh pool-undefine x");
	assert_int_equal(doctor_exit_code(&r), 1);
	doctor_print(&r, f);
	fclose(f);
	assert_string_equal(text, "WARN  kvm: TCG\n      fix: set virt_type\n"
				  "FAIL  pools: elsewhere\n      fix: virsh pool-undefine x\n");
	free(text);
	doctor_report_free(&r);
	assert_true(doctor_build_time() > 1700000000 && doctor_build_time() <= time(NULL));
}

static void test_virtdef(void **state)
{
	struct virtdef_subnet s;
	struct tuap_err err;
	const char net[] = "<network><name>m</name><forward mode='nat'/><bridge name='virbr-m'/>"
			   "<ip address='198.51.100.1' netmask='255.255.255.0'/></network>";
	const char pool[] = "<pool type='dir'><name>tuap-a</name><target><path>/vms/a/</path>"
			    "</target></pool>";

	(void)state;
	assert_int_equal(virtdef_subnet("198.51.100.0/24", &s, &err), 0);
	assert_string_equal(s.gateway, "198.51.100.1");
	assert_int_equal(virtdef_subnet("198.51.100.1/24", &s, &err), -1);
	assert_non_null(strstr(err.msg, "did you mean 198.51.100.0/24"));
	virtdef_subnet("198.51.100.0/24", &s, &err);
	assert_int_equal(virtdef_network_check(net, sizeof(net) - 1, "m", &s, "virbr-m", &err), 0);
	assert_int_equal(virtdef_network_check(net, sizeof(net) - 1, "m", &s, "virbr-x", &err), -1);
	assert_string_equal(err.msg, "network m exists on bridge virbr-m, not virbr-x");
	assert_int_equal(virtdef_pool_check(pool, sizeof(pool) - 1, "tuap-a", "/vms/a", &err), 0);
	assert_int_equal(virtdef_pool_check(pool, sizeof(pool) - 1, "tuap-a", "/srv/a", &err), -1);
	assert_non_null(strstr(err.msg, "exists at /vms/a, not at /srv/a"));
}

static void test_subproc(void **state)
{
	const char *echo[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
	const char *slow[] = {"sh", "-c", "sleep 30", NULL};
	struct subproc p;
	time_t t0 = time(NULL);

	(void)state;
	assert_true(subproc_have("sh"));
	assert_false(subproc_have("tuap-no-such-program"));
	assert_int_equal(subproc_run(echo, 5000, &p), -1);
	assert_int_equal(p.code, 3);
	assert_string_equal(p.out.s, "out\n");
	assert_string_equal(p.err.s, "err\n");
	subproc_free(&p);
	assert_int_equal(subproc_run(slow, 300, &p), -1);
	assert_true(p.timed_out);
	assert_true(time(NULL) - t0 < 10);
	subproc_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nft),	      cmocka_unit_test(test_iptables),
		cmocka_unit_test(test_tcp_listening), cmocka_unit_test(test_vol_growth),
		cmocka_unit_test(test_report),	      cmocka_unit_test(test_virtdef),
		cmocka_unit_test(test_subproc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
