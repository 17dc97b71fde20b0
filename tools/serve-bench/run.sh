#!/bin/sh
# Load benchmark of `shlpt-vk serve` with wrk on loopback: throughput and
# latency at several concurrencies, with requests spread over every task of
# the runs, the batch sizes the server formed and its device memory. Results
# in docs/performance.md (Serving).
#
# usage: tools/serve-bench/run.sh [-d SECONDS] [-c "1 8 32"] [-p PROGRAMS] [-n EXAMPLES] RUN_DIR...
#
# The inputs are each task's test examples as eval draws them (eval writes
# them to eval/bench.predictions.jsonl), sent raw; tasks the run ranks go to
# /v1/classify, the others to /v1/completions. Needs wrk and jq (Debian
# packages wrk, jq) and bin/shlpt-vk (make build).
set -eu
secs=20
levels="1 8 32"
programs=0
examples=20
while getopts d:c:p:n: o; do
	case $o in
	d) secs=$OPTARG ;;
	c) levels=$OPTARG ;;
	p) programs=$OPTARG ;;
	n) examples=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-d SECONDS] [-c LEVELS] [-p PROGRAMS] [-n EXAMPLES] RUN_DIR..." >&2; exit 2; }
for t in wrk jq; do
	command -v $t >/dev/null || { echo "$0: $t is not installed (Debian package $t)" >&2; exit 1; }
done
bin=${SHLPT_VK:-./bin/shlpt-vk}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $serve 2>/dev/null; rm -rf "$work"' EXIT INT TERM
serve=

# The request bodies, as a Lua table (JSON inside long brackets).
echo "requests = {" >"$work/bodies.lua"
for run in "$@"; do
	"$bin" eval "$run" --name bench --quiet >/dev/null
	decode=$(jq -r .settings.decode "$run/config.json")
	path=/v1/completions
	[ "$decode" = rank ] && path=/v1/classify
	jq -r --arg path "$path" --argjson n "$examples" -s '
		group_by(.task) | map(.[:$n]) | transpose | flatten | map(select(. != null))[] |
		if $path == "/v1/classify" then {model: .task, input: .input, raw: true}
		else {model: .task, prompt: .input, raw: true} end |
		"  {path = \"" + $path + "\", body = [==[" + tojson + "]==]},"' \
		"$run/eval/bench.predictions.jsonl" >>"$work/bodies.lua"
done
echo "}" >>"$work/bodies.lua"

"$bin" serve "$@" --addr 127.0.0.1:0 --programs "$programs" --quiet >"$work/serve.out" 2>"$work/serve.err" &
serve=$!
for _ in $(seq 100); do
	grep -q listening "$work/serve.out" 2>/dev/null && break
	sleep 0.2
done
url=$(sed -n 's/^listening on //p' "$work/serve.out")
[ -n "$url" ] || { cat "$work/serve.err" >&2; exit 1; }

metric() { curl -s "$url/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
tasks=$(curl -s "$url/v1/models" | jq -r '[.data[].id] | join(", ")')
echo "serving $tasks; $(grep -c path "$work/bodies.lua") request bodies; programs $programs; $secs s per level"
printf '| concurrency | requests/s | p50 | p99 | errors | rows per pass | passes with several tasks | device memory reserved before, after |\n|---|---|---|---|---|---|---|---|\n'
for c in $levels; do
	threads=$((c < 2 ? c : 2))
	# An untimed first round at this concurrency lets the server record
	# the programs of the batch shapes it forms.
	BODIES="$work/bodies.lua" wrk -t $threads -c "$c" -d 5s --timeout 60s -s "$here/mixed.lua" "$url" >/dev/null
	mem0=$(metric 'shlpt_device_memory_bytes{kind="reserved"}')
	b0=$(metric shlpt_batches_total)
	r0=$(metric shlpt_rows_total)
	s0=$(metric 'shlpt_batch_tasks_bucket{le="1"}')
	BODIES="$work/bodies.lua" wrk -t $threads -c "$c" -d "${secs}s" --timeout 60s --latency -s "$here/mixed.lua" "$url" >"$work/wrk.$c"
	mem1=$(metric 'shlpt_device_memory_bytes{kind="reserved"}')
	b1=$(metric shlpt_batches_total)
	r1=$(metric shlpt_rows_total)
	s1=$(metric 'shlpt_batch_tasks_bucket{le="1"}')
	rps=$(awk '/^Requests\/sec/ { print $2 }' "$work/wrk.$c")
	p50=$(awk '$1 == "50%" { print $2 }' "$work/wrk.$c")
	p99=$(awk '$1 == "99%" { print $2 }' "$work/wrk.$c")
	errs=$(awk '/Non-2xx/ { n += $NF } /Socket errors/ { n += 1 } END { print n + 0 }' "$work/wrk.$c")
	awk -v b0="$b0" -v b1="$b1" -v r0="$r0" -v r1="$r1" -v s0="$s0" -v s1="$s1" -v m0="$mem0" -v m1="$mem1" \
		-v c="$c" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v e="$errs" 'BEGIN {
		n = b1 - b0
		printf "| %d | %s | %s | %s | %d | %.2f | %.0f%% | %.0f, %.0f MiB |\n", c, rps, p50, p99, e, (r1 - r0) / n, 100 * (n - (s1 - s0)) / n, m0 / 2^20, m1 / 2^20
	}'
done
echo
echo "rows per forward pass, whole run (shlpt_batch_rows):"
curl -s "$url/metrics" | grep '^shlpt_batch_rows_bucket'
kill -TERM $serve
wait $serve
serve=
