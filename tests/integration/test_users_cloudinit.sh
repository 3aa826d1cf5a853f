#!/bin/bash
# test_users_cloudinit.sh [CASE...] — issue 14, "users exactly as cloud-init makes them": a
# differential test of tuap's users step against cloud-init's own users-and-groups code.
#
# For each case of tests/data/users-cloudinit/ (CASE.yaml, a users.yaml; CASE.pre.sh, when
# present, is run in both roots first to make the users and groups the image already has), two
# fresh writable copies of a cached Debian 12 root with Debian's cloud-init package:
#   A (reference): cloud-init's cc_users_groups.handle on CASE.yaml, chrooted
#                  (tests/lib/cloudinit_users.py: the root's system_info, so `default` is the
#                  image's default user "debian"; no cloud public keys);
#   B (tuap):      what a tuap VM does: the seed's cloud-init run first (`users: [default]`
#                  when CASE.yaml lists `default`, else nothing: controller/render/cloudinit.c),
#                  then `users_apply CASE.yaml B` from the host (tests/tools/users_apply.c: the
#                  model, jobsteps_request and the agent's users step with env.root = B).
# Then both roots' accounts are compared as facts (tests/lib/users_snapshot.py: passwd, group,
# shadow minus the last-change day, gshadow, subuid/subgid, sudo rules per user, homes, .ssh and
# key lines, lastlog/faillog sizes, mail spools) and every difference is printed. When tuap
# refuses CASE.yaml, its diagnostics are the differences instead. A case passes when there is no
# difference but those deliberate.tsv lists for it. The summary lists each case; the test
# fails when any case fails. Output of each run: $W/CASE/ (TUAPT_KEEP_TMP=1 keeps it).
#
# Exits 77 when not root, without netns support or without users_apply (a BUILD_TESTING build).
set -eu -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/chroot.sh"

CORPUS=$src/tests/data/users-cloudinit
# python3-cffi-backend: python3-cryptography (a cloud-init dependency) needs it through virtual
# packages, which debootstrap's resolver does not follow
CI_PACKAGES=cloud-init,python3-cffi-backend
CI_DEADLINE=120 # one cloud-init or users_apply run (a few useradd: seconds)
USERS_APPLY=${USERS_APPLY:-${TUAP_BUILD:+$TUAP_BUILD/tests/users_apply}}
[ -z "$USERS_APPLY" ] || USERS_APPLY=$(realpath "$USERS_APPLY") # it runs in the corpus dir
IN_ROOT=/tmp/tuapt-users # the case and cloudinit_users.py inside each root

# The deliberate differences, each with its reason: $CORPUS/deliberate.tsv (its header says how
# they are matched).
DELIBERATE=$(grep -v '^#' "$CORPUS/deliberate.tsv")

skip_unless_root
skip_unless_netns
skip_unless_cmd debootstrap python3 timeout unshare
if [ -z "$USERS_APPLY" ] || [ ! -x "$USERS_APPLY" ]; then
	tuapt_skip "no users_apply (build with BUILD_TESTING, or set USERS_APPLY)"
fi

# cases CASE...: the case names asked for (all of the corpus when none), checked.
cases() {
	local c
	if [ "$#" = 0 ]; then
		for c in "$CORPUS"/*.yaml; do basename "$c" .yaml; done
		return
	fi
	for c in "$@"; do
		c=$(basename "$c" .yaml)
		[ -f "$CORPUS/$c.yaml" ] || tuapt_die "no case $c in $CORPUS"
		echo "$c"
	done
}

# root_for CASE VAR: a fresh root with CASE's files in $IN_ROOT and CASE.pre.sh run in it.
root_for() {
	local case=$1 _rf_r
	chroot_new _rf_r "$CI_PACKAGES" || tuapt_die "no root for $case"
	mkdir -p "$_rf_r$IN_ROOT"
	cp "$CORPUS/$case.yaml" "$_rf_r$IN_ROOT/$case.yaml"
	cp "$src/tests/lib/cloudinit_users.py" "$_rf_r$IN_ROOT/"
	if [ -f "$CORPUS/$case.pre.sh" ]; then
		chroot_run_for "$CI_DEADLINE" "$NS" "$_rf_r" sh -s <"$CORPUS/$case.pre.sh" ||
			tuapt_die "$case.pre.sh failed in $_rf_r"
	fi
	printf -v "$2" '%s' "$_rf_r"
}

# cloudinit ROOT LOG [--seed] CASE: cloud-init's users-and-groups on ROOT; 0 when it succeeded.
cloudinit() {
	local root=$1 log=$2
	shift 2
	chroot_run_for "$CI_DEADLINE" "$NS" "$root" python3 "$IN_ROOT/cloudinit_users.py" "$@" >"$log" 2>&1
}

# outcome_facts FILE OUTCOME [LOG]: the outcome fact, and the refusal lines of LOG when refused.
outcome_facts() {
	echo "outcome = $2" >"$1"
	[ "$2" != refused ] ||
		grep -v '^users_apply: users.yaml refused (' "$3" | awk '{printf "refusal %d = %s\n", NR, $0}' >>"$1"
}

# visudo_shim DIR: DIR/visudo. The users step checks a sudoers file with `visudo -c` of the
# system it runs on, found in its fixed PATH (agent/steps/proc.h), and visudo has no --root:
# here the host need not have sudo, and in production the check is the guest's own sudo. So
# users_apply runs with DIR bind-mounted on /usr/local/sbin (first in that PATH) in a private
# mount namespace, and the shim runs the root's visudo chrooted, the paths under the root made
# relative to it. (The step gives its children a fixed environment: ROOT is written in.)
visudo_shim() {
	mkdir -p "$1"
	printf '#!/bin/sh\nr=%q\n' "$2" >"$1/visudo"
	cat >>"$1/visudo" <<'EOF'
set -e
n=$#
while [ "$n" -gt 0 ]; do
	a=$1
	shift
	case $a in "$r"/*) a=${a#"$r"} ;; esac
	set -- "$@" "$a"
	n=$((n - 1))
done
exec chroot "$r" visudo "$@"
EOF
	chmod 0755 "$1/visudo"
}

# users_apply ROOT CASE: tuap's side, bounded, with the visudo shim (above).
users_apply() {
	visudo_shim "$W/sbin" "$1"
	# shellcheck disable=SC2016 # expanded by the inner sh
	(cd "$CORPUS" && timeout "$CI_DEADLINE" unshare --mount --propagation private \
		sh -c 'mount --bind "$1" /usr/local/sbin && shift && exec "$@"' sh "$W/sbin" \
		"$USERS_APPLY" "$2.yaml" "$1")
}

# snapshot ROOT FACTS: ROOT's accounts as facts, added to FACTS.
snapshot() {
	python3 "$src/tests/lib/users_snapshot.py" snapshot "$1" "$BASE" >>"$2"
}

# run_case CASE: both sides and the comparison; prints the case's verdict and differences and
# sets VERDICT to pass or fail.
run_case() {
	local case=$1 out=$W/$1 A B ci=ok tu=ok rc=0
	mkdir -p "$out"
	root_for "$case" A
	root_for "$case" B
	cloudinit "$A" "$out/cloud-init.log" "$IN_ROOT/$case.yaml" || ci=failed
	cloudinit "$B" "$out/seed.log" --seed "$IN_ROOT/$case.yaml" || tuapt_die "$case: the seed's cloud-init run failed: $(tail -n 3 "$out/seed.log")"
	users_apply "$B" "$case" >"$out/tuap.log" 2>&1 || rc=$?
	if grep -q '^users_apply: users.yaml refused' "$out/tuap.log"; then
		tu=refused
	elif [ "$rc" != 0 ]; then
		tu=failed
	fi
	outcome_facts "$out/cloud-init.facts" "$ci"
	outcome_facts "$out/tuap.facts" "$tu" "$out/tuap.log"
	if [ "$tu" != refused ]; then
		snapshot "$A" "$out/cloud-init.facts"
		snapshot "$B" "$out/tuap.facts"
	fi
	# done with the roots: unmount now rather than holding two overlays per case until exit
	# (the late hooks' umount then finds nothing, which is fine)
	umount "$A" "$B" 2>/dev/null || true
	python3 "$src/tests/lib/users_snapshot.py" compare "$case" "$out/cloud-init.facts" \
		"$out/tuap.facts" "$W/deliberate.tsv" >"$out/diff.txt" && rc=0 || rc=$?
	if [ "$rc" = 0 ]; then
		VERDICT=pass
		printf 'PASS %s\n' "$case"
		grep deliberate "$out/diff.txt" || true
		return 0
	fi
	VERDICT=fail
	printf 'FAIL %s (cloud-init: %s, tuap: %s)\n' "$case" "$ci" "$tu"
	cat "$out/diff.txt"
	show_runs "$out"
}

# show_runs DIR: what each side did, for the reader of a failure.
show_runs() {
	echo "  cloud-init ran:"
	sed -n -e 's/.*Running command \(\[.*\]\) with allowed.*/    \1/p' \
		-e 's/.*Running hidden command.*logstring: \(.*\)/    \1/p' "$1/cloud-init.log"
	grep -E '^(WARNING|ERROR|schema:|cloud-init:)' "$1/cloud-init.log" | sed 's/^/    /' || true
	echo "  tuap (users_apply) said:"
	sed 's/^/    /' "$1/tuap.log"
}

mapfile -t CASES < <(cases "$@")
phase root
chroot_root_cached BASE "$CI_PACKAGES"
netns_new NS users # no links at all: nothing the roots run can reach a network
tmpdir_new W
printf '%s\n' "$DELIBERATE" >"$W/deliberate.tsv"
echo "# cloud-init in the root: $(awk '$1 == "cloud-init" {print $2}' "$(dirname "$BASE")/packages.txt")" >&2

phase cases
passed=()
failed=()
for c in "${CASES[@]}"; do
	run_case "$c"
	if [ "$VERDICT" = pass ]; then passed+=("$c"); else failed+=("$c"); fi
done
phase

echo
echo "SUMMARY: ${#passed[@]} passed, ${#failed[@]} failed of ${#CASES[@]}"
for c in "${passed[@]}"; do echo "  pass  $c"; done
for c in "${failed[@]}"; do echo "  FAIL  $c"; done
[ "${#failed[@]}" = 0 ] || tuapt_die "${#failed[@]} case(s) differ from cloud-init: ${failed[*]}"
echo "PASS: every case gives the accounts cloud-init gives (deliberate differences aside)"
