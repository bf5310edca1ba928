"""py_test targets whose body is a pytest file."""

def py_pytest(name, src, deps = [], data = [], **kwargs):
    """A py_test that runs pytest on `src`.

    Every target depends on //tests:conftest, so tests/conftest.py stands
    beside the test file in the runfiles, where pytest finds and loads it
    before the tests (as it does when pytest runs from the repository).
    """
    native.py_test(
        name = name,
        srcs = [src, "//bazel:pytest_runner.py"],
        main = "//bazel:pytest_runner.py",
        args = ["$(rootpath %s)" % src],
        deps = deps + ["//tests:conftest"],
        data = data,
        python_version = "PY3",
        **kwargs
    )
