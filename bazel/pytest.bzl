"""py_test targets whose body is a pytest file."""

def py_pytest(name, src, deps = [], data = [], **kwargs):
    native.py_test(
        name = name,
        srcs = [src, "//bazel:pytest_runner.py"],
        main = "//bazel:pytest_runner.py",
        args = ["$(rootpath %s)" % src],
        deps = deps,
        data = data,
        python_version = "PY3",
        **kwargs
    )
