#!/bin/bash
# test_layering.sh — the layering rule of ARCHITECTURE.md, as the build enforces it: each folder
# is one library that sees only the folders below it. For every library, a probe source is
# compiled with that library's own compile flags (from the build's compile_commands.json):
# a header of a folder it may use must compile (the probe is sound), a header of a folder above
# or beside it must fail to compile. Then tuap-ctl's NEEDED list: no libvirt, libisofs or curl.
. "$(dirname "$0")/../lib/harness.sh"
: "${TUAP_BUILD:?}" "${TUAP_SRC:?}" "${TUAP_CTL:?}"
skip_unless_cmd python3 readelf
db=$TUAP_BUILD/compile_commands.json
[ -f "$db" ] || tuapt_die "no $db (CMAKE_EXPORT_COMPILE_COMMANDS)"
tmpdir_new W

# flags_of DIR: the compile command of a source file directly in DIR, minus -o/-c and the file.
flags_of() {
	python3 - "$db" "$TUAP_SRC/$1" <<'EOF'
import json, os, shlex, sys
db, d = sys.argv[1], os.path.realpath(sys.argv[2])
for e in json.load(open(db)):
    f = os.path.realpath(os.path.join(e["directory"], e["file"]))
    if os.path.dirname(f) != d:
        continue
    args = shlex.split(e["command"]) if "command" in e else e["arguments"]
    out, skip = [], False
    for a in args[1:]:
        if skip:
            skip = False
            continue
        if a in ("-o", "-c", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if a == e["file"] or os.path.realpath(os.path.join(e["directory"], a)) == f:
            continue
        out.append(a)
    print(shlex.join([args[0]] + out))
    sys.exit(0)
sys.exit("no compile command for a file in " + d)
EOF
}

probes=0
# layer DIR "ALLOWED HEADERS" "FORBIDDEN HEADERS"
layer() {
	local dir=$1 ok=$2 bad=$3 cmd h
	cmd=$(flags_of "$dir") || tuapt_die "$dir: no compile command"
	for h in $ok; do
		printf '#include "%s"\n' "$h" >"$W/probe.c"
		eval "$cmd -fsyntax-only $W/probe.c" 2>"$W/err" \
			|| tuapt_die "$dir cannot include $h, which it may use: $(head -3 "$W/err")"
		probes=$((probes + 1))
	done
	for h in $bad; do
		printf '#include "%s"\n' "$h" >"$W/probe.c"
		if eval "$cmd -fsyntax-only $W/probe.c" 2>/dev/null; then
			tuapt_die "$dir can include $h: a layer above or beside it"
		fi
		probes=$((probes + 1))
	done
}

phase "include rule"
# every header named here exists once in the tree (checked below), in the folder it stands for,
# and nowhere in the system include path (link.h is also glibc's, so it is not probed for)
above_common="domain.h settings.h job.h vmjob.h push.h hub.h cli.h steps.h dispatch.h"
layer common "err.h wire.h tarball.h" "$above_common"
layer common/model "err.h domain.h users.h" "settings.h render.h job.h vmjob.h hub.h cli.h steps.h"
layer controller/render "domain.h settings.h render.h" "job.h vmjob.h push.h hub.h cli.h steps.h"
layer controller/tuapd/engine "domain.h job.h" "settings.h vmjob.h push.h hub.h cli.h steps.h"
layer controller/tuapd/vm "job.h settings.h vmjob.h" "push.h hub.h cli.h dispatch.h"
layer controller/tuapd/push "job.h push.h" "settings.h vmjob.h hub.h cli.h"
layer controller/tuapd "job.h settings.h hub.h" "cli.h steps.h dispatch.h"
layer controller/ctl "settings.h cli.h" "job.h vmjob.h push.h hub.h steps.h"
layer controller/ctl/cmd "cli.h domain.h" "job.h vmjob.h hub.h steps.h"
layer agent/steps "err.h steps.h" "domain.h dispatch.h job.h settings.h"
layer agent "steps.h dispatch.h link.h" "domain.h job.h settings.h cli.h"
tuapt_log "$probes include probes as the layering rule says"

# the probe headers are unambiguous: each exists exactly once in the tree
for h in $above_common err.h wire.h tarball.h render.h link.h; do
	n=$(find "$TUAP_SRC/common" "$TUAP_SRC/controller" "$TUAP_SRC/agent" -name "$h" | wc -l)
	[ "$n" = 1 ] || tuapt_die "$h exists $n times in the tree; the probes above need it once"
done

phase "tuap-ctl NEEDED"
needed=$(readelf -d "$TUAP_CTL" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[ -n "$needed" ] || tuapt_die "readelf shows no NEEDED for $TUAP_CTL"
for lib in libvirt libisofs libcurl; do
	if grep -q "^$lib" <<<"$needed"; then
		tuapt_die "tuap-ctl links $lib: $(tr '\n' ' ' <<<"$needed")"
	fi
done
tuapt_log "tuap-ctl NEEDED: $(tr '\n' ' ' <<<"$needed")"
echo "PASS: layering"
