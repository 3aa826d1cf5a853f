# shellcheck shell=bash
# bench/vmlib.sh — sourced (bash) by the benchmarks that boot real guests (bench/ready,
# bench/parallel), after tests/lib/{harness,libvirtd,aptrepo,tuap}.sh. The stage is the e2e
# test's (tests/e2e/test_provision_vm.sh): the guest image with tuap-agent baked in, a network
# namespace with a private libvirtd (NAT network tuap-mgmt on 198.51.100.1/24, bridge br-pub on
# 192.0.2.1/24), a local apt repository with nginx on 192.0.2.1:8080, and tuapd in the namespace
# (virt_type qemu: TCG). Nothing reaches the host's network.
#
#   vmb_args NAME "$@"            # parses --quick, --json FILE, --build DIR, --runs N, -h;
#                                 # sets VMB_QUICK, VMB_JSON, VMB_BUILD, VMB_RUNS (if given)
#   vmb_bins                      # TUAPD, CTL, AGENT from VMB_BUILD (skip when missing)
#   vmb_stage                     # W, IMG, IMAGE_NAME, NS, URI, APT_LINE, tuapd (TUAPD_PID);
#                                 # tuapd.conf and start: tests/lib/tuap.sh's vm_tuapd_*
#   vmb_site NAME IP              # W/sites/NAME: examples/example.test with ips=IP/24, packed
#   vmb_provision NAME OUT        # tuap-ctl provision --json W/sites/NAME >OUT (bounded);
#                                 # writes OUT.t0 (unix ms just before it started)
#   vmb_destroy NAME              # tuap-ctl destroy --purge NAME (bounded)
#   vmb_console_watch FILE OUT    # background: OUT gets the unix ms at which FILE first holds
#                                 # cloud-init's final message ("Cloud-init v. X finished at")
#   vmb_warm NAME                 # provision NAME --detach, wait until its domain runs, destroy
#                                 # it: page cache, qemu's first start, the base image uploaded
#                                 # into tuapd's images pool (later provisions find it there)
#   vmb_cpu                       # "BUSY TOTAL" jiffies of all CPUs (/proc/stat)
#   vmb_cpu_busy BEFORE AFTER     # the CPUs' busy share between two vmb_cpu, in percent
#   now_ms                        # unix time in ms
#   vmb_load                      # "load 1.23 1.10 0.90" (for the details)

VMB_PY=/usr/bin/python3
VMB_LIB=${here:?}/vmbench.py
VMB_JOB_TIMEOUT=${TUAP_BENCH_JOB_TIMEOUT:-1800} # one provision, start to done
VMB_PORT=8080

now_ms() { date +%s%3N; }
vmb_load() { printf 'load %s' "$(cut -d' ' -f1-3 /proc/loadavg)"; }

# vmb_args NAME ARG...: the options every bench script shares (bench/run's contract)
vmb_args() {
	local name=$1
	shift
	VMB_QUICK=0
	VMB_JSON=
	VMB_BUILD=${TUAP_BUILD:-${src:?}/build/release}
	while [ $# -gt 0 ]; do
		case $1 in
		--quick) VMB_QUICK=1; shift ;;
		--json) VMB_JSON=${2:?--json wants a file}; shift 2 ;;
		--build) VMB_BUILD=${2:?--build wants a directory}; shift 2 ;;
		--runs) VMB_RUNS=${2:?--runs wants a number}; shift 2 ;;
		-h | --help) sed -n '2,/^# Exit/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
		*) echo "bench/$name: unexpected '$1' (try --help)" >&2; exit 2 ;;
		esac
	done
	case ${VMB_RUNS:-1} in '' | *[!0-9]* | 0) echo "bench/$name: --runs wants a positive integer" >&2; exit 2 ;; esac
	if [ -n "$VMB_JSON" ]; then
		case $VMB_JSON in /*) ;; *) VMB_JSON=$PWD/$VMB_JSON ;; esac
		: >"$VMB_JSON" || { echo "bench/$name: cannot write $VMB_JSON" >&2; exit 1; }
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: bench/$name needs root (network namespaces, a private libvirtd, guests);" \
			"run it as: sudo $0" >&2
		exit 77
	fi
}

vmb_bins() {
	local btype
	TUAPD=$VMB_BUILD/controller/tuapd/tuapd
	TUAP_CTL=$VMB_BUILD/controller/ctl/tuap-ctl
	TUAP_SHIP_AGENT=$VMB_BUILD/agent/tuap-agent
	for b in "$TUAPD" "$TUAP_CTL" "$TUAP_SHIP_AGENT"; do
		[ -x "$b" ] || tuapt_skip "$b missing: cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF && cmake --build build/release -j2"
	done
	vm_need_bins # CTL, AGENT; refuses a sanitizer build's agent
	btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$VMB_BUILD/CMakeCache.txt" 2>/dev/null || true)
	[ "$btype" = Release ] || tuapt_log "warning: $VMB_BUILD is a '$btype' build, not Release"
}

# vmb_stage: the e2e test's stage (see the header). Needs W (tmpdir_new) and TUAPT_LOGDIR.
vmb_stage() {
	mkdir -p "$W/sites" "$W/state" "$W/run" "$W/vms" "$W/out"
	phase image
	vm_image "$W"

	phase netns+libvirtd
	netns_new NS vm
	libvirtd_start_default "$NS" URI

	phase apt-repo
	aptrepo_build "$W/repo" "$IMG/packages.txt" nginx
	aptrepo_serve "$NS" "$TUAPT_PUB_ADDR" "$VMB_PORT" "$W/repo" APT_LINE

	phase tuapd
	vm_tuapd_conf "$W" "$URI" "$W/images.conf" "$IMAGE_NAME" "$APT_LINE"
	vm_tuapd_start "$NS" "$W/tuapd.conf" "$W/log/tuapd.log"
	phase
}

# vmb_site NAME IP
vmb_site() {
	local name=$1 ip=$2 d=$W/sites/$1
	rm -rf "$d"
	cp -r "$src/examples/example.test" "$d"
	rm -f "$d/data.tar.gz"
	sed -i "s|^ips=.*|ips=$ip/24|; s|^image=.*|image=$IMAGE_NAME|" "$d/provision.conf"
	"$CTL" pack "$d" >"$W/log/pack.$name.out" 2>&1 || { cat "$W/log/pack.$name.out" >&2; tuapt_die "tuap-ctl pack $name failed"; }
	"$CTL" validate "$d" >"$W/log/validate.$name.out" 2>&1 ||
		{ cat "$W/log/validate.$name.out" >&2; tuapt_die "tuap-ctl validate $name failed"; }
}

# vmb_provision NAME OUT [ARG...]: extra ARGs go to tuap-ctl provision
vmb_provision() {
	local name=$1 out=$2 rc=0
	shift 2
	now_ms >"$out.t0"
	timeout "$VMB_JOB_TIMEOUT" "$CTL" provision --json "$@" "$W/sites/$name" >"$out" 2>"$out.err" || rc=$?
	now_ms >"$out.t1"
	if [ "$rc" != 0 ]; then
		echo "--- tuap-ctl provision $name exited $rc (124: no end within ${VMB_JOB_TIMEOUT}s):" >&2
		tail -n 5 "$out.err" "$out" >&2
		echo "--- tuapd's log (last 20 lines):" >&2
		tail -n 20 "$TUAPD_LOG" >&2
		echo "--- the guest's console (last 20 lines):" >&2
		timeout 30 "$CTL" console-log -n 20 "$name" >&2 || true
	fi
	return "$rc"
}

vmb_destroy() {
	timeout 120 "$CTL" destroy --purge "$1" >"$W/log/destroy.$1.out" 2>&1 ||
		{ cat "$W/log/destroy.$1.out" >&2; tuapt_die "tuap-ctl destroy --purge $1 failed"; }
}

# vmb_console_watch FILE OUT [SECONDS]: in the background (PID recorded); polls every 0.2 s
vmb_console_watch() {
	local _cw_pid
	# shellcheck disable=SC2016 # expanded by the inner bash
	bash -c 'f=$1 out=$2 end=$(( $(date +%s) + $3 ))
		while [ "$(date +%s)" -lt "$end" ]; do
			if [ -f "$f" ] && grep -aqE "Cloud-init v\. [^ ]+ finished at" "$f"; then
				date +%s%3N >"$out"; exit 0
			fi
			sleep 0.2
		done; exit 1' _ "$1" "$2" "${3:-$VMB_JOB_TIMEOUT}" </dev/null >/dev/null 2>&1 &
	_cw_pid=$!
	pid_record "$_cw_pid"
	VMB_WATCH_PID=$_cw_pid
}

vmb_running() { [ "$(virsh_ "$URI" domstate "$1" 2>/dev/null)" = running ]; }

vmb_warm() {
	timeout 120 "$CTL" provision --detach "$W/sites/$1" >"$W/log/warm.$1.out" 2>&1 ||
		{ cat "$W/log/warm.$1.out" >&2; tuapt_die "warm-up provision of $1 failed"; }
	wait_for "the warm-up domain $1 running" 600 vmb_running "$1" || tuapt_die "warm-up: $1 never ran"
	vmb_destroy "$1"
}

vmb_cpu() { awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6; exit }' /proc/stat; }
vmb_cpu_busy() {
	echo "$1 $2" | awk '{ t = $4 - $2; printf "%.0f", (t > 0 ? 100 * ($3 - $1) / t : -1) }'
}
