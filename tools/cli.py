"""How every binary starts and fails: absl flags, then the user's errors as one line.

absl prints a usage error after the whole module docstring; for a bad flag
value or file, the one line that names it is what the user needs, first and
alone. An interrupted run says how to go on instead of printing a traceback.
"""

import os
import sys

from absl import app


def run(main) -> None:
    """`app.run(main)`, with ValueError / FileNotFoundError / usage errors printed as
    `PROGRAM: error: MESSAGE` (exit status 2) and Ctrl-C as one line (status 130)."""
    program = os.path.basename(sys.argv[0])

    def guarded(argv):
        try:
            return main(argv)
        except (app.UsageError, ValueError, FileNotFoundError) as e:
            sys.stderr.write(f"{program}: error: {e}\n")
            sys.exit(2)
        except KeyboardInterrupt:
            sys.stderr.write(f"{program}: interrupted; the last completed epoch is checkpointed: "
                             "rerun the same command to resume.\n")
            sys.exit(130)

    app.run(guarded)
