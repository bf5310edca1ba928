#!/usr/bin/env bash
echo "bazel coverage is not set up for this project" >&2
exit 1
