#!/usr/bin/env bash
# A sweep on a real Slurm cluster: start a one-node cluster on localhost
# (munged, slurmctld and slurmd from Debian's slurm-wlm and munge, without
# cgroups: proctrack/linuxproc, task/none), submit the job array of a small
# plan (the tiny full-vocabulary T5, 2 tasks, 2 methods, 2 seeds), requeue one
# array task while it runs, wait for the array, and check that every run is
# complete with results identical to a sequential 'sweep run' of the same plan.
# Then the plan's parallel.txt runs under GNU parallel, two at a time, with
# the same check.
#
# Needs: root (slurmd runs jobs as their user), slurm-wlm, munge, parallel, Go, and the
# variables .ci/run sets (SHLPT_DATA, SHLPT_TOKENIZER). Every wait has a
# deadline; on failure the Slurm logs and job outputs are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
: "${SHLPT_DATA:?SHLPT_DATA must name the task data folder}"
: "${SHLPT_TOKENIZER:?SHLPT_TOKENIZER must name the tokenizer folder}"
export LP_NUM_THREADS="${LP_NUM_THREADS:-0}"

[ "$(id -u)" = 0 ] || { echo "slurm-test: needs root (slurmd runs each job as its user; CI runs as root)"; exit 1; }
for tool in munged slurmctld slurmd sbatch squeue scontrol parallel; do
  command -v "$tool" >/dev/null || { echo "slurm-test: $tool not found (apt-get install slurm-wlm munge parallel)"; exit 1; }
done

W=$(mktemp -d /tmp/shlpt-slurm.XXXXXX)
chmod 755 "$W"
mkdir -p "$W/munge" "$W/state" "$W/spool"
chmod 700 "$W/munge"
BIN="$PWD/bin/shlpt-vk"

dump() {
  echo "---- squeue"; squeue -a 2>&1 || true
  if [ -n "${JOB:-}" ]; then echo "---- scontrol show job $JOB"; scontrol show job "$JOB" 2>&1 || true; fi
  for f in "$W/slurmctld.log" "$W/slurmd.log" "$W/munge/munged.log"; do
    echo "---- $f (last 60 lines)"; tail -n 60 "$f" 2>/dev/null || true
  done
  for f in "$W"/plan-slurm/logs/*; do
    [ -e "$f" ] || continue
    echo "---- $f"; tail -n 40 "$f"
  done
  for f in "$W"/plan-slurm/failures/*.json; do
    [ -e "$f" ] || continue
    echo "---- $f"; cat "$f"
  done
}
# stop PID NAME: SIGTERM, and SIGKILL if the process is still there 20 s later.
stop() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.2
  done
  echo "slurm-test: $2 (pid $1) did not stop on SIGTERM: killing it"
  kill -9 "$1" 2>/dev/null || true
}
cleanup() {
  rc=$?
  if [ $rc -ne 0 ]; then echo "slurm-test: FAILED (exit $rc)"; dump; fi
  if [ -n "${JOB:-}" ]; then
    # A job's steps end only while slurmd and slurmctld run (and slurmd
    # does not stop while they remain): cancel the array and let it leave
    # the queue before the daemons are stopped.
    scancel "$JOB" 2>/dev/null || true
    for _ in $(seq 60); do
      [ -n "$(squeue -h -j "$JOB" 2>/dev/null)" ] || break
      sleep 1
    done
  fi
  # The daemons remove their pid files as they stop: read each first.
  for d in slurmd slurmctld munge/munged; do
    if [ -s "$W/$d.pid" ]; then stop "$(cat "$W/$d.pid")" "${d#munge/}"; fi
  done
  if [ $rc -eq 0 ]; then rm -rf "$W"; else echo "slurm-test: files kept in $W"; fi
}
trap cleanup EXIT

fail() { echo "slurm-test: $*"; exit 1; }

# wait_for SECONDS WHAT COMMAND...: retry COMMAND every POLL seconds (default
# 1) until it succeeds.
wait_for() {
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -lt $end ] || fail "timed out after ${secs}s waiting for $what"
    sleep "${POLL:-1}"
  done
}

free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  fail "no free port"
}

echo "== build"
make build >/dev/null

echo "== munge"
dd if=/dev/urandom of="$W/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$W/munge/munge.key"
MUNGE_SOCKET="$W/munge/munge.socket"
munged --force --key-file="$W/munge/munge.key" --socket="$MUNGE_SOCKET" \
  --pid-file="$W/munge/munged.pid" --log-file="$W/munge/munged.log" --seed-file="$W/munge/munged.seed"
wait_for 20 "munged" test -S "$MUNGE_SOCKET"

echo "== slurmctld, slurmd"
NODE=$(hostname -s)
CPUS=$(nproc)
cat >"$W/slurm.conf" <<EOF
ClusterName=shlpt-ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/slurmctld.log
SlurmdLogFile=$W/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Gres=gpu:2 State=UNKNOWN
PartitionName=ci Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
# No GPU here: the node declares two GPU slots backed by /dev/null and
# /dev/zero so that the array's --gres=gpu:1 schedules two runs at once; the
# runs themselves use lavapipe (Vulkan on the CPU).
cat >"$W/gres.conf" <<EOF
NodeName=$NODE Name=gpu File=/dev/null
NodeName=$NODE Name=gpu File=/dev/zero
EOF
export SLURM_CONF="$W/slurm.conf"
slurmctld -f "$SLURM_CONF"
wait_for 30 "slurmctld" scontrol ping
slurmd -f "$SLURM_CONF"
node_idle() { sinfo -h -n "$NODE" -o %t | grep -qE '^(idle|mix|alloc)'; }
wait_for 60 "node $NODE to be idle" node_idle
sinfo

echo "== the plan: 2 tasks × 2 methods × 2 seeds on the tiny T5"
plan() {
  "$BIN" sweep plan --grid --methods per-task,shlpt --tasks cb,copa --seeds 1,2 \
    --set epochs=12 --set k-train=4 --set k-val=2 --set k-test=2 --set eval-from=0 \
    --set prompt-len=4 --set max-input-len=32 --set decode=greedy \
    --model testdata/t5-tiny-fullvocab --tokenizer "$SHLPT_TOKENIZER" --data "$SHLPT_DATA/shlpt" \
    --bin "$BIN" --max-parallel 2 --out "$1"
}
plan "$W/plan-slurm"
plan "$W/plan-seq" >/dev/null
plan "$W/plan-parallel" >/dev/null
cat "$W/plan-slurm/slurm.sbatch"

echo "== submit the array"
JOB=$(sbatch --parsable "$W/plan-slurm/slurm.sbatch")
echo "job $JOB"
RUN0="$W/plan-slurm/runs/$(awk -F'\t' 'NR==2 { print $3 }' "$W/plan-slurm/runs.tsv")"
task_state() { squeue -h -j "${JOB}_0" -o %T 2>/dev/null | head -1; }
epochs_done() { [ -f "$RUN0/metrics.jsonl" ] && [ "$(wc -l <"$RUN0/metrics.jsonl")" -ge 1 ]; }
running_with_epoch() {
  [ "$(task_state)" = RUNNING ] && epochs_done && return 0
  [ -f "$RUN0/results.json" ] && grep -q '"complete": true' "$RUN0/results.json" &&
    fail "array task 0 finished before it could be requeued: its runs are too short for this machine"
  return 1
}
POLL=0.1 wait_for 180 "array task 0 to run its first epoch" running_with_epoch

echo "== requeue array task 0 while it runs"
scontrol requeue "${JOB}_0"
# A requeued job becomes eligible only after a delay Slurm adds (about two
# minutes); release it now so that the test need not wait.
pending() { [ "$(task_state)" = PENDING ]; }
wait_for 60 "array task 0 to be pending again" pending
scontrol update JobId="${JOB}_0" StartTime=now

echo "== wait for the array"
array_done() { [ -z "$(squeue -h -j "$JOB" 2>/dev/null)" ]; }
wait_for 480 "the array to finish" array_done

echo "== every run complete"
"$BIN" sweep status "$W/plan-slurm"
status=$("$BIN" sweep status "$W/plan-slurm" --json)
complete=$(grep -o '"state":"complete"' <<<"$status" | wc -l)
[ "$complete" -eq 4 ] || fail "$complete of 4 runs complete"
restarts=$(scontrol show job "${JOB}_0" | grep -o 'Restarts=[0-9]*' | cut -d= -f2)
[ "${restarts:-0}" -ge 1 ] || fail "array task 0 shows Restarts=${restarts:-?}, expected a requeue"
out0=$(ls "$W"/plan-slurm/logs/slurm-*_0.out)
starts=$(grep -c 'sweep exec: run 0 of 4' "$out0")
[ "$starts" -ge 2 ] || fail "array task 0 started $starts times, expected at least 2 (the requeue)"
grep -q 'resuming' "$out0" || fail "array task 0 did not resume from its checkpoint after the requeue"
echo "-- array task 0 (requeued):"
grep -E 'sweep exec|stopping|requeue|resuming' "$out0"

echo "== the same plan, sequentially"
"$BIN" sweep run "$W/plan-seq" --jobs 1
"$BIN" sweep compare "$W/plan-slurm" "$W/plan-seq"

echo "== the same plan through GNU parallel"
parallel --will-cite -j 2 --joblog "$W/plan-parallel/logs/parallel.log" <"$W/plan-parallel/parallel.txt" >/dev/null
cat "$W/plan-parallel/logs/parallel.log"
"$BIN" sweep compare "$W/plan-parallel" "$W/plan-seq"
echo "== slurm-test passed"
