#!/usr/bin/env bash
# Replays fuzz artifacts and sorts them by where the crash happens:
#   tests/fuzz/triage.sh BUILD_DIR HARNESS FILE...
# prints one line per file: "fixed FILE" (no longer crashes), "libhdf5 FILE FRAME" (the first
# frame outside the sanitizers and libFuzzer is inside libhdf5: a library bug on malformed
# files, contained by the engine's isolated loader; docs/robustness.md), "oom-outside-heap FILE"
# (an RSS peak that no live allocation holds, see below), or "ditgen FILE FRAME" (a bug in this
# project's code). Exits 1 if any file is "ditgen".
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$1"; h="$2"; shift 2
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$here/lsan.supp:print_suppressions=0}"
export OMP_NUM_THREADS=1
ours=0
for f in "$@"; do
  out="$(timeout 120 "$build/tests/fuzz/fuzz_$h" -rss_limit_mb=2560 -malloc_limit_mb=1000000000 "$f" 2>&1)"
  rc=$?
  if [ $rc -eq 0 ]; then echo "fixed $f"; continue; fi
  # An RSS out-of-memory report lists the live heap, not the allocation that peaked. When the
  # live heap holds under a tenth of the RSS, no allocation of ours holds the memory (seen: a
  # corrupt file image inside libhdf5's image driver; the same bytes as a file are refused at
  # 80 MB), so the input is listed, not failed.
  if printf '%s' "$out" | grep -q 'libFuzzer: out-of-memory (used: '; then
    used="$(printf '%s\n' "$out" | sed -nE 's/.*out-of-memory \(used: ([0-9]+)Mb.*/\1/p' | head -1)"
    live="$(printf '%s\n' "$out" | sed -nE 's/^Live Heap Allocations: ([0-9]+) bytes.*/\1/p' | head -1)"
    if [ -n "$used" ] && [ -n "$live" ] && [ $((live / 1048576 * 10)) -lt "$used" ]; then
      echo "oom-outside-heap $f (RSS ${used} MB, live heap $((live / 1048576)) MB)"
      continue
    fi
  fi
  frame="$(printf '%s\n' "$out" | grep -E '^ +#[0-9]+ ' \
    | grep -vE 'libclang_rt|compiler-rt|sanitizer_common|/asan/|/ubsan/|/lsan/|fuzzer::|__interceptor|__asan|__ubsan|__sanitizer|\bmalloc\b|\bcalloc\b|\brealloc\b|\bfree\b|operator (new|delete)|libc\.so|raise|abort|LLVMFuzzerTestOneInput| in (mem(cpy|move|set|cmp)|str[a-z]*|__mem[a-z_0-9]*) |sysdeps/' \
    | head -1 | sed -E 's/^ +#[0-9]+ 0x[0-9a-f]+ in //; s/ \(BuildId: [0-9a-f]+\)//')"
  [ -n "$frame" ] || frame="$(printf '%s\n' "$out" | grep -E 'ERROR|runtime error|invariant' | head -1)"
  if printf '%s' "$frame" | grep -q 'libhdf5'; then
    echo "libhdf5 $f $frame"
  else
    echo "ditgen $f $frame"; ours=1
  fi
done
exit $ours
