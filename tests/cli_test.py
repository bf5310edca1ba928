"""How every binary starts and fails: tools/cli.run, driven with small mains."""

import subprocess
import sys
import textwrap

import helpers


def _run_program(tmp_path, body, *args):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""\
        import os, signal, sys, time
        from absl import flags
        from stacnas_tf.commands import cli
        _COUNT = flags.DEFINE_integer("count", 1, "A number.")
        """) + textwrap.dedent(body) + "\ncli.run(main)\n")
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          env=helpers.program_env(), timeout=120)


def test_a_bad_flag_value_is_one_line_with_status_2(tmp_path):
    result = _run_program(tmp_path, "def main(argv):\n    print('ran')\n", "--count=abc")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "prog.py: error: flag --count=abc: invalid literal for int() with base 10: 'abc'"]
    assert "ran" not in result.stdout


def test_an_unknown_flag_is_one_line_with_status_2(tmp_path):
    result = _run_program(tmp_path, "def main(argv):\n    print('ran')\n", "--cuont=3")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prog.py: error:") and "cuont" in lines[0]


def test_a_value_error_is_one_line_with_status_2(tmp_path):
    result = _run_program(tmp_path, """\
        def main(argv):
            raise ValueError("--count: expected a positive number, got -1.")
        """)
    assert result.returncode == 2
    assert result.stderr.strip() == "prog.py: error: --count: expected a positive number, got -1."


def test_ctrl_c_ends_the_progress_line_and_exits_130(tmp_path):
    result = _run_program(tmp_path, """\
        def main(argv):
            sys.stdout.write("1/8 [==>....]")
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        """)
    assert result.returncode == 130
    assert result.stdout == "1/8 [==>....]\n"
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "prog.py: interrupted; rerun the same command to go on (a search or a training resumes "
        "after its last completed epoch)."]


def test_ctrl_c_while_tensorflow_loads_is_one_line(tmp_path):
    # SIGINT arrives during the import of cli (and TensorFlow): sent from a
    # thread of the importing process once the module's handler is in place.
    code = ("import os, signal, threading, time\n"
            "def later():\n    time.sleep(0.5); os.kill(os.getpid(), signal.SIGINT)\n"
            "threading.Thread(target=later, daemon=True).start()\n"
            "from stacnas_tf.commands import cli\ntime.sleep(30)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=helpers.program_env(), timeout=120)
    assert result.returncode == 130, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(": interrupted; rerun the same "
                                                           "command to go on (a search or a "
                                                           "training resumes after its last "
                                                           "completed epoch).")


def test_an_interrupt_turned_into_another_error_still_ends_as_interrupted(tmp_path):
    result = _run_program(tmp_path, """\
        def main(argv):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except KeyboardInterrupt as e:
                raise RuntimeError("tracing failed") from e
        """)
    assert result.returncode == 130 and "Traceback" not in result.stderr


def test_os_errors_are_one_line_naming_the_file(tmp_path):
    result = _run_program(tmp_path, """\
        def main(argv):
            open(os.path.dirname(__file__))
        """)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Is a directory" in lines[0] and str(tmp_path) in lines[0]


def test_a_swallowed_ctrl_c_still_ends_the_run_as_interrupted(tmp_path):
    # A KeyboardInterrupt raised where something swallows it (a finalizer, a
    # callback thread, a broad handler) must not let the run exit 0.
    result = _run_program(tmp_path, """\
        def main(argv):
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except BaseException:
                pass
            print("finished")
        """)
    assert result.returncode == 130, result.stderr
    assert "interrupted" in result.stderr


def test_a_full_disk_is_told_apart_from_running_out_of_memory(tmp_path):
    # TensorFlow reports a checkpoint written to a full disk as ResourceExhaustedError,
    # the error of an exhausted memory too.
    full = _run_program(tmp_path, """\
        import tensorflow as tf
        def main(argv):
            raise tf.errors.ResourceExhaustedError(
                None, None, "/runs/s/stage1/checkpoints/ckpt-3.data-00000-of-00001.tempstate1; "
                "No space left on device")
        """)
    assert full.returncode == 1
    assert full.stderr.strip().splitlines()[-1] == (
        "prog.py: error: the disk is full writing "
        "/runs/s/stage1/checkpoints/ckpt-3.data-00000-of-00001.tempstate1: free space (or choose "
        "an --output_dir on another disk) and rerun the same command; what was written before "
        "is kept.")
    # TensorFlow's messages name devices as paths too (/job:localhost/...).
    device = _run_program(tmp_path, """\
        import tensorflow as tf
        def main(argv):
            raise tf.errors.ResourceExhaustedError(None, None, "{{function_node __wrapped__SaveV2_"
                "device_/job:localhost/replica:0/task:0/device:CPU:0}} /runs/t/checkpoints/"
                "ckpt-2_temp/part-00000-of-00001.data-00000-of-00001.tempstate7; No space left on "
                "device [Op:SaveV2]")
        """)
    assert device.returncode == 1 and device.stderr.strip().splitlines()[-1].startswith(
        "prog.py: error: the disk is full writing /runs/t/checkpoints/ckpt-2_temp/part-00000-of-")
    # A file-size limit (ulimit -f, EFBIG): TensorFlow says OutOfRangeError.
    too_large = _run_program(tmp_path, """\
        import tensorflow as tf
        def main(argv):
            raise tf.errors.OutOfRangeError(None, None, "/runs/s/stage1/checkpoints/ckpt-1_temp/"
                "part-00000-of-00001.data-00000-of-00001.tempstate3; File too large [Op:SaveV2]")
        """)
    assert too_large.returncode == 1 and too_large.stderr.strip().splitlines()[-1] == (
        "prog.py: error: a file-size limit (ulimit -f) stopped writing /runs/s/stage1/checkpoints/"
        "ckpt-1_temp/part-00000-of-00001.data-00000-of-00001.tempstate3: raise it and rerun the "
        "same command; what was written before is kept.")
    os_error = _run_program(tmp_path, """\
        import errno
        def main(argv):
            raise OSError(errno.ENOSPC, "No space left on device", "/runs/t/history.json")
        """)
    assert os_error.returncode == 1
    assert "the disk is full writing /runs/t/history.json" in os_error.stderr
    memory = _run_program(tmp_path, """\
        import tensorflow as tf
        def main(argv):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        """)
    # This program has no size flags to advise on.
    assert memory.returncode == 1
    assert memory.stderr.strip().splitlines()[-1] == (
        "prog.py: error: out of memory (OOM when allocating tensor).")


def test_out_of_memory_advice_names_only_the_programs_own_size_flags(tmp_path):
    body = """\
        import tensorflow as tf
        _BATCH = flags.DEFINE_integer("batch_size", 8, "Batch.")
        def main(argv):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        """
    result = _run_program(tmp_path, body)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "prog.py: error: out of memory: use a smaller --batch_size (OOM when allocating tensor).")


def test_programs_run_each_kernel_on_one_thread_unless_told_otherwise(tmp_path):
    # One thread per kernel keeps a search's numbers the same for any thread
    # count (stacnas_tf/repeatable.py); a value the user set is kept.
    script = tmp_path / "threads.py"
    script.write_text(textwrap.dedent("""\
        import os
        from stacnas_tf.commands import cli
        from stacnas_tf import repeatable
        print(os.environ["TF_NUM_INTRAOP_THREADS"], repeatable.threads_per_kernel(),
              repeatable.thread_count_changes_results())
        """))
    for given, expected in ((None, "1 1 False"), ("2", "2 2 True")):
        env = helpers.program_env()
        env.pop("TF_NUM_INTRAOP_THREADS", None)
        if given:
            env["TF_NUM_INTRAOP_THREADS"] = given
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                env=env, timeout=120)
        assert result.stdout.strip() == expected, result.stderr[-2000:]
