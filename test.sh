#!/usr/bin/env bash
# The test command: every Bazel test, offline. Extra arguments go to `bazel test`.
set -euo pipefail
cd "$(dirname "$0")"
exec bazel test //... "$@"
