"""benchmarks/search_studies.py: the measures its studies report."""

import os

import pytest

from benchmarks import search_studies
from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib

import helpers

G = genotype_lib.PUBLISHED


def test_agreement_of_a_genotype_with_itself_is_complete():
    assert search_studies.agreement(G["DARTS_V2"], G["DARTS_V2"]) == {
        "edges": 1.0, "edges_and_ops": 1.0}


def test_agreement_of_darts_v1_and_v2_by_hand():
    # Normal cells: all 8 (node, input) edges shared, 5 with the same op;
    # reduction cells: 6 shared (nodes 3 and 5 differ in one input), all 6 same op.
    assert search_studies.agreement(G["DARTS_V1"], G["DARTS_V2"]) == {
        "edges": 14 / 16, "edges_and_ops": 11 / 16}


def test_mean_and_sample_standard_deviation():
    assert search_studies._mean_std([1, 2, 3]) == (2.0, 1.0)
    assert search_studies._mean_std([4]) == (4.0, 0.0)


def test_depth_table_lists_every_depth_and_the_final_network():
    results = {
        "rows": [{"cells": 3, "normal_max_weight_ratio": (1.0125, 0.0025), **{
            k: (1.0, 0.5) for k in ("normal_skip_connect", "normal_parameter_free",
                                    "reduce_skip_connect", "reduce_parameter_free")}}],
        "confusion": [{"setting": "stage1", "cells": 3, "confusion": 2.5, "zeta_mean": 0.25},
                      {"setting": "final", "cells": 6, "confusion": 1.25, "zeta_mean": 0.5}],
    }
    table = search_studies.depth_markdown(results)
    assert ("| 3 | 1.00 ± 0.50 | 1.00 ± 0.50 | 1.00 ± 0.50 | 1.00 ± 0.50 | 1.012 ± 0.003 | "
            "2.500 | 0.250 |") in table
    assert "final network (6 cells, default recipe): 1.250 (zeta 0.500)" in table


def test_seeds_table_summarises_each_kind_and_lists_each_run():
    results = {
        "summary": {
            "default_search": {"top1": (0.85, 0.01), "edge_agreement": (0.5, 0.25),
                               "edge_op_agreement": (0.25, 0.125)},
            "random": {"top1": (0.8, 0.02), "edge_agreement": None, "edge_op_agreement": None},
        },
        "runs": [
            {"kind": "default_search", "seed": 0, "top1": 0.84,
             "counts": {"normal_parameter_free": 6, "normal_skip_connect": 1,
                        "reduce_parameter_free": 2, "reduce_skip_connect": 0}},
            {"kind": "default_search", "seed": 1, "top1": 0.86,
             "counts": {"normal_parameter_free": 3, "normal_skip_connect": 0,
                        "reduce_parameter_free": 8, "reduce_skip_connect": 4}},
            {"kind": "random", "seed": 0, "top1": 0.8,
             "counts": {"normal_parameter_free": 1, "normal_skip_connect": 1,
                        "reduce_parameter_free": 1, "reduce_skip_connect": 1}},
        ],
    }
    table = search_studies.seeds_markdown(results)
    assert "| default_search | 2 | 0.8500 ± 0.0100 | 0.50 ± 0.25 | 0.25 ± 0.12 |" in table
    assert "| random | 1 | 0.8000 ± 0.0200 |  |  |" in table
    assert "| default_search | 1 | 3 / 0 | 8 / 4 | 0.8600 |" in table


def test_shards_split_the_runs_so_each_runs_exactly_once():
    for count in (1, 2, 3):
        owners = [[index for index in range(count)
                   if search_studies._mine(position, (index, count))] for position in range(10)]
        assert all(len(owner) == 1 for owner in owners)
    assert all(search_studies._mine(position, None) for position in range(10))


def test_shard_flag_is_checked():
    assert search_studies._parse_shard("1/2") == (1, 2)
    for bad in ("2/2", "x/2", "1", "-1/2"):
        with pytest.raises(search_studies.app.UsageError, match="--shard"):
            search_studies._parse_shard(bad)


def test_a_run_keeps_the_time_of_the_call_that_finished_it(tmp_path):
    folder = str(tmp_path / "seed_0")
    marker = os.path.join(folder, "done")

    def finish():
        os.makedirs(folder, exist_ok=True)
        open(marker, "w").close()
        return "result"

    result, seconds = search_studies._timed(folder, marker, finish)
    assert result == "result" and seconds is not None and seconds >= 0
    # A later (gathering) call reads the recorded time instead of its own.
    files.write_json(folder + ".seconds.json", {"seconds": 123.0})
    assert search_studies._timed(folder, marker, finish) == ("result", 123.0)
    # A run finished without the record has no time, rather than a gathering call's.
    os.remove(folder + ".seconds.json")
    assert search_studies._timed(folder, marker, finish) == ("result", None)



def test_bad_seeds_or_depths_are_refused_before_any_folder_is_made(tmp_path):
    import subprocess
    import sys

    script = os.path.join(helpers.REPO, "benchmarks", "search_studies.py")
    for flag, message in (("--depths=2", "--depths: --stage1_cells: a supernet of 2 cell(s)"),
                          ("--depths=x", "--depths: expected integers separated by commas"),
                          ("--seeds=-1", "--seeds: --seed: expected an integer")):
        result = subprocess.run(
            [sys.executable, script, "--study=depth", flag, f"--output_dir={tmp_path / 'out'}"],
            capture_output=True, text=True, env=helpers.program_env(), timeout=300)
        assert result.returncode != 0 and message in result.stderr
    assert not (tmp_path / "out").exists()
