#!/usr/bin/env bash
# Builds the fuzz targets (clang, libFuzzer, ASan, UBSan) in build-fuzz/, seeds
# each from tests/fuzz/seeds/<target>/, the project's own files and
# python3-pydicom's test files, and runs each for a while. Idempotent: the
# corpus grows across runs in build-fuzz/corpus/.
#
#   scripts/fuzz.sh [--seconds N] [--runs N] [target ...]
#
# --seconds: each target's time (default 60); --runs: stop a target after this
# many executions instead. A target that crashes leaves its input in
# tests/fuzz/seeds/<target>/ (so the unit test fuzz_regressions replays it
# from then on) and the script fails. The summary, one line per target with
# executions, executions per second and corpus size, is build-fuzz/fuzz-report.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
runs=""
targets=()
while (($# > 0)); do
  case "$1" in
  --seconds) seconds="$2"; shift 2 ;;
  --runs) runs="$2"; shift 2 ;;
  -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
  *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]} > 0)) || targets=(association dataset json_readers http_request zip_upload)

build=build-fuzz
if [[ ! -f "$build/build.ninja" ]]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DDCMSTREAMS_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" --target fuzz

# Debian's python3-pydicom (scripts/setup.sh installs it) keeps its test files here.
pydicom_files=/usr/lib/python3/dist-packages/pydicom/data/test_files

# The corpus of each target starts from its seeds and the project's files.
seed() {
  local target=$1 corpus=$build/corpus/$1
  mkdir -p "$corpus"
  cp -n tests/fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
  case "$target" in
  dataset)
    # Small DICOM files only: libFuzzer mutates better what it reads whole.
    find "$pydicom_files" -name '*.dcm' -size -64k -exec cp -n {} "$corpus"/ \;
    ;;
  json_readers)
    # The reader a file is for goes first, as a letter (fuzz_targets.hpp).
    for f in streams/library/*/info.json; do
      { printf 's'; cat "$f"; } >"$corpus/stream-$(basename "$(dirname "$f")")"
    done
    [[ -f routing.json ]] && { printf 'r'; cat routing.json; } >"$corpus/routing"
    { printf 'j'; cat metrics/grafana/dcmstreams.json; } >"$corpus/grafana"
    ;;
  zip_upload)
    python3 - "$pydicom_files" "$corpus/study.zip" <<'PY'
import sys, zipfile, pathlib
files = sorted(p for p in pathlib.Path(sys.argv[1]).glob("*.dcm") if p.stat().st_size < 32768)[:3]
with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_STORED) as z:
    for p in files:
        z.write(p, "study/" + p.name)
    z.writestr("study/readme.txt", "not DICOM")
    z.writestr("../outside.dcm", files[0].read_bytes())
PY
    ;;
  esac
}

# DCMTK's own leaks on the data sets it throws on are known (tests/fuzz/lsan.supp).
export LSAN_OPTIONS="suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0"
report=$build/fuzz-report.txt
: >"$report"
failed=0
for target in "${targets[@]}"; do
  status=ok
  seed "$target"
  artifacts=$build/artifacts/$target/
  mkdir -p "$artifacts"
  limits=(-max_total_time="$seconds")
  [[ -n "$runs" ]] && limits=(-runs="$runs")
  # DCMTK allocates what an element's length claims before it reads the
  # value (4 GB for a 162-byte data set: seeds/dataset/huge_declared_length);
  # that memory is never touched and is freed at once, so allow it.
  max_len=4096
  [[ "$target" == dataset || "$target" == zip_upload ]] && max_len=65536
  log=$build/fuzz-$target.log
  echo "fuzz: $target (${runs:+$runs runs}${runs:-$seconds s})"
  if ! "$build/tests/fuzz/fuzz_$target" "$build/corpus/$target" "${limits[@]}" -max_len=$max_len \
    -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=8192 -print_final_stats=1 -artifact_prefix="$artifacts" \
    >"$log" 2>&1; then
    failed=1
    status=FAILED
    for crash in "$artifacts"*; do
      [[ -f "$crash" ]] || continue
      cp "$crash" tests/fuzz/seeds/"$target"/
      echo "fuzz: $target failed on $(basename "$crash"), kept in tests/fuzz/seeds/$target/" >&2
    done
    tail -40 "$log" >&2
  fi
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(find "$build/corpus/$target" -type f | wc -l)
  printf '%-13s %12s executions %8s/s  corpus %6s  %s\n' "$target" "${executions:-?}" \
    "${per_second:-?}" "$corpus" "$status" | tee -a "$report"
done
exit $failed
