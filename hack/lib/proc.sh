# proc.sh — daemons by PID, for the hack/ scripts (sourced). The caller defines log, die
# and WAIT_SECS. Nothing here ends a process that is not the one its pidfile names and
# still runs the expected command.

# read_pid PIDFILE: the PID in PIDFILE, or nothing (daemons remove their pidfile on exit).
read_pid() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 0
	[[ $pid =~ ^[0-9]+$ ]] && echo "$pid"
	return 0
}

# proc_is PID NAME: PID is a live process whose command is NAME (the kernel keeps 15 bytes
# of it). An exited daemon waits as a zombie until PID 1 reaps it; that is not alive.
proc_is() {
	local pid=$1 name=${2:0:15} comm state
	[[ -n $pid ]] || return 1
	comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
	[[ $comm == "$name" ]] || return 1
	state=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$pid/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z && $state != X ]]
}

# pid_alive PIDFILE NAME: the pidfile names a live NAME.
pid_alive() { proc_is "$(read_pid "$1")" "$2"; }

# stop_pid PIDFILE NAME [GROUP]: SIGTERM, wait, SIGKILL; only the process the pidfile
# names and only while it still runs NAME. With GROUP=group, its whole process group (it
# is a session leader: started by setsid), for the relay's per-connection children.
stop_pid() {
	local pidfile=$1 name=$2 group=${3:-} pid i target
	pid=$(read_pid "$pidfile")
	if ! proc_is "$pid" "$name"; then
		rm -f "$pidfile"
		return 0
	fi
	target=$pid
	[[ $group == group ]] && target=-$pid
	kill -TERM -- "$target" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		proc_is "$pid" "$name" || break
		sleep 0.1
	done
	if proc_is "$pid" "$name"; then
		log "$name ($pid) ignored SIGTERM; killing"
		kill -KILL -- "$target" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			proc_is "$pid" "$name" || break
			sleep 0.1
		done
	fi
	[[ $group == group ]] && kill -KILL -- "$target" 2>/dev/null || true
	rm -f "$pidfile"
}

# wait_for WHAT COMMAND...: until COMMAND succeeds, or die after WAIT_SECS.
wait_for() {
	local what=$1 i
	shift
	for ((i = 0; i < WAIT_SECS * 5; i++)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.2
	done
	die "timed out after ${WAIT_SECS}s waiting for $what"
}
