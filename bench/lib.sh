# bench/lib.sh — what the bench scripts share (sourced after tests/lib/harness.sh).

# bench_tuapd_conf DIR ENDPOINT: writes DIR/tuapd.conf for a tuapd whose state, run and pool
# dirs are below DIR, listening for agents on ENDPOINT (tcp://ADDR:PORT), tuap-ctl for root.
bench_tuapd_conf() {
	cat >"$1/tuapd.conf" <<EOC
state_dir = "$1/state";
run_dir = "$1/run";
pool_root = "$1/pool";
ctl_group = "root";
agent_listen = "$2";
agent_endpoint = "$2";
EOC
}
