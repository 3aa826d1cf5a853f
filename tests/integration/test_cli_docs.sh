#!/bin/bash
# tuap-ctl's command table is its documentation: every subcommand and option it parses is in
# tuap-ctl(1) (the COMMANDS block is exactly what `tuap-ctl help --man` prints, see
# docs/update-commands), in README's command table and in --help; the bash completion
# completes commands, options and their values; the parser refuses unknown options and takes
# `--`. Fails when a command or option is added to the table and not to the docs.
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
: "${TUAP_CTL:?}"
skip_unless_cmd groff man
tmpdir_new W

# the commands and each one's options, from the binary itself
mapfile -t cmds < <("$TUAP_CTL" help | awk '/^commands:/ { on = 1; next } on && !NF { exit } on { print $1 }')
[ "${#cmds[@]}" -ge 15 ] || tuapt_die "tuap-ctl help lists ${#cmds[@]} commands"
options() { "$TUAP_CTL" "$1" --help | grep -oE '^  (-[a-z], )?--[a-z-]+' | grep -oE -- '--[a-z-]+'; }

phase man-page
cp "$src/docs/tuap-ctl.1" "$W/tuap-ctl.1"
"$src/docs/update-commands" "$TUAP_CTL" "$W/tuap-ctl.1"
diff -u "$src/docs/tuap-ctl.1" "$W/tuap-ctl.1" >"$W/man.diff" ||
	tuapt_die "docs/tuap-ctl.1 lags behind the command table (run docs/update-commands" \
		"$TUAP_CTL):$(printf '\n')$(cat "$W/man.diff")"
groff -man -ww -z "$src/docs/tuap-ctl.1" 2>"$W/groff.err"
[ ! -s "$W/groff.err" ] || tuapt_die "groff warns on tuap-ctl(1): $(cat "$W/groff.err")"
MANWIDTH=200 man -l "$src/docs/tuap-ctl.1" 2>/dev/null | sed 's/‐//g' >"$W/man.txt"
for c in "${cmds[@]}"; do
	grep -qE "^ +$c( |$)" "$W/man.txt" || tuapt_die "tuap-ctl(1) has no command $c"
	for o in $(options "$c"); do
		awk -v c="$c" -v o="$o" '
			/^       [a-z]/ && $1 == c { on = 1; next }
			on && /^       [a-z]/ { exit }
			on && index($0, o) { found = 1 }
			END { exit !found }' "$W/man.txt" || tuapt_die "tuap-ctl(1): $c lacks $o"
	done
done

phase readme
awk '/^## Commands/ { on = 1; next } /^## / { on = 0 } on' "$src/README.md" >"$W/readme.txt"
for c in "${cmds[@]}"; do
	grep -qE "\`(tuap-ctl )?$c( |\`)" "$W/readme.txt" || tuapt_die "README's Commands lack $c"
done

phase help
for c in "${cmds[@]}"; do
	"$TUAP_CTL" "$c" --help >"$W/help" || tuapt_die "$c --help failed"
	head -1 "$W/help" | grep -q "^usage: tuap-ctl $c" || tuapt_die "$c --help: $(head -1 "$W/help")"
	[ "$("$TUAP_CTL" help "$c")" = "$(cat "$W/help")" ] || tuapt_die "help $c differs from --help"
	rc=0
	"$TUAP_CTL" "$c" --no-such-option x.test 2>"$W/err" || rc=$?
	[ "$rc" = 2 ] && grep -q "unknown option '--no-such-option'" "$W/err" ||
		tuapt_die "$c --no-such-option: exit $rc, $(cat "$W/err")"
done
# an option's value may follow '=' or the next word, and '--' ends the options
mkdir "$W/-x.test"
rc=0
(cd "$W" && "$TUAP_CTL" validate -- -x.test 2>"$W/err") || rc=$?
grep -q "^-x.test/provision.conf: missing" "$W/err" || tuapt_die "validate -- -x.test: $(cat "$W/err")"
for form in "--lines=0" "-n0" "-n 0" "--lines 0"; do
	rc=0
	# shellcheck disable=SC2086 # the form is two words on purpose
	"$TUAP_CTL" log $form x.test 2>"$W/err" || rc=$?
	[ "$rc" = 2 ] && grep -q -- "-n wants a number of lines" "$W/err" ||
		tuapt_die "log $form: exit $rc, $(cat "$W/err")"
done
rc=0
"$TUAP_CTL" status --json=yes 2>"$W/err" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--json takes no value" "$W/err" || tuapt_die "status --json=yes"

phase completion
"$TUAP_CTL" completion bash >"$W/completion.bash"
bash -n "$W/completion.bash" || tuapt_die "the completion script is not valid bash"
# offers WORD... EXPECTED: the completion of WORD... offers EXPECTED (checked on a here-string:
# `| grep -q` would make the writer die of SIGPIPE under pipefail once grep has its match)
offers() {
	local want=${!#} got
	got=$(complete_words "${@:1:$#-1}")
	grep -qx -- "$want" <<<"$got"
}
complete_words() { # WORD... : what the completion offers for the last word
	# shellcheck disable=SC1091
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); cd "$0"
		_tuap_ctl; printf "%s\n" "${COMPREPLY[@]}"' "$W" "$W/completion.bash" "$@"
}
[ "$(complete_words tuap-ctl prov)" = provision ] || tuapt_die "completion: prov"
[ "$(complete_words tuap-ctl con | sort | tr '\n' ' ')" = "console-log " ] ||
	tuapt_die "completion: con -> $(complete_words tuap-ctl con)"
for c in "${cmds[@]}"; do
	offers tuap-ctl "" "$c" || tuapt_die "completion lacks $c"
	for o in $(options "$c"); do
		offers tuap-ctl "$c" -- "$o" ||
			tuapt_die "completion of $c lacks $o"
	done
done
offers tuap-ctl provision --dr --dry-run || tuapt_die "completion: --dr"
mkdir "$W/shop.example.org"
offers tuap-ctl provision sho shop.example.org ||
	tuapt_die "completion: a DOMAIN directory"
touch "$W/agent.conf"
offers tuap-ctl enroll -o ag agent.conf || tuapt_die "completion: -o FILE"

# The daemons and the files: every option tuapd and tuap-agent take is in their man page's
# OPTIONS, and every page groff renders without a warning. (tuap-ctl's above.)
phase daemons
for pair in "${TUAPD:-}:tuapd.8" "${TUAP_AGENT:-}:tuap-agent.8"; do
	bin=${pair%%:*} page=$src/docs/${pair#*:}
	[ -n "$bin" ] && [ -x "$bin" ] || { echo "# ${pair#*:}: no binary to compare" >&2; continue; }
	MANWIDTH=200 man -l "$page" 2>/dev/null | sed 's/‐//g' |
		awk '/^OPTIONS/ { on = 1; next } /^[A-Z]/ { on = 0 } on' >"$W/opts.txt"
	[ -s "$W/opts.txt" ] || tuapt_die "${pair#*:} has no OPTIONS"
	for o in $("$bin" --help 2>&1 | grep -oE '^ +-(-[a-z-]+|[a-z])' | tr -d ' '); do
		grep -qE -- "(^| )$o( |$)" "$W/opts.txt" || tuapt_die "${pair#*:} lacks $o"
	done
done
for page in "$src"/docs/*.[158]; do
	groff -man -ww -z "$page" 2>"$W/groff.err"
	[ ! -s "$W/groff.err" ] || tuapt_die "groff warns on $page: $(cat "$W/groff.err")"
done
echo ok
