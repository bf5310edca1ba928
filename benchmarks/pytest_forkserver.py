"""Runs pytest in forks of one process that has already imported TensorFlow.

A mutation run starts the tests once per mutant; TensorFlow's import is most
of a small test file's time (6 s of 11 for cells_test). This server imports
TensorFlow, Keras, NumPy and pytest once (nothing of stacnas_tf, so every fork
imports the mutated module from disk) and forks for each request; the client
is the test command cosmic-ray runs, and exits with pytest's status.

TensorFlow's thread pools do not survive a fork, so the server executes no
TensorFlow operation before forking: the pools are made in each child, on its
first operation. The mutation tool checks the unmutated tests pass in forks
before a run (cosmic-ray's baseline goes through the client too).

  python benchmarks/pytest_forkserver.py serve SOCKET
  python benchmarks/pytest_forkserver.py run SOCKET -- PYTEST_ARGS...
"""

import json
import os
import select
import signal
import socket
import sys
import time


def _kill(child: int) -> None:
    """Ends a fork and whatever it started (its own session, once it has one)."""
    try:
        os.killpg(child, signal.SIGKILL)
    except ProcessLookupError:  # not yet a session leader
        os.kill(child, signal.SIGKILL)


def _wait(child: int, connection: socket.socket):
    """The fork's exit status; None when the client went away first (cosmic-ray's
    timeout), which ends the fork."""
    while True:
        done, code = os.waitpid(child, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(code)
        readable, _, _ = select.select([connection], [], [], 0.2)
        if readable and not connection.recv(1):
            _kill(child)
            os.waitpid(child, 0)
            return None


def serve(path: str) -> None:
    import importlib
    import importlib.util

    import pytest

    # Imported once here, for every fork (TensorFlow's import is the cost saved).
    for name in ("numpy", "tensorflow", "keras", "tensorflow_datasets"):
        if importlib.util.find_spec(name):
            importlib.import_module(name)
    # A mutant and the original it replaces may share a size and a second:
    # no bytecode is cached, so no fork runs a stale copy of either.
    sys.dont_write_bytecode = True

    running = []  # the fork now testing, ended with the server

    def stop(*_):
        for child in running:
            _kill(child)
        os._exit(143)

    signal.signal(signal.SIGTERM, stop)
    server = socket.socket(socket.AF_UNIX)
    if os.path.exists(path):
        os.unlink(path)
    server.bind(path)
    server.listen(1)
    while True:
        connection, _ = server.accept()
        with connection:
            request = json.loads(connection.makefile().readline())
            child = os.fork()
            if child == 0:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                server.close()
                connection.close()
                os.setsid()
                os.chdir(request["cwd"])
                sys.path.insert(0, request["cwd"])
                try:
                    status = int(pytest.main(request["args"]))
                except BaseException:  # noqa: BLE001 (the fork must exit, whatever happened)
                    status = 99
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
            running[:] = [child]
            status = _wait(child, connection)
            running.clear()
            if status is not None:
                connection.sendall(f"{status}\n".encode())


def run(path: str, args: list) -> int:
    # Coverage-based selection, when the mutation tool measured a map
    # (benchmarks/mutation_selection.py); imported from beside this file.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import mutation_selection
    args = mutation_selection.select_from_environment(args)
    deadline = time.time() + 120
    while True:
        client = socket.socket(socket.AF_UNIX)
        try:
            client.connect(path)
            break
        except OSError:
            client.close()
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    with client:
        client.sendall((json.dumps({"cwd": os.getcwd(), "args": args}) + "\n").encode())
        answer = client.makefile().readline().strip()
    return int(answer) if answer else 98


if __name__ == "__main__":
    command, socket_path, *rest = sys.argv[1:]
    if command == "serve":
        serve(socket_path)
    else:
        sys.exit(run(socket_path, rest[1:] if rest[:1] == ["--"] else rest))
