"""Atomic file writes and output-folder checks.

Everything the library writes goes to a temporary file in the destination
folder first and is renamed into place, so an interrupted run never leaves a
half-written genotype, history or config under its final name.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import socket
import sys
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


def replace_folder(staging: str, final: str) -> None:
    """Moves the finished folder `staging` to `final`, replacing an earlier
    `final` only once the new one is complete (both in the same parent)."""
    if os.path.exists(final):
        earlier = tempfile.mkdtemp(dir=os.path.dirname(final),
                                   prefix=f".{os.path.basename(final)}.old-")
        os.rmdir(earlier)
        os.rename(final, earlier)
        os.rename(staging, final)
        shutil.rmtree(earlier)
    else:
        os.rename(staging, final)


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
    """The JSON value in `path`; a damaged file is a ValueError naming it."""
    with open(path) as f:
        try:
            return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON ({e})") from e


def check_same_config(output_dir: str, what: str, saved: dict, wanted: dict) -> None:
    """Refuses to continue `what` in `output_dir` with settings other than its saved ones.

    `class_names` is recorded from the data, not chosen: it is compared only
    when both sides know it."""
    differences = [f"{key}={saved.get(key)!r} there, {wanted.get(key)!r} now"
                   for key in sorted(set(saved) | set(wanted)) if saved.get(key) != wanted.get(key)
                   and not (key == "class_names" and None in (saved.get(key), wanted.get(key)))]
    if differences:
        raise ValueError(
            f"--output_dir={output_dir} holds {what} with other settings ({'; '.join(differences)}). "
            "Rerun with the same settings to resume it, or choose another --output_dir."
        )


def check_only_holds(output_dir: str, pattern: str, what: str, flag: str = "--output_dir") -> None:
    """Refuses an existing `output_dir` holding a file whose name does not match
    `pattern` (a regular expression for the names a program writes): a program
    that rewrites its own outputs never writes into a run or the user's files."""
    if not os.path.isdir(output_dir):
        return
    foreign = sorted(name for name in os.listdir(output_dir)
                     if name != LOCK_NAME and not name.startswith((".tmp-", ".staging-"))
                     and not re.fullmatch(pattern, name))
    if foreign:
        listed = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ValueError(f"{flag}: {output_dir} holds other files ({listed}); choose a new or "
                         f"empty folder, or one that holds only {what}.")


@contextlib.contextmanager
def staged_files(output_dir: str):
    """Yields a hidden folder inside `output_dir` to write a set of files into;
    when the block ends they are renamed into `output_dir` (renames need no
    space), and when it fails none is: a full disk never leaves half a set."""
    staging = make_temp_dir(output_dir, ".staging-")
    try:
        yield staging
        for name in sorted(os.listdir(staging)):
            os.replace(os.path.join(staging, name), os.path.join(output_dir, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
        if path and os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"{flag}: {path} is a file; expected a folder.")
        if path and not os.path.isdir(path):
            raise ValueError(f"{flag}: folder {path} does not exist.")


def require_path(path: str | None, flag: str = "--output_dir") -> str:
    """`path`, refused when empty: an empty flag would otherwise mean the
    current folder (or, in the API, a new temporary one)."""
    if not path or not str(path).strip():
        raise ValueError(f"{flag}: expected a folder path, got an empty value.")
    return path


def require_file(path: str, flag: str, expected: str) -> str:
    """`path` if it is a regular file (or a link to one). A folder, a missing
    path and a FIFO, socket or device are refused by name: opening a FIFO would
    wait for a writer forever."""
    if os.path.isdir(path):
        raise ValueError(f"{flag}: {path} is a folder; expected {expected}.")
    if not os.path.exists(path):
        raise ValueError(f"{flag}: file {path} does not exist.")
    if not os.path.isfile(path):
        raise ValueError(f"{flag}: {path} is not a regular file (a FIFO, socket or device); "
                         f"expected {expected}.")
    return path


def prepare_output_dir(path: str, flag: str = "--output_dir") -> str:
    """Creates `path` if needed and checks that files can be written in it."""
    path = os.path.abspath(require_path(path, flag))
    if os.path.islink(path) and not os.path.exists(path):
        raise ValueError(f"{flag}: {path} is a link to {os.readlink(path)}, which does not exist; "
                         "create that folder or choose another.")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag}: {path} exists and is not a folder.")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ValueError(f"{flag}: cannot write in {path} ({e.strerror or e}).") from e
    return path


@contextlib.contextmanager
def removed_if_left_empty(path: str):
    """Removes folder `path` when the block fails and leaves it empty, if the
    block created it: a failed start leaves nothing behind."""
    existed = os.path.exists(path)
    try:
        yield
    except BaseException:
        if not existed:
            with contextlib.suppress(OSError):
                os.rmdir(path)  # only an empty folder is removed
        raise


LOCK_NAME = ".stacnas.lock"


@contextlib.contextmanager
def output_lock(output_dir: str, flag: str = "--output_dir"):
    """Holds `output_dir` for this process: a second run on the folder (from this
    or another host sharing it) is refused with the holder's host, pid and
    command. A lock left by a process of this host that no longer runs is taken
    over; one from another host must be deleted by hand once that run is gone."""
    path = os.path.join(output_dir, LOCK_NAME)
    holder = {"host": socket.gethostname(), "pid": os.getpid(),
              "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(sys.argv)[:500]}
    _acquire(path, holder, flag)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if _read_holder(path) == holder:
                os.unlink(path)


def _acquire(path: str, holder: dict, flag: str) -> None:
    for _ in range(3):  # a stale lock is replaced, then taken like a free one
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            current = _read_holder(path)
            if current is not None and not _is_stale(current):
                raise ValueError(
                    f"{flag}={os.path.dirname(path)} is in use by another run (host "
                    f"{current.get('host')}, pid {current.get('pid')}, started "
                    f"{current.get('started')}: {current.get('command')}). Wait for it to end, or "
                    f"delete {path} if that run is gone.") from None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # stale (its process is gone) or unreadable
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(holder, f)
        return
    raise ValueError(f"{flag}: could not lock {os.path.dirname(path)} ({path} keeps reappearing).")


def _read_holder(path: str):
    try:
        with open(path) as f:
            value = json.load(f)
        return value if isinstance(value, dict) else None
    except (OSError, ValueError):
        return None


def _is_stale(holder: dict) -> bool:
    """Whether the holder is a process of this host that no longer runs."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False
