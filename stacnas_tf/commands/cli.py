"""How every binary starts and fails: TensorFlow's environment, absl flags,
then the user's errors as one line.

absl prints a usage error after the whole module docstring; for a bad flag
value or file, the one line that names it is what the user needs, first and
alone. An interrupted run says how to go on instead of printing a traceback.
"""

import os
import sys

# Imported first by every binary, so these reach TensorFlow before it loads.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on only on some CPUs; on the others
# (AVX2-only ones, for instance) they make the search step ~1.9x and the
# final training ~1.4x faster (docs/performance_peers.md), and give grouped
# convolutions their gradient. TF_ENABLE_ONEDNN_OPTS=0 turns them off.

# One thread per kernel, the other threads running other kernels at once: a
# search's numbers then do not change with the number of threads
# (stacnas_tf/repeatable.py), and on CPU its step is faster (0.107 s against
# 0.137 s with every core on each kernel; the final network's alike;
# docs/analyses.md). TF_NUM_INTRAOP_THREADS=N gives a kernel N threads again.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import logging  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402


def _address_space_limited() -> bool:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return soft != resource.RLIM_INFINITY


# Under an address-space limit (ulimit -v, prlimit --as) the oneDNN kernels
# crash the process (abort or segfault) when an allocation fails; TensorFlow's
# own kernels report it as out-of-memory, which these programs turn into one line.
_ONEDNN_OFF_FOR_LIMIT = "TF_ENABLE_ONEDNN_OPTS" not in os.environ and _address_space_limited()
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0" if _ONEDNN_OFF_FOR_LIMIT else "1")

_INTERRUPTED = ("interrupted; rerun the same command to go on (a search or a training resumes "
                "after its last completed epoch).")
# The terminal's stderr, also while the import below captures file descriptor 2.
_STDERR = os.dup(2)


def _stop_at_once(signum, frame):
    # Ctrl-C while Python and TensorFlow load: nothing has started, nothing to say.
    os.write(_STDERR, f"{os.path.basename(sys.argv[0])}: {_INTERRUPTED}\n".encode())
    os._exit(130)  # an import may be half done: no cleanup to run


signal.signal(signal.SIGINT, _stop_at_once)

# Keras would load another backend named here (or in ~/.keras/keras.json) and fail
# with a traceback; these programs run on TensorFlow alone.
_BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
if _BACKEND != "tensorflow":
    os.write(_STDERR, (f"{os.path.basename(sys.argv[0])}: error: KERAS_BACKEND={_BACKEND}: "
                       "stacnas_tf runs on TensorFlow; unset it or set "
                       "KERAS_BACKEND=tensorflow.\n").encode())
    sys.exit(2)
os.environ["KERAS_BACKEND"] = "tensorflow"  # over keras.json's backend, for these programs

# What TensorFlow's C++ runtime writes to stderr while it loads, before its log
# settings apply: a notice about the oneDNN kernels this module turned on
# itself, twice. A user's error must be the first thing they read.
_LOAD_NOTICES = ("oneDNN custom operations are on",
                 "All log messages before absl::InitializeLog() is called")


def _import_tensorflow_quietly() -> None:
    """Imports TensorFlow with file descriptor 2 captured, and writes back
    every captured line but the load notices."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401, PLC0415
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not any(notice in line for notice in _LOAD_NOTICES):
                    sys.stderr.write(line)


_HELP_TOKENS = ("--help", "-help", "-h", "--helpshort", "-?", "--helpfull", "-helpfull")


def _asks_for_help(argv) -> bool:
    for token in argv[1:]:
        if token == "--":
            return False
        if token in _HELP_TOKENS:
            return True
    return False


_SUPERVISED = "STACNAS_TF_SUPERVISED"
_CRASHES = (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS)


def _run_supervised() -> None:
    """Runs this program again as a child and exits with its status. Under an
    address-space limit an allocation that fails outside TensorFlow's allocator
    (std::bad_alloc in C++, a oneDNN kernel) kills the process; the parent turns
    that crash into the out-of-memory line. The child has its own process group:
    the terminal's Ctrl-C reaches the parent, which passes it on once."""
    import subprocess  # noqa: PLC0415

    program = os.path.basename(sys.argv[0])
    env = {**os.environ, _SUPERVISED: "1"}
    if _ONEDNN_OFF_FOR_LIMIT:
        del env["TF_ENABLE_ONEDNN_OPTS"]  # the child decides (and says) it again
    child = subprocess.Popen([sys.executable, *sys.argv], env=env, process_group=0)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda received, frame: child.send_signal(received))
    status = child.wait()
    if -status in _CRASHES or status - 128 in _CRASHES:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        os.write(_STDERR, (
            f"{program}: error: out of memory: the program crashed when an allocation failed "
            f"under the address-space limit (ulimit -v: {soft / 2**30:.1f} GiB); raise the limit, "
            "or use a smaller --batch_size, --channels or --image_size.\n").encode())
        os._exit(1)
    os._exit(status if status >= 0 else 128 - status)


# Help needs the flags, not TensorFlow (seconds to load): the programs' modules
# define their flags without it, and `run` loads it after the flags are parsed.
if not _asks_for_help(sys.argv):
    if _address_space_limited() and os.environ.get(_SUPERVISED) != "1":
        _run_supervised()
    _import_tensorflow_quietly()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402


def _quiet_tensorflow_info(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or f"{os.sep}tensorflow{os.sep}" not in record.pathname


def print_help(program: str, main, full: bool = False) -> None:
    """The program's description and its own flags (with --helpfull also absl's
    logging flags), on stdout. absl's own --help lists only the flags defined in
    the file that was run (none: they live in the command modules) and exits 1;
    --helpfull would list the flags of every module imported, absl.testing's too."""
    module = sys.modules.get(main.__module__)
    description = (module.__doc__ or "").strip() if module else ""
    lines = [f"usage: {program} [--FLAG=VALUE ...]", ""]
    if description:
        lines += [description, ""]
    by_module = flags.FLAGS.flags_by_module_dict()
    own = sorted(name for name in by_module if name.startswith("stacnas_tf"))
    # The command's own module first, then the shared flag modules.
    own.sort(key=lambda name: name != main.__module__)
    wanted = own + (sorted(name for name in by_module if name.startswith("absl.logging")
                           or name == "absl.flags") if full else [])
    for name in wanted:
        text = flags.FLAGS.module_help(name)
        lines += [text, ""]
    if not full:
        lines.append("--helpfull adds absl's logging flags.")
    print("\n".join(lines))


def _full_disk(error) -> str | None:
    """The one line for an error that is a full disk (or quota), naming the file
    where the error says it; None for any other error. TensorFlow reports a
    failed checkpoint write as ResourceExhaustedError, as it does running out
    of memory, so the message tells them apart."""
    import errno  # noqa: PLC0415

    text = str(error)
    too_large = ((isinstance(error, OSError) and error.errno == errno.EFBIG)
                 or "File too large" in text)
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        where = error.filename or ""
    elif "No space left on device" in text or "Disk quota exceeded" in text or too_large:
        import re  # noqa: PLC0415

        # TensorFlow's messages also hold device names (/job:localhost/...): the
        # file is the longest path in them.
        paths = [path for path in re.findall(r"(/[^\s:;,'\"{}\[\]]+)", text)
                 if not path.startswith("/job")]
        where = max(paths, key=len) if paths else ""
    else:
        return None
    if too_large:
        return (f"a file-size limit (ulimit -f) stopped writing{f' {where}' if where else ''}: "
                "raise it and rerun the same command; what was written before is kept.")
    return (f"the disk is full{f' writing {where}' if where else ''}: free space (or choose "
            "an --output_dir on another disk) and rerun the same command; what was written "
            "before is kept.")


def run(main) -> None:
    """`app.run(main)`, with bad flags, ValueError / OSError and usage errors
    printed as `PROGRAM: error: MESSAGE` (exit status 2), running out of memory
    as one line (status 1), a full disk as one line naming the file (status 1)
    and Ctrl-C as one line (status 130)."""
    program = os.path.basename(sys.argv[0])
    interrupted = []

    def fail(message, status=2):
        sys.stderr.write(f"{program}: error: {message}\n")
        sys.exit(status)

    def parse_flags(argv):
        if _asks_for_help(argv):
            full = any(token.lstrip("-") == "helpfull" for token in argv[1:])
            print_help(program, main, full=full)
            sys.exit(0)
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            fail(e)

    def on_interrupt(signum, frame):
        # Remembered as well as raised: a KeyboardInterrupt raised inside a
        # finalizer or a TensorFlow callback thread is swallowed there, or turned
        # into another error, and the run must still end as interrupted.
        interrupted.append(signum)
        raise KeyboardInterrupt

    def unraisable(hook_args):
        if issubclass(hook_args.exc_type, KeyboardInterrupt):
            interrupted.append(signal.SIGINT)  # raised in a finalizer: not worth a traceback
        else:
            sys.__unraisablehook__(hook_args)

    def stop_interrupted():
        sys.stdout.write("\n")  # ends a progress bar's line
        sys.stdout.flush()
        sys.stderr.write(f"{program}: {_INTERRUPTED}\n")
        sys.exit(130)

    def guarded(argv):
        signal.signal(signal.SIGINT, on_interrupt)
        sys.unraisablehook = unraisable
        # TensorFlow's own INFO lines (checkpoint sharding, ...) are not for users;
        # this program's own INFO lines (resuming, ...) are.
        logging.getLogger("absl").addFilter(_quiet_tensorflow_info)
        import tensorflow as tf  # noqa: PLC0415 (loaded quietly at import; not for --help)

        try:
            from stacnas_tf import precision  # noqa: PLC0415 (after the flags, as main)

            precision.check_keras_environment()
            if _ONEDNN_OFF_FOR_LIMIT:
                logging.getLogger("absl").warning(
                    "an address-space limit (ulimit -v) is set: TensorFlow's oneDNN kernels, which "
                    "crash rather than report running out of memory under one, are off (slower "
                    "convolutions; TF_ENABLE_ONEDNN_OPTS=1 keeps them).")
            result = main(argv)
        except KeyboardInterrupt:
            stop_interrupted()
        except (app.UsageError, ValueError, OSError, tf.errors.ResourceExhaustedError,
                tf.errors.PermissionDeniedError, tf.errors.OutOfRangeError) as e:
            if interrupted:
                stop_interrupted()
            full_disk = _full_disk(e)
            if full_disk:
                fail(full_disk, status=1)
            if isinstance(e, tf.errors.ResourceExhaustedError):
                sizes = [f"--{name}" for name in ("batch_size", "channels", "image_size")
                         if name in flags.FLAGS]
                named = " or ".join([", ".join(sizes[:-1]), sizes[-1]] if len(sizes) > 1 else sizes)
                advice = f": use a smaller {named}" if sizes else ""
                if _address_space_limited():
                    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
                    advice += f" (or raise the address-space limit, ulimit -v: {soft / 2**30:.1f} GiB)"
                lines = str(e).strip().splitlines() or [type(e).__name__]
                detail = next((line.strip() for line in lines if "OOM" in line), lines[0].strip())
                fail(f"out of memory{advice} ({detail[:200]}).", status=1)
            if isinstance(e, tf.errors.PermissionDeniedError):
                fail(str(e).splitlines()[0][:300])
            fail(e)
        except BaseException:
            if interrupted:  # a KeyboardInterrupt that TensorFlow turned into another error
                stop_interrupted()
            raise
        if interrupted:
            stop_interrupted()
        return result

    app.run(guarded, flags_parser=parse_flags)
