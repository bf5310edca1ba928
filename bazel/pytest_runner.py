"""Runs pytest on the files given as arguments, the way Bazel's py_test expects."""

import os
import sys

import pytest

def _matplotlib_cache() -> None:
    """Bazel's sandbox has no writable home folder: matplotlib (which Keras
    imports) would warn about it, and build its font cache, on every import in
    every program a test starts, and those lines would precede the one-line
    errors the tests compare. One cache for the test, built here, once."""
    if "MPLCONFIGDIR" in os.environ or os.access(os.path.expanduser("~"), os.W_OK):
        return
    os.environ["MPLCONFIGDIR"] = os.path.join(os.environ.get("TEST_TMPDIR", "/tmp"), "matplotlib")
    os.makedirs(os.environ["MPLCONFIGDIR"], exist_ok=True)
    import matplotlib.font_manager  # noqa: F401 (builds the cache)


if __name__ == "__main__":
    _matplotlib_cache()
    # Deprecation notices of third-party packages are noise in test logs.
    args = list(sys.argv[1:]) + ["-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"]
    if os.environ.get("XML_OUTPUT_FILE"):
        args += ["--junitxml", os.environ["XML_OUTPUT_FILE"]]
    if os.environ.get("TESTBRIDGE_TEST_ONLY"):
        args += ["-k", os.environ["TESTBRIDGE_TEST_ONLY"]]
    sys.exit(pytest.main(args))
