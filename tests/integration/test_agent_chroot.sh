#!/bin/bash
# test_agent_chroot.sh — the whole agent path on a real (chrooted) Debian system, no VM:
# tuapd runs in one network namespace (198.51.100.1), which also serves a local apt repository
# holding nginx; the shipped tuap-agent runs chrooted in a throwaway Debian 12 root inside a
# second namespace (198.51.100.2), enrolled with `tuap-ctl enroll`. Then
#   tuap-ctl provision --existing --json example.test      (a packed copy of the example)
# and the test checks what the example asks for, on the system itself:
#   - the --json events: phases upload, plan, hello, users, packages, mail, data, make in this
#     order, each started then done, nothing failed, a final event with exit code 0;
#   - users: site-admin with its gecos, shell and groups (adm, www-data), its sudo rule in
#     /etc/sudoers.d (visudo -cf passes, sudo -l lists it), its authorized_keys (mode 0600,
#     owned by it, in a 0700 .ssh);
#   - packages: nginx installed by apt from the local repository;
#   - mail: root's alias is the contact e-mail;
#   - data: the site tree extracted under /srv/tuap/example.test, identical to the source;
#   - make: ran exactly once ("content:" once in the agent's make.log and in `tuap-ctl log`);
#   - the site answers HTTP from tuapd's namespace with the example page.
# Exits 77 when not root or without netns support.
set -eu -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${TUAP_SRC:-$(cd "$here/../.." && pwd)}
. "$src/tests/lib/harness.sh"
. "$src/tests/lib/chroot.sh"
. "$src/tests/lib/aptrepo.sh"
. "$src/tests/lib/tuap.sh"

skip_unless_root
skip_unless_netns
skip_unless_cmd debootstrap curl
tuap_need_bins
agent_host_setup

# nginx is started by the example's Makefile (no systemd in the chroot): stopped by its PID
stop_site_nginx() {
	local p
	p=$(cat "$R/run/nginx.pid" 2>/dev/null) || return 0
	[ -n "$p" ] && stop_pid "$p"
}
cleanup_push stop_site_nginx

phase apt-repo
aptrepo_build "$W/repo" "$(dirname "$BASE")/packages.txt" nginx
aptrepo_serve "$C" "$CADDR" 8080 "$W/repo" APTLINE
printf '%s\n' "$APTLINE" >"$R/etc/apt/sources.list.d/tuap-local.list"

phase tuapd
tuapd_conf "$W/d" "$CADDR"
tuapd_start "$C" "$W/d" TUAPD_PID
netns_check_pid "$C" "$TUAPD_PID"

phase enroll
ctl enroll example.test -o "$W/agent.conf" >/dev/null
grep -qx "endpoint = tcp://$CADDR:$TUAPT_AGENT_PORT" "$W/agent.conf" ||
	tuapt_die "enroll wrote another endpoint: $(grep endpoint "$W/agent.conf")"
grep -qx "state_dir = /var/lib/tuap-agent" "$W/agent.conf" || tuapt_die "agent state_dir is not /var/lib/tuap-agent"
[ "$(stat -c %a "$W/agent.conf")" = 600 ] || tuapt_die "enroll wrote $W/agent.conf with mode $(stat -c %a "$W/agent.conf")"
agent_install "$R" "$W/agent.conf"

phase agent-hello
agent_start "$H" "$R" AGENT_PID "$W/logs/agent.log"
wait_for "the agent's hello in tuapd's log" 30 tuapd_saw "$W/d" "example.test: hello from agent" ||
	{ tail -n 20 "$W/logs/agent.log" "$W/d/tuapd.log" >&2; exit 1; }

phase pack
site_copy "$W/sites"
ctl pack "$W/sites/example.test" >/dev/null

phase provision
rc=0
TUAPT_CTL_DEADLINE=600 ctl provision --existing --json "$W/sites/example.test" >"$W/events.jsonl" 2>"$W/logs/provision.err" || rc=$?
if [ "$rc" != 0 ]; then
	tail -n 30 "$W/events.jsonl" "$W/logs/provision.err" "$W/logs/agent.log" >&2
	tuapt_die "tuap-ctl provision --existing exited $rc"
fi

phase check-events
json_phases "$W/events.jsonl" >"$W/phases.txt"
! grep -Eq ':(failed|stalled)$' "$W/phases.txt" || { cat "$W/phases.txt" >&2; tuapt_die "a phase failed"; }
order=$(grep -E ':(started|done)$' "$W/phases.txt" | tr '\n' ' ')
expected=""
for p in upload plan hello users packages mail data make; do expected+="$p:started $p:done "; done
[ "$order" = "$expected" ] || tuapt_die "phase events out of order:
  got  $order
  want $expected"
[ "$(json_final "$W/events.jsonl")" = 0 ] || tuapt_die "final event: exit code '$(json_final "$W/events.jsonl")', expected 0"
"$TUAPT_PY" - "$W/events.jsonl" <<'EOF' || tuapt_die "the --json stream is not what it should be"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
assert all(e.get("domain") == "example.test" for e in ev if e.get("type") in ("phase", "step")), "foreign domain"
jobs = {e["job"] for e in ev if "job" in e}
assert len(jobs) == 1, "events of %d jobs: %s" % (len(jobs), jobs)
# make's output arrives live as step log events, before make's phase is done
names = [(e.get("type"), e.get("name"), e.get("state")) for e in ev]
logs = [i for i, e in enumerate(ev) if e.get("type") == "step" and e.get("name") == "make" and any(l.startswith("content:") for l in e.get("lines", []))]
done = names.index(("phase", "make", "done"))
assert len(logs) == 1 and logs[0] < done, "make's 'content:' line not streamed before make was done"
assert ev[-1].get("final") and ev[-1].get("exit_code") == 0, "the last event is not the final one"
EOF

phase check-users
pw=$(chroot_run "$H" "$R" getent passwd site-admin) || tuapt_die "no user site-admin in the chroot"
IFS=: read -r _ _ uid gid gecos home shell <<<"$pw"
[ "$gecos" = "Site administrator" ] || tuapt_die "site-admin's gecos is '$gecos'"
[ "$shell" = /bin/bash ] || tuapt_die "site-admin's shell is '$shell'"
[ "$home" = /home/site-admin ] || tuapt_die "site-admin's home is '$home'"
groups=" $(chroot_run "$H" "$R" id -nG site-admin) "
for g in adm www-data; do
	[[ $groups == *" $g "* ]] || tuapt_die "site-admin is not in group $g (groups:$groups)"
done
sudoers=$R/etc/sudoers.d/90-tuap-site-admin
[ -f "$sudoers" ] || tuapt_die "no $sudoers ($(ls "$R/etc/sudoers.d"))"
[ "$(stat -c %a "$sudoers")" = 440 ] || tuapt_die "$sudoers has mode $(stat -c %a "$sudoers")"
chroot_run "$H" "$R" visudo -cf /etc/sudoers.d/90-tuap-site-admin >/dev/null || tuapt_die "visudo -cf refuses $sudoers"
chroot_run "$H" "$R" sudo -n -l -U site-admin 2>/dev/null | grep -q "(ALL) NOPASSWD: ALL" ||
	tuapt_die "sudo -l -U site-admin does not show the rule: $(chroot_run "$H" "$R" sudo -n -l -U site-admin 2>&1)"
ak=$R/home/site-admin/.ssh/authorized_keys
[ -f "$ak" ] || tuapt_die "no $ak"
[ "$(stat -c '%a %u %g' "$ak")" = "600 $uid $gid" ] || tuapt_die "$ak: mode/owner $(stat -c '%a %u %g' "$ak"), expected 600 $uid $gid"
[ "$(stat -c '%a %u' "$R/home/site-admin/.ssh")" = "700 $uid" ] || tuapt_die ".ssh: $(stat -c '%a %u' "$R/home/site-admin/.ssh")"
grep -qx "$(sed -n 's/^ *- \(ssh-ed25519 .*\)$/\1/p' "$src/examples/example.test/users.yaml")" "$ak" ||
	tuapt_die "$ak does not hold the key of users.yaml: $(cat "$ak")"

phase check-system
chroot_run "$H" "$R" dpkg-query -W -f '${Status}\n' nginx | grep -qx "install ok installed" ||
	tuapt_die "nginx is not installed in the chroot"
grep -Eq '^root:[[:space:]]*webmaster@example\.test$' "$R/etc/aliases" ||
	tuapt_die "root's alias is not the contact e-mail: $(grep -s '^root' "$R/etc/aliases")"
site=$R/srv/tuap/example.test
diff -r "$src/examples/example.test/site" "$site" >&2 || tuapt_die "the extracted tree differs from the site's sources"
[ "$(find "$R/srv/tuap" -mindepth 1 -maxdepth 1 | wc -l)" = 1 ] ||
	tuapt_die "more than the site in /srv/tuap: $(ls "$R/srv/tuap")"

phase check-make
job=$(agent_job_dir "$R")
[ -n "$job" ] && [ -f "$job/make.log" ] || tuapt_die "no make.log in the agent's state dir"
n=$(grep -c '^content:' "$job/make.log" || true)
[ "$n" = 1 ] || tuapt_die "make ran $n times by the agent's make.log ($job/make.log)"
ctl log example.test >"$W/setup.log"
n=$(grep -c '^make| content: ' "$W/setup.log" || true)
[ "$n" = 1 ] || { cat "$W/setup.log" >&2; tuapt_die "'content:' appears $n times in tuap-ctl log"; }
grep -q '^make| reload: nginx serves example.test$' "$W/setup.log" || tuapt_die "make's last line is not in tuap-ctl log"
grep -q '^packages| .*nginx' "$W/setup.log" || tuapt_die "apt's output is not in tuap-ctl log"
grep -q "^code=0 stage=make" "$job/make.status" || tuapt_die "make.status: $(cat "$job/make.status")"

phase check-http
wait_for "nginx on $HADDR:80" 20 port_open "$H" "$HADDR" 80
page=$(ip netns exec "$C" curl -sS --max-time 10 "http://$HADDR/")
[ "$page" = "$(cat "$src/examples/example.test/site/public/index.html")" ] ||
	tuapt_die "http://$HADDR/ served: $page"
ctl status --json example.test >"$W/status.json"
"$TUAPT_PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))["domains"][0]
assert d["domain"] == "example.test" and d["job"] == "done" and d["vm"] == "existing host", d
assert d.get("agent_version"), d' "$W/status.json" || tuapt_die "status: $(cat "$W/status.json")"

phase tuapd-stop
stop_site_nginx
tuapd_stop "$TUAPD_PID" "$W/d"
phase
echo "PASS: provision --existing of example.test into a chrooted Debian: users, nginx from the local repository, mail alias, data, make once, HTTP"
