# Sourced by the bench/*.sh run scripts: `step NAME command...` runs a command once (a NAME.done marker in
# $LOGS), logs its wall time and the load average to $LOGS/times.txt. With STEP names in $ONLY (" a b "), only
# those steps run, so the long runs can be split into lanes.
step() {
    local name=$1; shift
    [ "$ONLY" = "  " ] || [[ "$ONLY" == *" $name "* ]] || return 0
    [ -f "$LOGS/$name.done" ] && { echo "skip $name (done)"; return; }
    echo "== $name  start $(date -u +%H:%M:%S)  load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOGS/times.txt"
    local t0=$SECONDS
    "$@" > "$LOGS/$name.log" 2>&1
    echo "== $name  done in $((SECONDS - t0)) s  load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOGS/times.txt"
    touch "$LOGS/$name.done"
}
