"""Set once for every test file, before any of them imports TensorFlow.

pytest loads this file before it collects the tests beside it, by Bazel
(bazel/pytest.bzl puts it beside every test file) or by hand from the
repository's root (`python -m pytest tests/x_test.py`, or plain `pytest`).
"""

import os
import sys

# TensorFlow's start-up notices (oneDNN, CPU features) are noise in test logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The library and tests/helpers.py importable however pytest was started.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _folder in (_REPO, os.path.dirname(os.path.abspath(__file__))):
    if _folder not in sys.path:
        sys.path.insert(0, _folder)
