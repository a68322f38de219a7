"""The evaluation tool and the metrics command."""

import csv
import json

import numpy as np
import pytest

from pmgi_gui.cli import main as pmgi
from pmgi_gui.core import imageio
from pmgi_gui.core.errors import PmgiError
from pmgi_gui.core.evaluation import evaluate, find_pairs, format_table, write_report
from tests.conftest import shared_path
from tests.helpers import random_checkpoint, scene


@pytest.fixture
def folder(tmp_path):
    for i in range(2):
        d = tmp_path / "pairs" / f"p{i}"
        d.mkdir(parents=True)
        imageio.write_image(d / "ir.png", scene(48, 64, 10 + i))
        imageio.write_image(d / "vis.png", scene(48, 64, 20 + i))
    (tmp_path / "pairs" / "stray").mkdir()  # a folder without a pair is ignored
    return tmp_path / "pairs"


def test_find_pairs_by_role_stems(folder):
    pairs = find_pairs("ir-vis", folder)
    assert [p.name for p in pairs] == ["p0", "p1"]
    assert pairs[0].a.name == "ir.png" and pairs[0].b.name == "vis.png"
    with pytest.raises(PmgiError, match="no Multi-focus pairs in .*near.\\* and far.\\*"):
        find_pairs("multi-focus", folder)


def test_the_checkpoints_of_an_evaluation_share_one_level_cache(tmp_path):
    from pmgi_gui.core.evaluation import _methods

    ckpts = [str(random_checkpoint(tmp_path / f"ck{i}", normalisation="reference", seed=i).path)
             for i in range(2)]
    cols = _methods("ir-vis", ["pmgi", "average"], ckpts, "cpu")
    fusers = [m.fuser for m in cols if m.fuser is not None]
    assert len(fusers) == 2 and fusers[0] is not fusers[1]
    assert fusers[0].workspace is fusers[1].workspace  # one cache held, not one per checkpoint


def test_evaluate_rows_means_and_report_files(folder, tmp_path):
    ckpt = random_checkpoint(tmp_path / "ck", task="ir-vis")
    report = evaluate("ir-vis", folder, methods=["pmgi", "average"], checkpoints=[str(ckpt.path)],
                      device="cpu")
    assert [(r["pair"], r["method"]) for r in report.rows] == [
        ("p0", "PMGI"), ("p0", "Average"), ("p1", "PMGI"), ("p1", "Average")]
    assert report.metric_keys == ["EN", "SCD", "CC", "FMI_pixel", "SD", "MI"]
    means = {m["method"]: m for m in report.means()}
    for key in report.metric_keys:
        vals = [r[key] for r in report.rows if r["method"] == "Average"]
        assert means["Average"][key] == pytest.approx(np.mean(vals))
    csv_path, json_path = write_report(report, tmp_path / "report")
    doc = json.loads(json_path.read_text())
    assert doc["meta"]["software"].startswith("pmgi-gui ")
    assert doc["meta"]["device"] == "cpu"
    assert doc["meta"]["methods"]["PMGI"]["checkpoint_sha256"] == ckpt.sha256()
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["pair"] for r in rows] == ["p0", "p0", "p1", "p1", "mean", "mean"]
    with pytest.raises(PmgiError, match="exists; pass --overwrite"):
        write_report(report, tmp_path / "report")
    table = format_table(report)
    assert "mean" in table and "EN^" in table


def test_metrics_command_reproduces_the_reference_values(tmp_path, capsys):
    vector = shared_path("reference", "parity", "ir-vis", "tno_01")
    ref = json.loads(shared_path("reference", "metrics", "ir-vis", "tno_01.json").read_text())
    code = pmgi(["metrics", "--task", "ir-vis", str(vector / "a.png"), str(vector / "b.png"),
                 str(vector / "official.png"), "--json"])
    assert code == 0
    values = json.loads(capsys.readouterr().out)
    for key in ("EN", "SCD", "CC", "FMI_pixel", "SD", "MI"):
        assert values[key] == pytest.approx(ref["fused"]["official"][key], rel=1e-6), key


def test_metrics_command_refuses_a_fused_image_of_another_size(tmp_path, capsys):
    for name, img in (("a.png", scene(20, 20)), ("b.png", scene(20, 20, 1)), ("f.png", scene(10, 20))):
        imageio.write_image(tmp_path / name, img)
    code = pmgi(["metrics", "--task", "ir-vis", *(str(tmp_path / n) for n in ("a.png", "b.png", "f.png"))])
    assert code == 2
    assert "the fused image is 20x10, but the sources call for 20x20" in capsys.readouterr().err


def test_evaluate_pan_sharpening_on_real_pairs_with_baselines(tmp_path, capsys):
    data = shared_path("data", "pan-sharpening")
    code = pmgi(["evaluate", "--task", "pan-sharpening", str(data), "--methods", "brovey,fihs",
                 "-o", str(tmp_path / "pan"), "--quiet"])
    assert code == 0
    doc = json.loads((tmp_path / "pan.json").read_text())
    rows = doc["rows"]
    assert len(rows) == 2 * len(find_pairs("pan-sharpening", data))
    for r in rows:
        assert 0 <= r["QNR"] <= 1 and r["SAM"] >= 0 and r["ERGAS"] >= 0
