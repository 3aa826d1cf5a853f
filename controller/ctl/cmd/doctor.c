/*
 * tuap-ctl doctor: what is wrong with this hypervisor before a provision fails half-way. Each
 * check gathers its facts with the caller's rights (virsh for libvirt, the control socket for
 * tuapd, /proc, /sys, nft or iptables, the clock), every program and socket wait bounded, and
 * says OK, WARN or FAIL with the fix; the judging is in ../doctor.c. A check that depends on
 * one that failed says WARN "not checked", so one cause gives one FAIL. This file: the
 * configuration, tuapd, the groups, /dev/kvm, the agent port, the firewall, the clock and the
 * command; doctor_virt.c: libvirt, its network and pools, the bridge, space, the images.
 */
#include "doctor_checks.h"

const char *doctor_first_line(const struct buf *b, char *out, size_t len)
{
	const char *s = b->s ? b->s : "";
	size_t o = 0;

	out[0] = '\0';
	while (*s && o + 1 < len) {
		size_t n = strcspn(s, "\n");

		if (n)
			o += (size_t)snprintf(out + o, len - o, "%s%.*s", o ? "; " : "", (int)n, s);
		s += n + (s[n] == '\n');
	}
	return out;
}

static void check_config(struct doctor *d)
{
	struct tuap_err err;
	char e[1024];

	settings_defaults(&d->s);
	if (!fs_exists(d->conf)) {
		doctor_add(&d->r, "config", DOCTOR_WARN, "%s does not exist: the defaults apply",
			   d->conf);
		doctor_fix(&d->r, "create %s (see tuapd.conf(5)), or give --config PATH", d->conf);
		return;
	}
	if (settings_load(d->conf, &d->s, &err) < 0) {
		doctor_add(&d->r, "config", DOCTOR_FAIL, "%s", err_str(&err, e, sizeof(e)));
		doctor_fix(&d->r, "fix that line (tuapd --check -c %s says the same)", d->conf);
		settings_defaults(&d->s);
		return;
	}
	doctor_add(&d->r, "config", DOCTOR_OK, "%s reads", d->conf);
}

/* ---- tuapd and the groups ---- */

/* Whether something accepts connections on the unix socket path: a socket file left by a
 * tuapd that died is refused at once (ZeroMQ would wait for it to come back). */
static bool socket_listens(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0 || strlen(path) >= sizeof(sun.sun_path)) {
		if (fd >= 0)
			close(fd);
		return true; /* not known: let the status request tell */
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	ok = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 || errno != ECONNREFUSED;
	close(fd);
	return ok;
}

static void check_tuapd(struct doctor *d)
{
	const char *env = getenv("TUAP_SOCKET");
	char path[4096], version[64];
	struct ctlclient c;
	struct tuap_err err;
	struct stat st;
	size_t n;
	int opened;

	if (env && *env)
		snprintf(path, sizeof(path), "%s", env);
	else if (settings_ctl_socket(&d->s, path, sizeof(path), &err) < 0)
		snprintf(path, sizeof(path), "/run/tuap/ctl.sock");
	if (stat(path, &st) == 0) {
		d->tuapd_uid = st.st_uid;
		d->tuapd_uid_known = true;
	}
	if (access(path, R_OK | W_OK) < 0 && errno == EACCES) {
		d->socket_denied = true;
		doctor_add(&d->r, "tuapd", DOCTOR_WARN,
			   "not checked: %s exists but this user may not use it", path);
		doctor_fix(&d->r, "see the groups check");
		return;
	}
	if (fs_exists(path) && !socket_listens(path))
		opened = err_set(&err,
				 "tuapd is not running (nothing listens on %s, left by the "
				 "last one)",
				 path);
	else
		opened = ctlclient_open(&c, path, &err);
	if (opened < 0) {
		doctor_add(&d->r, "tuapd", DOCTOR_FAIL, "%s", err.msg);
		doctor_fix(&d->r, "start it: sudo systemctl start tuapd (why it stopped: "
				  "journalctl -u tuapd)");
		return;
	}
	if (ctlclient_status(&c, TUAPD_DEADLINE_MS, version, sizeof(version), &n, &err) < 0) {
		doctor_add(&d->r, "tuapd", DOCTOR_FAIL, "stalled: status request on %s: %s", path,
			   err.msg);
		doctor_fix(&d->r, "restart it: sudo systemctl restart tuapd (its log: journalctl "
				  "-u tuapd)");
	} else if (strcmp(version, TUAP_VERSION)) {
		d->tuapd = true;
		doctor_add(&d->r, "tuapd", DOCTOR_WARN,
			   "tuapd %s answers on %s; this is tuap-ctl %s",
			   version[0] ? version : "(older than 0.1, version not told)", path,
			   TUAP_VERSION);
		doctor_fix(&d->r, "install one tuap version and restart tuapd");
	} else {
		d->tuapd = true;
		doctor_add(&d->r, "tuapd", DOCTOR_OK, "tuapd %s answers on %s (%zu domains)",
			   version, path, n);
	}
	ctlclient_close(&c);
}

static bool in_group(gid_t g)
{
	gid_t v[1024];
	int n = getgroups(1024, v);

	if (getegid() == g)
		return true;
	for (int i = 0; i < n; i++)
		if (v[i] == g)
			return true;
	return false;
}

static void check_caller_groups(struct doctor *d)
{
	struct group *g = getgrnam(d->s.ctl_group);
	struct passwd *pw = getpwuid(geteuid());
	const char *me = pw ? pw->pw_name : "you";

	if (!g) {
		doctor_add(&d->r, "groups", DOCTOR_FAIL, "there is no group %s (ctl_group)",
			   d->s.ctl_group);
		doctor_fix(&d->r, "sudo addgroup --system %s, or set ctl_group in %s",
			   d->s.ctl_group, d->conf);
	} else if (geteuid() == 0) {
		doctor_add(&d->r, "groups", DOCTOR_OK,
			   "root may use tuapd's socket (operators need group %s)", g->gr_name);
	} else if (!in_group(g->gr_gid)) {
		doctor_add(&d->r, "groups", DOCTOR_FAIL,
			   "%s is not in group %s, which tuapd's socket belongs to (mode 0660)", me,
			   g->gr_name);
		doctor_fix(&d->r, "sudo adduser %s %s, then log in again", me, g->gr_name);
	} else {
		doctor_add(&d->r, "groups", DOCTOR_OK, "%s is in group %s", me, g->gr_name);
	}
}

/* Whether user (name, primary gid) is in the group named group; -1 when there is none. */
static int user_in(const char *user, gid_t primary, const char *group)
{
	struct group *g = getgrnam(group);
	gid_t v[1024];
	int n = 1024;

	if (!g)
		return -1;
	if (getgrouplist(user, primary, v, &n) < 0)
		return 0;
	for (int i = 0; i < n; i++)
		if (v[i] == g->gr_gid)
			return 1;
	return 0;
}

static void check_tuapd_user(struct doctor *d)
{
	struct passwd *pw = d->tuapd_uid_known ? getpwuid(d->tuapd_uid) : getpwnam("tuap");
	const char *groups[] = {"libvirt", "kvm"};
	char missing[64] = "";

	if (!pw) {
		doctor_add(&d->r, "tuapd-user", DOCTOR_WARN,
			   "not known: tuapd's socket is not there and there is no user tuap");
		doctor_fix(&d->r, "sudo adduser --system --group tuap (the package does this)");
		return;
	}
	if (pw->pw_uid == 0) {
		doctor_add(&d->r, "tuapd-user", DOCTOR_OK,
			   "tuapd runs as root, with libvirt's and /dev/kvm's rights");
		return;
	}
	for (size_t i = 0; i < 2; i++)
		if (user_in(pw->pw_name, pw->pw_gid, groups[i]) == 0)
			snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing),
				 "%s%s", missing[0] ? " and " : "", groups[i]);
	if (missing[0]) {
		doctor_add(&d->r, "tuapd-user", DOCTOR_FAIL, "tuapd's user %s is not in %s",
			   pw->pw_name, missing);
		doctor_fix(&d->r,
			   "sudo usermod -a -G libvirt,kvm %s && sudo systemctl restart tuapd",
			   pw->pw_name);
	} else {
		doctor_add(&d->r, "tuapd-user", DOCTOR_OK, "tuapd's user %s is in libvirt and kvm",
			   pw->pw_name);
	}
}

static void check_kvm(struct doctor *d)
{
	struct group *kvm = getgrnam("kvm");
	struct stat st;
	bool have = stat("/dev/kvm", &st) == 0 && S_ISCHR(st.st_mode);
	bool usable = have && ((kvm && st.st_gid == kvm->gr_gid && (st.st_mode & 060) == 060) ||
			       (st.st_mode & 06) == 06);

	if (!strcmp(d->s.virt_type, "qemu")) {
		doctor_add(&d->r, "kvm", DOCTOR_WARN,
			   "virt_type = \"qemu\": guests run under TCG emulation, about 10-20x "
			   "slower than with KVM (/dev/kvm %s)",
			   !have    ? "absent"
			   : usable ? "present"
				    : "present but not group kvm 0660");
		doctor_fix(&d->r, "once KVM can run guests here, set virt_type = \"kvm\"; in %s",
			   d->conf);
	} else if (!have) {
		doctor_add(&d->r, "kvm", DOCTOR_FAIL, "no /dev/kvm, and virt_type is \"kvm\"");
		doctor_fix(&d->r,
			   "enable VT-x/AMD-V in the firmware and sudo modprobe kvm_intel (or "
			   "kvm_amd); or set virt_type = \"qemu\"; in %s (TCG, 10-20x slower)",
			   d->conf);
	} else if (!usable) {
		doctor_add(&d->r, "kvm", DOCTOR_FAIL,
			   "/dev/kvm is mode %04o group %u: qemu (group kvm) cannot open it",
			   st.st_mode & 07777, (unsigned)st.st_gid);
		doctor_fix(&d->r,
			   "sudo chgrp kvm /dev/kvm && sudo chmod 0660 /dev/kvm (udev's rule "
			   "does this at boot)");
	} else {
		doctor_add(&d->r, "kvm", DOCTOR_OK, "/dev/kvm is there for group kvm");
	}
}

/* ---- libvirt ---- */

static char *read_proc(const char *path)
{
	struct tuap_err err;

	return fs_read_file(path, 16u << 20, NULL, &err);
}

static void check_agent_endpoint(struct doctor *d)
{
	char host[SETTINGS_STR_MAX], br[64];
	struct virtdef_subnet sn;
	struct tuap_err err;
	unsigned port;
	char *tcp;

	if (settings_endpoint_split(d->s.agent_endpoint, host, sizeof(host), &port, &err) < 0 ||
	    virtdef_subnet(d->s.mgmt_subnet, &sn, &err) < 0)
		return;
	if (strcmp(host, sn.gateway)) {
		doctor_add(&d->r, "agent-endpoint", DOCTOR_FAIL,
			   "agent_endpoint %s is not %s, the only address of this host guests "
			   "reach on %s",
			   d->s.agent_endpoint, sn.gateway, d->s.mgmt_network);
		doctor_fix(&d->r, "agent_endpoint = \"tcp://%s:%u\"; in %s (or leave it out)",
			   sn.gateway, port, d->conf);
		return;
	}
	snprintf(br, sizeof(br), "/sys/class/net/%s", d->s.mgmt_bridge);
	if (!fs_exists(br) || !d->tuapd) {
		doctor_add(&d->r, "agent-endpoint", DOCTOR_WARN, "not checked: %s",
			   !d->tuapd ? "tuapd was not reached" : "the management bridge is not up");
		doctor_fix(&d->r, "see the tuapd and mgmt-network checks");
		return;
	}
	tcp = read_proc("/proc/net/tcp");
	if (!tcp || !doctor_tcp_listening(tcp, host, port)) {
		doctor_add(&d->r, "agent-endpoint", DOCTOR_FAIL,
			   "nothing listens on %s:%u, where guests connect (agent_listen is %s)",
			   host, port, d->s.agent_listen);
		doctor_fix(&d->r,
			   "agent_listen = \"tcp://%s:%u\"; (or tcp://0.0.0.0:%u) in %s, and "
			   "restart tuapd",
			   host, port, port, d->conf);
	} else {
		doctor_add(&d->r, "agent-endpoint", DOCTOR_OK,
			   "tuapd listens on %s:%u, on bridge %s of %s", host, port,
			   d->s.mgmt_bridge, d->s.mgmt_network);
	}
	free(tcp);
}

static void check_firewall(struct doctor *d)
{
	const char *nft[] = {"nft", "list", "ruleset", NULL};
	const char *ipt[] = {"iptables", "-S", "INPUT", NULL};
	bool use_nft = subproc_have("nft");
	char rule[1024], where[256] = "", line[256], host[SETTINGS_STR_MAX];
	enum doctor_fw fw;
	struct subproc p;
	unsigned port = 0;

	settings_endpoint_split(d->s.agent_endpoint, host, sizeof(host), &port, NULL);
	if (!use_nft && !subproc_have("iptables")) {
		doctor_add(&d->r, "firewall", DOCTOR_OK, "neither nft nor iptables is installed");
		return;
	}
	if (subproc_run(use_nft ? nft : ipt, TOOL_DEADLINE_MS, &p) < 0) {
		doctor_add(&d->r, "firewall", DOCTOR_WARN, "not checked: %s %s",
			   use_nft ? "nft list ruleset" : "iptables -S INPUT",
			   p.timed_out ? "stalled (no answer within 5 s)"
				       : doctor_first_line(&p.err, line, sizeof(line)));
		doctor_fix(&d->r, "run doctor as root (sudo tuap-ctl doctor) to read the rules");
		subproc_free(&p);
		return;
	}
	fw = use_nft ? doctor_nft_judge(p.out.s, port, rule, sizeof(rule), where, sizeof(where))
		     : doctor_iptables_judge(p.out.s, port, rule, sizeof(rule));
	subproc_free(&p);
	if (fw == DOCTOR_FW_DROPPED)
		doctor_add(&d->r, "firewall", DOCTOR_FAIL, "'%s'%s%s drops agents' port %u", rule,
			   where[0] ? " in " : "", where, port);
	else if (fw == DOCTOR_FW_POLICY_DROP)
		doctor_add(&d->r, "firewall", DOCTOR_WARN,
			   "the input policy%s%s is drop and no rule names port %u: agents get in "
			   "only if another rule accepts them",
			   where[0] ? " of " : "", where, port);
	if (fw != DOCTOR_FW_OPEN && use_nft)
		doctor_fix(
			&d->r,
			"sudo nft insert rule %s iifname \"%s\" tcp dport %u accept (and make it "
			"permanent in /etc/nftables.conf)",
			where, d->s.mgmt_bridge, port);
	else if (fw != DOCTOR_FW_OPEN)
		doctor_fix(&d->r, "sudo iptables -I INPUT -i %s -p tcp --dport %u -j ACCEPT",
			   d->s.mgmt_bridge, port);
	else
		doctor_add(&d->r, "firewall", DOCTOR_OK, "no %s input rule drops port %u",
			   use_nft ? "nft" : "iptables", port);
}

static void check_clock(struct doctor *d)
{
	const char *argv[] = {"timedatectl", "show", "-p", "NTPSynchronized", "--value", NULL};
	time_t now = time(NULL), built = doctor_build_time();
	char now_s[32], built_s[32];
	struct subproc p;

	strftime(now_s, sizeof(now_s), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	strftime(built_s, sizeof(built_s), "%Y-%m-%d", gmtime(&built));
	if (now < built) {
		doctor_add(&d->r, "clock", DOCTOR_FAIL,
			   "the clock says %s, before tuap-ctl was "
			   "built (%s): TLS and logs go wrong",
			   now_s, built_s);
		doctor_fix(&d->r,
			   "sudo timedatectl set-ntp true (or sudo date -s 'YYYY-MM-DD HH:MM')");
		return;
	}
	if (!subproc_have("timedatectl") || subproc_run(argv, TOOL_DEADLINE_MS, &p) < 0) {
		if (subproc_have("timedatectl"))
			subproc_free(&p);
		doctor_add(&d->r, "clock", DOCTOR_OK,
			   "%s, after the build date; NTP state unknown (timedatectl %s)", now_s,
			   subproc_have("timedatectl") ? "did not answer" : "absent");
		return;
	}
	if (!strncmp(p.out.s, "no", 2)) {
		doctor_add(&d->r, "clock", DOCTOR_WARN, "%s, but not synchronized by NTP", now_s);
		doctor_fix(&d->r, "sudo timedatectl set-ntp true");
	} else {
		doctor_add(&d->r, "clock", DOCTOR_OK, "%s, synchronized by NTP", now_s);
	}
	subproc_free(&p);
}

int cmd_doctor(const struct cli_args *a)
{
	const char *conf = cli_opt(a, "config");
	struct doctor d = {0};
	int code;

	if (!conf)
		conf = getenv("TUAP_CONFIG");
	snprintf(d.conf, sizeof(d.conf), "%s", conf && *conf ? conf : SETTINGS_DEFAULT_PATH);
	check_config(&d);
	check_tuapd(&d);
	check_caller_groups(&d);
	check_tuapd_user(&d);
	check_kvm(&d);
	doctor_check_libvirt(&d);
	doctor_check_hypervisors(&d);
	doctor_check_network(&d);
	doctor_check_pools(&d);
	doctor_check_bridge(&d);
	doctor_check_space(&d);
	doctor_check_images(&d);
	check_agent_endpoint(&d);
	check_firewall(&d);
	check_clock(&d);
	if (cli_flag(a, "json"))
		doctor_print_json(&d.r, stdout);
	else
		doctor_print(&d.r, stdout);
	code = doctor_exit_code(&d.r);
	doctor_report_free(&d.r);
	return code;
}
