#!/usr/bin/env bash
# Installs, builds and starts `dcmstreams serve` with the bundled streams
# (streams/library), data in ./data, DICOM on port 11113. Extra arguments go
# to `serve` (see `build/main/dcmstreams serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh RelWithDebInfo
export TCP_NODELAY=1
exec build/main/dcmstreams serve "$@"
