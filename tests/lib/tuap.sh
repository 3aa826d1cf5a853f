# shellcheck shell=bash
# tests/lib/tuap.sh — sourced (bash) after harness.sh (and chroot.sh, for agent_start). The real
# tuapd, tuap-ctl and a chrooted tuap-agent for the loopback controller<->agent tests
# (tests/integration/test_agent_*.sh; the e2e tests use its tuapd helpers): tuapd runs inside
# one of the test's namespaces with its own tuapd.conf (state, run dir and pool in a temp dir),
# the agent runs chrooted in a throwaway Debian root (chroot.sh) inside another, and tuap-ctl
# talks to tuapd from the host namespace over the control socket, which is a file (ipc://) and
# so reachable from any network namespace.
#
#   tuap_need_bins                    # TUAPD, TUAP_CTL, TUAP_SHIP_AGENT set and executable
#   tuapd_conf DIR ADDR [LINE...]     # DIR/tuapd.conf: state/run/pool under DIR, agents on
#                                     # tcp://ADDR:7807; LINEs are appended (libconfig)
#   tuapd_start NS DIR VAR            # tuapd in NS, log DIR/tuapd.log (appended over restarts);
#                                     # returns once its control socket answers; PID in VAR
#   tuapd_stop PID DIR                # TERM and reap; fails on a sanitizer report in the log
#   tuapd_log_clean LOG               # fails on a sanitizer report in a tuapd log
#   ctl ARG...                        # tuap-ctl against the last started tuapd (bounded)
#   agent_install ROOT CONF           # the shipped agent as ROOT/usr/sbin/tuap-agent, CONF as
#                                     # ROOT/etc/tuap-agent/agent.conf (0600)
#   agent_start NS ROOT VAR LOG       # tuap-agent chrooted in ROOT inside NS, output to LOG
#   tuapd_saw DIR REGEX               # true when tuapd's log has a line matching REGEX
#   site_copy DIR                     # examples/example.test copied to DIR/example.test
#   json_phases FILE                  # the "phase" events of a --json stream as "name:state"
#   json_final FILE                   # the exit code of the stream's final event ("" if none)
#   agent_job_dir ROOT                # the agent's newest job directory in ROOT's state dir
#   agent_host_setup                  # the layout the agent tests share (below)
#   agent_up DOMAIN [LINE...]         # tuapd in C (LINEs as tuapd_conf's), DOMAIN enrolled,
#                                     # its agent installed in R and started in H, hello seen

TUAPT_CTL_DEADLINE=${TUAPT_CTL_DEADLINE:-60}
TUAPT_AGENT_PORT=7807
TUAPT_PY=/usr/bin/python3 # Debian's, with its modules (python3-zmq); not a pyenv shim

tuap_need_bins() {
	local v
	for v in TUAPD TUAP_CTL TUAP_SHIP_AGENT; do
		[ -n "${!v:-}" ] && [ -x "${!v}" ] ||
			tuapt_skip "\$$v is not an executable (run the test through ctest, or set it)"
	done
}

# tuapd_conf DIR ADDR [LINE...]
tuapd_conf() {
	local dir=$1 addr=$2 l
	shift 2
	testnet_ok "$addr/24" || tuapt_die "tuapd_conf: $addr is not a TEST-NET address"
	mkdir -p "$dir"
	{
		echo "# tuapd.conf of a tuap test (tests/lib/tuap.sh)"
		echo "state_dir = \"$dir/state\";"
		echo "run_dir = \"$dir/run\";"
		echo "pool_root = \"$dir/pool\";"
		echo "ctl_group = \"root\";"
		echo "agent_listen = \"tcp://$addr:$TUAPT_AGENT_PORT\";"
		echo "agent_endpoint = \"tcp://$addr:$TUAPT_AGENT_PORT\";"
		echo "public_endpoint = \"tcp://$addr:$TUAPT_AGENT_PORT\";"
		for l in "$@"; do printf '%s\n' "$l"; done
	} >"$dir/tuapd.conf"
	"$TUAPD" -c "$dir/tuapd.conf" --check >/dev/null || tuapt_die "tuapd --check refused $dir/tuapd.conf"
	TUAP_SOCKET=$dir/run/ctl.sock
	export TUAP_SOCKET
}

ctl() {
	timeout "$TUAPT_CTL_DEADLINE" "$TUAP_CTL" "$@"
}

tuapd_status_ok() { ctl status >/dev/null 2>&1; }

# tuapd_start NS DIR VAR
tuapd_start() {
	local _ts_pid
	TUAP_SOCKET=$2/run/ctl.sock
	export TUAP_SOCKET
	TUAPT_BG_LOG=$2/tuapd.log netns_bg "$1" _ts_pid "$TUAPD" -c "$2/tuapd.conf"
	wait_for "tuapd answering on $TUAP_SOCKET" 20 tuapd_status_ok ||
		{ tail -n 20 "$2/tuapd.log" >&2; return 1; }
	printf -v "$3" '%s' "$_ts_pid"
}

# tuapd_log_clean LOG: fails when tuapd's LOG holds a sanitizer report (Sanitize builds)
tuapd_log_clean() {
	if grep -E -n 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$1" >&2; then
		tuapt_die "tuapd: sanitizer report in $1"
	fi
}

# tuapd_stop PID DIR: a clean stop (SIGTERM), so that the sanitizers' exit checks (leaks) run.
tuapd_stop() {
	stop_pid "$1"
	tuapd_log_clean "$2/tuapd.log"
}

tuapd_saw() { grep -E -q -- "$2" "$1/tuapd.log"; }

# agent_install ROOT CONF
agent_install() {
	install -D -m 0755 "$TUAP_SHIP_AGENT" "$1/usr/sbin/tuap-agent"
	install -D -m 0600 "$2" "$1/etc/tuap-agent/agent.conf"
}

# agent_start NS ROOT VAR LOG
agent_start() {
	TUAPT_BG_LOG=$4 chroot_bg "$1" "$2" "$3" /usr/sbin/tuap-agent --config /etc/tuap-agent/agent.conf
}

# site_copy DIR (the test script sets src, the source tree)
site_copy() {
	mkdir -p "$1"
	cp -a "${src:?}/examples/example.test" "$1/"
	rm -f "$1/example.test/data.tar.gz"
}

json_phases() {
	"$TUAPT_PY" -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("type") == "phase":
        print("%s:%s" % (e["name"], e["state"]))' "$1"
}

json_final() {
	"$TUAPT_PY" -c '
import json, sys
code = ""
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("final"):
        code = e.get("exit_code", "")
print(code)' "$1"
}

# agent_job_dir ROOT: the newest ROOT/var/lib/tuap-agent/jobs/JOB (empty when none)
agent_job_dir() {
	ls -1dt "$1"/var/lib/tuap-agent/jobs/*/ 2>/dev/null | head -n 1 | sed 's:/$::'
}

# agent_host_setup: W (a temp dir; logs in W/logs), BASE (the cached Debian root) and R (a
# throwaway root over it), namespaces C (tuapd, CADDR) and H (the site's host, HADDR) joined
# by a veth; nothing else reaches them.
agent_host_setup() {
	CADDR=198.51.100.1 # tuapd (and an apt repository)
	HADDR=198.51.100.2 # the site's host (the chroot)
	tmpdir_new W
	mkdir -p "$W/logs"
	TUAPT_LOGDIR=$W/logs
	phase root
	chroot_root_cached BASE
	chroot_new R
	netns_new C ctl
	netns_new H host
	netns_veth "$C" veth-c "$CADDR/24" "$H" veth-h "$HADDR/24"
}

# agent_up DOMAIN [LINE...]: after agent_host_setup. tuapd in C (TUAPD_PID), DOMAIN's keys
# enrolled into W/agent.conf, the agent installed in R and started in H (AGENT_PID, log
# W/logs/agent.log); returns once tuapd logged its hello.
agent_up() {
	local domain=$1
	shift
	tuapd_conf "$W/d" "$CADDR" "$@"
	tuapd_start "$C" "$W/d" TUAPD_PID
	netns_check_pid "$C" "$TUAPD_PID"
	ctl enroll "$domain" -o "$W/agent.conf" >/dev/null
	agent_install "$R" "$W/agent.conf"
	agent_start "$H" "$R" AGENT_PID "$W/logs/agent.log"
	wait_for "the agent's hello in tuapd's log" 30 tuapd_saw "$W/d" "$domain: hello from agent" ||
		{ tail -n 20 "$W/logs/agent.log" "$W/d/tuapd.log" >&2; return 1; }
}

# vm_need_bins: TUAPD, CTL (TUAP_CTL) and AGENT (TUAP_SHIP_AGENT or TUAP_AGENT: a Release
# build's self-contained agent, for guests) from ctest's environment, or a skip.
vm_need_bins() {
	TUAPD=${TUAPD:-}
	CTL=${TUAP_CTL:-}
	AGENT=${TUAP_SHIP_AGENT:-${TUAP_AGENT:-}}
	[ -x "$TUAPD" ] && [ -x "$CTL" ] || tuapt_skip "TUAPD and TUAP_CTL must name the built binaries (run through ctest)"
	[ -x "$AGENT" ] || tuapt_skip "no tuap-agent (TUAP_SHIP_AGENT/TUAP_AGENT) for the guest"
	if ldd "$AGENT" 2>/dev/null | grep -q 'libasan\|libubsan'; then
		tuapt_skip "$AGENT is a sanitizer build; configure with -DTUAP_SHIP_AGENT=<Release build's agent/tuap-agent> (deploy/test does)"
	fi
}

# vm_image W: the guest image with the agent baked in (deploy/guest/build-image --agent AGENT
# and TUAP_E2E_IMAGE_ARGS, cached), its catalog entry made the catalog W/images.conf (tuapd reads a
# list of entries); sets IMG (its directory) and IMAGE_NAME.
vm_image() {
	# shellcheck disable=SC2086 # TUAP_E2E_IMAGE_ARGS: extra build-image arguments, word-split
	IMG=$("$src/deploy/guest/build-image" --agent "$AGENT" ${TUAP_E2E_IMAGE_ARGS:-}) ||
		tuapt_die "deploy/guest/build-image failed"
	[ -s "$IMG/catalog.conf" ] || tuapt_die "build-image gave no catalog.conf in $IMG"
	{
		echo "images = ("
		echo "{"
		cat "$IMG/catalog.conf"
		echo "}"
		echo ");"
	} >"$1/images.conf"
	IMAGE_NAME=$(sed -n 's/^name = "\(.*\)";$/\1/p' "$IMG/catalog.conf")
}

# vm_tuapd_conf W URI CATALOG IMAGE APT_LINE [LINE...]: W/tuapd.conf for a tuapd that drives the
# private libvirtd of tests/lib/libvirtd.sh (TCG, its networks and bridge, everything under W:
# vms, state, run), with the image catalog, default image, the agent TUAP_SHIP_AGENT/AGENT and
# the tree's seed files, the local apt repository, long hello and packages deadlines, and any
# LINE more; checked with tuapd --check; exports TUAP_SOCKET. tuapd listens for agents on the
# management address, or on TUAPT_AGENT_LISTEN when set (e.g. 0.0.0.0, for agents that come
# from another namespace too; vm_tuapd_up then checks that address).
vm_tuapd_conf() {
	local w=$1 uri=$2 catalog=$3 image=$4 apt=$5 l
	shift 5
	{
		echo "# tuapd of a VM test (tests/lib/tuap.sh): the private libvirtd, TCG, everything in $w"
		echo "libvirt_uri = \"$uri\";"
		echo "virt_type = \"qemu\";"
		echo "pool_root = \"$w/vms\";"
		echo "state_dir = \"$w/state\";"
		echo "run_dir = \"$w/run\";"
		echo "ctl_group = \"root\";"
		echo "mgmt_network = \"$TUAPT_MGMT_NET\";"
		echo "mgmt_bridge = \"$TUAPT_MGMT_BRIDGE\";"
		echo "mgmt_subnet = \"198.51.100.0/24\";"
		echo "public_bridge = \"$TUAPT_PUB_BRIDGE\";"
		echo "agent_listen = \"tcp://${TUAPT_AGENT_LISTEN:-$TUAPT_MGMT_ADDR}:7807\";"
		echo "image_catalog = \"$catalog\";"
		echo "default_image = \"$image\";"
		echo "agent_binary = \"$AGENT\";"
		echo "seed_dir = \"$src/deploy/seed\";"
		echo "apt_source = \"$apt\";"
		echo "deadlines = { hello = 900; packages = 900; };"
		for l in "$@"; do printf '%s\n' "$l"; done
	} >"$w/tuapd.conf"
	"$TUAPD" -c "$w/tuapd.conf" --check >/dev/null || tuapt_die "tuapd --check refused $w/tuapd.conf"
	TUAP_SOCKET=$w/run/ctl.sock
	export TUAP_SOCKET
}

# vm_tuapd_up NS: tuapd's control socket is there and it listens for agents on the management
# address, or TUAPT_AGENT_LISTEN (without connecting: a bare TCP connect is a failed CURVE
# handshake in its log)
vm_tuapd_up() {
	[ -S "$TUAP_SOCKET" ] &&
		ip netns exec "$1" ss -Hltn "sport = :7807" |
		awk -v a="${TUAPT_AGENT_LISTEN:-$TUAPT_MGMT_ADDR}:7807" '$4 == a { f = 1 } END { exit !f }'
}

# vm_tuapd_start NS CONF LOG: tuapd -d -c CONF in NS, logging to LOG, up within 30 s; sets
# TUAPD_PID and TUAPD_LOG
vm_tuapd_start() {
	TUAPD_LOG=$3
	TUAPT_BG_LOG=$TUAPD_LOG netns_bg "$1" TUAPD_PID "$TUAPD" -d -c "$2"
	wait_for "tuapd's sockets" 30 vm_tuapd_up "$1" || { tail -n 20 "$TUAPD_LOG" >&2; exit 1; }
	netns_check_pid "$1" "$TUAPD_PID"
}

# secrets_private STATE_DIR POOL_ROOT: tuapd's secrets stay its own on the hypervisor: its CURVE
# key (keys/server.key) and SSH key are 0600 in 0700/0750 directories, every seed ISO (it holds
# an agent's secret key) is 0600, and nothing under either directory is readable by others but
# public keys, known_hosts and the base images.
secrets_private() {
	local st=$1 pool=$2 f bad
	for f in "$st/keys/server.key" "$st/ssh/id_ed25519"; do
		[ ! -e "$f" ] || [ "$(stat -c %a "$f")" = 600 ] || tuapt_die "$f is mode $(stat -c %a "$f"), not 600"
	done
	[ "$(stat -c %a "$st/keys")" = 700 ] || tuapt_die "$st/keys is mode $(stat -c %a "$st/keys"), not 700"
	bad=$(find "$pool" -name 'seed-*.iso' -perm /077 -printf '%m %p\n')
	[ -z "$bad" ] || tuapt_die "seed ISOs readable by others than their owner: $bad"
	bad=$(find "$st" "$pool" -type f -perm /o=r ! -name '*.pub' ! -name known_hosts \
		! -path "$pool/images/*" ! -path "$pool/.image-cache/*" -printf '%m %p\n')
	[ -z "$bad" ] || tuapt_die "readable by any user on the hypervisor: $bad"
	tuapt_log "tuapd's secrets are private: keys 0600, seeds 0600, nothing else readable by others"
}
