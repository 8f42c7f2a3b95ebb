# Shared by the CLI test scripts (sourced): pass/fail counting and the bad-input check.
# Needs $bin (program under test) and $tmp (scratch directory) to be set by the caller.
fails=0; passes=0

# check STATUS NAME: the status comes first so that it is read before a $(...) in NAME runs (which
# would overwrite $?).
check() {
  if [ "$1" = 0 ]; then passes=$((passes + 1)); else fails=$((fails + 1)); echo "FAIL: $2"; fi
}

# expect_error NAME NEEDLE ARGS...: exit code 2 and exactly one "error: ...NEEDLE" line on stderr.
expect_error() {
  local name="$1" needle="$2"; shift 2
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  [ "$rc" = 2 ]; check $? "$name: exit code $rc, want 2"
  grep -q "^error: .*$needle" "$tmp/err"; check $? "$name: stderr lacks 'error: ...$needle': $(head -c 300 "$tmp/err")"
  [ "$(wc -l <"$tmp/err")" -le 1 ]; check $? "$name: more than one line on stderr"
}
