"""Runs pytest on the files given as arguments, the way Bazel's py_test expects."""

import os
import sys

import pytest

if __name__ == "__main__":
    # Deprecation notices of third-party packages are noise in test logs.
    args = list(sys.argv[1:]) + ["-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"]
    if os.environ.get("XML_OUTPUT_FILE"):
        args += ["--junitxml", os.environ["XML_OUTPUT_FILE"]]
    if os.environ.get("TESTBRIDGE_TEST_ONLY"):
        args += ["-k", os.environ["TESTBRIDGE_TEST_ONLY"]]
    sys.exit(pytest.main(args))
