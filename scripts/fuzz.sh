#!/usr/bin/env bash
# Builds and runs the cargo-fuzz targets in fuzz/ (what each covers: fuzz/README.md).
#
#   bash scripts/fuzz.sh [--smoke SECONDS | --time SECONDS | --runs N] [target...]
#
#   --smoke S  each target for S seconds from the committed seeds alone, in a throw-away corpus: what CI
#              runs (`bash scripts/fuzz.sh --smoke 20`), so a run never depends on an earlier one.
#   --time S   each target for S seconds (the default, 60), growing the working corpus fuzz/corpus/<target>/.
#   --runs N   each target for N executions, same corpus.
#   target...  any of: shard manifest model tokenizer stored_state recommend (default: all of them).
#
# It installs cargo-fuzz if it is missing (`cargo install cargo-fuzz --locked`), builds every target once
# on the stable toolchain (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly flags; stable's x86_64 std
# ships the AddressSanitizer runtime) with `cargo fuzz build -O` (release, AddressSanitizer, no debug
# assertions) into fuzz/target/, seeds the working corpus from fuzz/seeds/<target>/, and runs each target
# with libFuzzer's limits per input: -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 and a -max_len
# for the target. It prints, per target, the executions, the executions per second and the result, and
# exits non-zero if any target found a crash, a hang (timeout) or an out-of-memory; the input that did it
# is kept under fuzz/artifacts/<target>/ (replay it with `fuzz/target/<triple>/release/<target> FILE`).
# Logs: fuzz/target/logs/<target>.log. Everything it writes is git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(shard manifest model tokenizer stored_state recommend)
mode=time
amount=60
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke | --time | --runs)
      [ $# -ge 2 ] && [[ "$2" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: $1 takes a number" >&2; exit 2; }
      mode="${1#--}"
      amount="$2"
      shift 2
      ;;
    -h | --help)
      sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "fuzz.sh: unknown option $1 (see --help)" >&2
      exit 2
      ;;
    *)
      [[ " ${ALL_TARGETS[*]} " == *" $1 "* ]] || { echo "fuzz.sh: no target $1 (${ALL_TARGETS[*]})" >&2; exit 2; }
      targets+=("$1")
      shift
      ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")

# The longest input each target takes: shards and model weights need room; the decoded targets do not.
max_len() {
  case "$1" in
    shard | model) echo 65536 ;;
    manifest | tokenizer) echo 16384 ;;
    recommend) echo 2048 ;;
    stored_state) echo 1024 ;;
  esac
}

if ! cargo fuzz --version > /dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="fuzz/target/$triple/release"
build_start=$SECONDS
cargo fuzz build -O
echo "fuzz.sh: built in $((SECONDS - build_start)) s"

mkdir -p fuzz/target/logs
# cargo fuzz run sets this too: the Rust std and the sanitizer runtime both define a few globals.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}"
# The tokenizers crate encodes on worker threads otherwise, and libFuzzer keeps no input for a panic there.
export TOKENIZERS_PARALLELISM=false
failed=0
summary=()
for t in "${targets[@]}"; do
  if [ "$mode" = smoke ]; then
    corpus="$(mktemp -d "${TMPDIR:-/tmp}/shelfwise-fuzz-$t.XXXXXX")"
  else
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus"
  fi
  for f in fuzz/seeds/"$t"/*; do
    [ -e "$corpus/$(basename "$f")" ] || cp "$f" "$corpus/"
  done
  artifacts="fuzz/artifacts/$t"
  mkdir -p "$artifacts"
  case "$mode" in
    runs) budget=(-runs="$amount") ;;
    *) budget=(-max_total_time="$amount") ;;
  esac
  log="fuzz/target/logs/$t.log"
  echo "fuzz.sh: $t ($mode $amount)"
  start=$(date +%s%N)
  set +e
  "$bin_dir/$t" "${budget[@]}" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
    -max_len="$(max_len "$t")" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$corpus" > "$log" 2>&1
  rc=$?
  set -e
  wall_ms=$((($(date +%s%N) - start) / 1000000))
  wall="$((wall_ms / 1000)).$((wall_ms % 1000 / 100))"
  [ "$mode" = smoke ] && rm -rf "$corpus"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    result=ok
  else
    failed=1
    kind=$(grep -oE 'ERROR: libFuzzer: [a-z-]+|panicked at [^ ]+' "$log" | head -1 || true)
    result="FAILED (rc $rc: ${kind:-see $log}); input: $(ls -t "$artifacts" | head -1)"
    grep -E 'panicked at|ERROR: |SUMMARY' "$log" | head -5 | sed 's/^/    /' || true
  fi
  summary+=("$(printf '%-13s %12s execs %9s exec/s %7s s  %s' "$t" "${execs:-?}" "${rate:-?}" "$wall" "$result")")
done

echo
echo "fuzz.sh: results ($mode $amount)"
printf '  %s\n' "${summary[@]}"
if [ $failed -ne 0 ]; then
  echo "fuzz.sh: a target failed; its input is in fuzz/artifacts/<target>/ and its log in fuzz/target/logs/" >&2
  exit 1
fi
