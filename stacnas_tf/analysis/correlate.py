"""Runs the operator-correlation analysis end to end: a flat search (every op on
every edge), the correlations of its ops' outputs, and the groups they imply.

Output folder (besides the flat search's own files when it trains one):
  correlation.json   ops, mean matrix over edges, first edge of the last cell,
                     every edge's matrix, the groups and the threshold
  correlation.png    heatmap of the mean matrix
  groups.json        {"groups": [...]}: what `tools/search.py --groups` reads
"""

from __future__ import annotations

import os

from stacnas_tf import config as config_lib
from stacnas_tf import files
from stacnas_tf import pipelines
from stacnas_tf import run_folder
from stacnas_tf import search_loop as search
from stacnas_tf import search_space
from stacnas_tf import sources
from stacnas_tf.analysis import correlation


def flat_config(config: config_lib.SearchConfig, ops) -> config_lib.SearchConfig:
    """`config` as a flat search over `ops` (each its own group)."""
    search_space.check_ops(ops, "--ops")
    ops = [op for op in ops if op != search_space.NONE]
    if len(ops) < 2 or len(set(ops)) != len(ops):
        raise ValueError(f"--ops: expected at least 2 distinct ops besides none (their outputs "
                         f"are correlated), got {list(ops)}.")
    return config.replace(grouping="flat", groups=tuple((op,) for op in ops))


def run(config: config_lib.SearchConfig, output_dir: str, num_images: int, *,
        min_correlation: float = 0.2, search_dir: str | None = None, data_dir: str | None = None,
        manual_dir: str | None = None, batch_size: int = 64, verbose="auto") -> dict:
    """Trains (or reads from `search_dir`) a flat supernet and writes its op correlations.

    Without `search_dir` the flat search of `config` runs (or resumes) in
    `output_dir` itself. Returns what correlation.json holds.
    """
    if num_images < 1:
        raise ValueError(f"--num_images: expected a positive count, got {num_images}.")
    if not -1 <= min_correlation <= 1:
        raise ValueError(f"--min_correlation: expected a value in [-1, 1], got {min_correlation}.")
    search_folder = None if search_dir is None else run_folder.SearchFolder(search_dir,
                                                                            "--search_dir")
    if search_folder is not None:
        search_folder.read_config()  # a search folder, before anything is written
    output_dir = files.prepare_output_dir(output_dir)
    if search_dir is None:
        if config.grouping != "flat":
            raise ValueError("correlation needs a flat search (every op on every edge).")
        search.run_search(config, output_dir, data_dir=data_dir, manual_dir=manual_dir,
                          verbose=verbose, report=False)
        search_folder = run_folder.SearchFolder(output_dir, "--search_dir")
    else:
        config = search_folder.read_config()
        if config.grouping != "flat":
            raise ValueError(f"--search_dir: {search_dir} is a {config.grouping} search; correlations "
                             "need every op on every edge (a --grouping=flat search).")
    source = sources.load(config.dataset, "train", data_dir=data_dir, manual_dir=manual_dir,
                          image_size=config.image_size)
    image_shape = sources.model_input_shape(source, config.image_size)
    model = search.load_stage_network(search_folder, 1, source.num_classes, image_shape)
    batches = pipelines.eval_pipeline(source, batch_size, config.image_size)
    progress = None
    if verbose:
        import keras

        bar = keras.utils.Progbar(num_images, unit_name="image")
        progress = bar.update
    measured = correlation.measure(model, batches, num_images, progress=progress)
    groups = correlation.cluster(measured["ops"], measured["mean"], min_correlation,
                                 add_skip=search_space.SKIP in config.space.full_candidates()[0])
    measured.update({"groups": [list(g) for g in groups], "min_correlation": min_correlation,
                     "search_dir": os.path.abspath(search_folder.path), "dataset": config.dataset})
    files.write_json(os.path.join(output_dir, "correlation.json"), measured)
    correlation.heatmap_png(os.path.join(output_dir, "correlation.png"), measured["ops"],
                            measured["mean"], f"op correlation, mean over {len(measured['edges'])} edges")
    files.write_json(os.path.join(output_dir, "groups.json"),
                     {"groups": [list(g) for g in groups], "min_correlation": min_correlation})
    return measured
