#!/usr/bin/env bash
# Installs, builds and runs the whole test suite: formatting, unit, actor and
# integration tests (ctest), the quick benchmark as a smoke test, and each
# fuzz target for a minute (scripts/fuzz.sh; FUZZ_SECONDS changes how long,
# 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh RelWithDebInfo
export TCP_NODELAY=1

echo "test: checking formatting (clang-format)"
files=$(git ls-files '*.cpp' '*.hpp' 2>/dev/null || find . -name '*.cpp' -o -name '*.hpp' | grep -v '^./build')
if ! clang-format --dry-run --Werror $files; then
  echo "test: run clang-format -i on the files above" >&2
  exit 1
fi

ctest --test-dir build --output-on-failure --timeout 900 "$@"

fuzz_seconds="${FUZZ_SECONDS:-60}"
if ((fuzz_seconds > 0)); then
  echo "test: fuzzing each target for ${fuzz_seconds} s (scripts/fuzz.sh)"
  scripts/fuzz.sh --seconds "$fuzz_seconds"
fi
