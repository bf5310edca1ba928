"""One worker of tests/strategy_test.py's 2-process MultiWorkerMirroredStrategy
run: trains stage 1 of the smoke search under TF_CONFIG and writes the final
architecture logits, and whether it was the chief, to a JSON file.

  python tests/multi_worker_main.py OUTPUT_DIR EPOCHS RESULT_JSON
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import data  # noqa: E402
from stacnas_tf import search  # noqa: E402
from stacnas_tf import search_space  # noqa: E402
from stacnas_tf import strategy as strategy_lib  # noqa: E402

CONFIG = config_lib.PRESETS["smoke"].replace(batch_size=16, num_train_examples=64, channels=4)


def main(output_dir: str, epochs: int, result_path: str) -> None:
    strategy = strategy_lib.make_strategy("multi_worker")
    source = data.load(CONFIG.dataset, "train")
    space = search_space.stage1_space(CONFIG.space, CONFIG.stage1_cells, CONFIG.per_cell_logits)
    result = search.run_stage(1, space, CONFIG.stage1_cells, epochs, CONFIG, source, output_dir,
                              strategy, verbose=0)
    with open(result_path, "w") as f:
        json.dump({"chief": strategy_lib.is_chief(strategy),
                   "replicas": strategy.num_replicas_in_sync,
                   "logits": result.result["logits"]}, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
