#!/usr/bin/env bash
# Bazel's Python interpreter: the project's .venv (made by ./setup.sh).
here="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
exec "$here/../.venv/bin/python3" "$@"
