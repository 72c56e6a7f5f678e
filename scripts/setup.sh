#!/usr/bin/env bash
# Installs what dcmstreams needs on Debian 12 and builds it. Idempotent: a
# second run installs nothing and rebuilds only what changed.
#
#   scripts/setup.sh [Release|RelWithDebInfo|Debug]   (default RelWithDebInfo)
set -euo pipefail

cd "$(dirname "$0")/.."
build_type="${1:-RelWithDebInfo}"
build_dir="${DCMSTREAMS_BUILD_DIR:-build}"

packages=(
  # build
  g++ cmake ninja-build pkg-config clang-format
  # the fuzz targets (scripts/fuzz.sh): clang with libFuzzer and the sanitizers
  clang libclang-rt-dev
  # libraries
  libdcmtk-dev libcaf-dev libboost-dev nlohmann-json3-dev libtbb-dev libsqlite3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libarchive-dev libsodium-dev libssl-dev libpng-dev
  # peers and data the tests and benchmarks use
  dcmtk orthanc orthanc-dicomweb prometheus python3-pydicom dicom3tools procps curl wrk openssl
  # the reliability campaign (tests/chaos/): a clock that jumps, network namespaces
  faketime iproute2
  # charts of the benchmark report
  gnuplot-nox
  # systemd-analyze checks packaging/dcmstreams.service
  systemd
  # browser tests of the web UI (playwright-core from npm drives Debian's chromium)
  chromium
)
# Node.js for the browser tests: Debian's, unless one is installed already.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The browser tests' npm packages, exactly as locked; never a downloaded browser.
if [[ ! -d tests/browser/node_modules/playwright-core ]] ||
   [[ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]]; then
  echo "setup: installing the browser tests' npm packages"
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" >/dev/null
cmake --build "$build_dir"
echo "setup: built $build_dir/main/dcmstreams ($build_type)"
