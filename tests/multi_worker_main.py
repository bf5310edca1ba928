"""One worker of tests/strategy_test.py's 2-process MultiWorkerMirroredStrategy
run: trains stage 1 of the smoke search under TF_CONFIG and writes the final
architecture logits, whether it was the chief and the epochs it began, to a
JSON file. With STOP_AFTER it is interrupted once that epoch is checkpointed
(no logits then).
strategy_test starts it with the repository importable and TensorFlow's logs
off (helpers.program_env).

  python tests/multi_worker_main.py OUTPUT_DIR EPOCHS RESULT_JSON [STOP_AFTER]
"""

import json
import sys

from stacnas_tf import config as config_lib
from stacnas_tf import run_folder
from stacnas_tf import search_loop as search
from stacnas_tf import search_space
from stacnas_tf import sources
from stacnas_tf import strategy as strategy_lib

import helpers

CONFIG = config_lib.PRESETS["smoke"].replace(batch_size=16, num_train_examples=64, channels=4)


def main(output_dir: str, epochs: int, result_path: str, stop_after: int | None) -> None:
    strategy = strategy_lib.make_strategy("multi_worker")
    source = sources.load(CONFIG.dataset, "train")
    space = search_space.stage1_space(CONFIG.space, CONFIG.stage1_cells, CONFIG.per_cell_logits)
    recorder, began = helpers.epochs_begun()
    # Run after the epoch is saved: every worker stops there, as after a Ctrl-C.
    interrupt = () if stop_after is None else (helpers.interrupt_after_epoch(stop_after),)
    logits = None
    try:
        run = search.SearchRun(config=CONFIG, folder=run_folder.SearchFolder(output_dir),
                               strategy=strategy, source=source, verbose=0,
                               callbacks=(recorder, *interrupt))
        plan = search.StagePlan(1, space, CONFIG.stage1_cells, epochs)
        logits = search.run_stage(run, plan).result["logits"]
    except KeyboardInterrupt:
        pass
    with open(result_path, "w") as f:
        json.dump({"chief": strategy_lib.is_chief(strategy),
                   "replicas": strategy.num_replicas_in_sync, "logits": logits,
                   "began": began}, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else None)
