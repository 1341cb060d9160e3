# Sourced by the launch scripts: forwards preemption signals to a launcher child and waits for it.
#   some_launcher ... &  pid=$!;  source forward-stop.sh;  wait_forwarding "$pid";  echo "$rc"
# SIGUSR1 and SIGTERM received by the script are sent on as SIGUSR1 (mpirun and srun pass SIGUSR1 to every rank;
# mpirun would kill the ranks on SIGTERM). The ranks finish their step, checkpoint and exit with 85.
stop_forwarded=0
forward_stop() {
  stop_forwarded=1
  echo "[$(date +%H:%M:%S)] $(basename "$0"): preemption signal received; asking every rank to checkpoint and stop" >&2
  kill -USR1 "$1" 2>/dev/null || true
}
wait_forwarding() {
  local pid=$1
  trap "forward_stop $pid" USR1 TERM
  # A trapped signal interrupts `wait` while the child runs on: wait until it is gone, then read its status
  # (bash remembers the status of its background children).
  wait "$pid"
  while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
  wait "$pid"
  rc=$?
  trap - USR1 TERM
}
