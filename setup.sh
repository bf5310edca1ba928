#!/usr/bin/env bash
# One set-up step: Debian packages (Bazel, Graphviz, Chromium, Fashion-MNIST) when missing, and
# .venv with the pinned Python packages. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v bazel >/dev/null 2>&1 || need_apt+=(bazel-bootstrap)
command -v dot >/dev/null 2>&1 || need_apt+=(graphviz)
# Headless Chromium: report_test screenshots the search report as a browser shows it.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need_apt+=(dataset-fashion-mnist)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python3 ] || "$PYTHON" -m venv .venv
.venv/bin/python3 -m pip install -q --disable-pip-version-check -r requirements.txt
