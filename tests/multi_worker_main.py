"""One worker of tests/strategy_test.py's 2-process MultiWorkerMirroredStrategy
run: trains stage 1 of the smoke search under TF_CONFIG and writes the final
architecture logits, and whether it was the chief, to a JSON file. With
STOP_AFTER it is interrupted once that epoch is checkpointed (no logits then).

  python tests/multi_worker_main.py OUTPUT_DIR EPOCHS RESULT_JSON [STOP_AFTER]
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import data  # noqa: E402
from stacnas_tf import search_loop as search  # noqa: E402
from stacnas_tf import search_space  # noqa: E402
from stacnas_tf import strategy as strategy_lib  # noqa: E402
from stacnas_tf import resumable  # noqa: E402

CONFIG = config_lib.PRESETS["smoke"].replace(batch_size=16, num_train_examples=64, channels=4)


def main(output_dir: str, epochs: int, result_path: str, stop_after: int | None) -> None:
    strategy = strategy_lib.make_strategy("multi_worker")
    source = data.load(CONFIG.dataset, "train")
    space = search_space.stage1_space(CONFIG.space, CONFIG.stage1_cells, CONFIG.per_cell_logits)
    if stop_after is not None:
        on_epoch_end = resumable._EpochEnd.on_epoch_end

        def interrupt(self, epoch, logs=None):
            on_epoch_end(self, epoch, logs)
            if epoch + 1 == stop_after:
                raise KeyboardInterrupt("simulated interruption")

        resumable._EpochEnd.on_epoch_end = interrupt
    logits = None
    try:
        logits = search.run_stage(1, space, CONFIG.stage1_cells, epochs, CONFIG, source,
                                  output_dir, strategy, verbose=0).result["logits"]
    except KeyboardInterrupt:
        pass
    with open(result_path, "w") as f:
        json.dump({"chief": strategy_lib.is_chief(strategy),
                   "replicas": strategy.num_replicas_in_sync, "logits": logits}, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else None)
