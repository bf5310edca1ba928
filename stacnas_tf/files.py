"""Atomic file writes and output-folder checks.

Everything the library writes goes to a temporary file in the destination
folder first and is renamed into place, so an interrupted run never leaves a
half-written genotype, history or config under its final name.
"""

from __future__ import annotations

import json
import os
import tempfile


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def umask() -> int:
    """The process's file-mode creation mask (read without changing it where Linux allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp_dir(parent: str, prefix: str) -> str:
    """A new folder in `parent` with the permissions the user's umask gives any
    folder (tempfile's are private to their owner)."""
    path = tempfile.mkdtemp(dir=parent, prefix=prefix)
    os.chmod(path, 0o777 & ~umask())
    return path


def write_bytes(path: str, content: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        # mkstemp makes the file private to its owner; the file takes the
        # permissions any file the user writes would have.
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str, value) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def write_figure(path: str, figure, file_format: str) -> None:
    """Saves a matplotlib figure atomically (png or svg)."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format=file_format, dpi=100)
    write_bytes(path, buffer.getvalue())


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def check_same_config(output_dir: str, what: str, saved: dict, wanted: dict) -> None:
    """Refuses to continue `what` in `output_dir` with settings other than its saved ones."""
    differences = [f"{key}={saved.get(key)!r} there, {wanted.get(key)!r} now"
                   for key in sorted(set(saved) | set(wanted)) if saved.get(key) != wanted.get(key)]
    if differences:
        raise ValueError(
            f"--output_dir={output_dir} holds {what} with other settings ({'; '.join(differences)}). "
            "Rerun with the same flags to resume it, or choose another --output_dir."
        )


def user_path(path: str | None) -> str | None:
    """A path as the user meant it: relative to where `bazel run` was started."""
    if path and not os.path.isabs(path) and os.environ.get("BUILD_WORKING_DIRECTORY"):
        return os.path.join(os.environ["BUILD_WORKING_DIRECTORY"], os.path.expanduser(path))
    return os.path.expanduser(path) if path else path


def user_file_or_value(value: str) -> str:
    """`value` as an absolute path when it names an existing file (relative to where
    the user ran the command), else unchanged (a name or an inline value)."""
    candidate = user_path(value)
    return os.path.abspath(candidate) if candidate and os.path.isfile(candidate) else value


def check_input_folders(folders: dict) -> None:
    """Refuses input folder flags ({"--data_dir": path, ...}) that name no folder."""
    for flag, path in folders.items():
        if path and not os.path.isdir(path):
            raise ValueError(f"{flag}: folder {path} does not exist.")


def prepare_output_dir(path: str, flag: str = "--output_dir") -> str:
    """Creates `path` if needed and checks that files can be written in it."""
    if not path:
        raise ValueError(f"{flag}: expected a folder path, got an empty value.")
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag}: {path} exists and is not a folder.")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ValueError(f"{flag}: cannot write in {path} ({e.strerror or e}).") from e
    return path
