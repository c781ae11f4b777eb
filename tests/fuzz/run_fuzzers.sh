#!/usr/bin/env bash
# Runs the libFuzzer harnesses of a fuzz build (cmake --preset fuzz) for SECONDS each, one after
# the other, one process each (the CI machine has 2 cores):
#   tests/fuzz/run_fuzzers.sh BUILD_DIR SECONDS [HARNESS...]      (default: all harnesses)
# New inputs go to BUILD_DIR/fuzz-corpus/HARNESS (the committed seeds in tests/fuzz/corpus/ and
# the crash regressions in tests/fuzz/regressions/HARNESS/ are read, never written), crash
# inputs to BUILD_DIR/fuzz-artifacts/HARNESS/, logs to BUILD_DIR/fuzz-logs/.
# libFuzzer runs in fork mode and goes on after a crash; at the end every new artifact is
# replayed by triage.sh. Crashes inside libhdf5 (known bugs of the library on malformed files,
# contained by the engine's isolated loader) are listed; any other crash, leak, timeout or
# out-of-memory input in ditgen's code makes the script exit 1.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: run_fuzzers.sh BUILD_DIR SECONDS [HARNESS...]}"
seconds="${2:?usage: run_fuzzers.sh BUILD_DIR SECONDS [HARNESS...]}"
shift 2
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(weights attn_spec paro_calib safetensors cli_values prompt)
# Allocations of absurd sizes (malformed sizes in a file) fail as they do without ASan (NULL),
# so that the code's handling of the failure is what gets tested.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$here/lsan.supp:print_suppressions=0}"
export OMP_NUM_THREADS=1
failed=0
for h in "${harnesses[@]}"; do
  bin="$build/tests/fuzz/fuzz_$h"
  [ -x "$bin" ] || { echo "run_fuzzers: $bin is missing (cmake --build $build --target fuzz_all)" >&2; exit 2; }
  work="$build/fuzz-corpus/$h"; art="$build/fuzz-artifacts/$h"; logs="$build/fuzz-logs"
  mkdir -p "$work" "$art" "$logs"
  dirs=("$work" "$here/corpus/$h")
  [ -d "$here/regressions/$h" ] && dirs+=("$here/regressions/$h")
  dict=()
  [ -f "$here/$h.dict" ] && dict=("-dict=$here/$h.dict")
  log="$logs/$h-$(date +%Y%m%d-%H%M%S).log"
  stamp="$(mktemp)"
  echo "== fuzz_$h for ${seconds} s (log: $log)"
  "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 -malloc_limit_mb=1000000000 -max_len=65536 \
    -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
    -artifact_prefix="$art/" "${dict[@]}" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  last="$(grep -E '^#[0-9]+: cov' "$log" | tail -1)"
  echo "   $last"
  new=()
  while IFS= read -r -d '' f; do new+=("$f"); done < <(find "$art" -type f -newer "$stamp" -print0)
  rm -f "$stamp"
  # In fork mode libFuzzer exits 1 when any job crashed; the crash inputs then decide (triage).
  if [ $rc -ne 0 ] && [ ${#new[@]} -eq 0 ]; then
    echo "!! fuzz_$h exited with $rc and left no crash input"; tail -5 "$log" | sed "s/^/   /"; failed=1
  fi
  if [ ${#new[@]} -gt 0 ]; then
    echo "   ${#new[@]} new crash input(s); triage:"
    "$here/triage.sh" "$build" "$h" "${new[@]}" | sed "s/^/   /"
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "!! fuzz_$h found a crash in ditgen's code (above)"; failed=1; }
  fi
done
exit $failed
