"""Checkpoint families: variants recognised from their manifests, weights blended on a
log scale of the gradient weights."""

import math

import numpy as np
import pytest
import torch

from pmgi_gui.core.checkpoints import save_checkpoint
from pmgi_gui.core.errors import CheckpointError
from pmgi_gui.core.family import BlendedCheckpoint, blend_models, family_for, gradient_scale
from pmgi_gui.core.fusion import fuse
from pmgi_gui.core.tasks import Lambdas, get_task

from .helpers import gradient_variant as _variant
from .helpers import random_checkpoint, scene


@pytest.fixture
def fam(tmp_path):
    base = random_checkpoint(tmp_path / "paper", seed=1)
    lo = _variant(tmp_path / "grad-x0.5", base, 0.5, 2)
    hi = _variant(tmp_path / "grad-x2", base, 2.0, 3)
    other = random_checkpoint(tmp_path / "unrelated", seed=4)
    odd = _variant(tmp_path / "odd", base, 1, 5, lambdas=Lambdas(3, 4, 0.3, 5))
    return base, lo, hi, [base, lo, hi, other, odd]


def test_gradient_scale():
    base = get_task("ir-vis").lambdas  # 1, 4, 0.3, 5
    assert gradient_scale(base, Lambdas(1, 8, 0.3, 10)) == pytest.approx(2)
    assert gradient_scale(base, Lambdas(1, 8, 0.3, 5)) is None      # not one factor
    assert gradient_scale(base, Lambdas(2, 8, 0.3, 10)) is None     # intensity changed
    med = get_task("medical").lambdas  # 1, 0, 1, 300
    assert gradient_scale(med, Lambdas(1, 0, 1, 150)) == pytest.approx(0.5)
    assert gradient_scale(med, Lambdas(1, 1, 1, 150)) is None       # a zero weight became non-zero


def test_family_found_from_base_and_from_variant(fam):
    base, lo, hi, pool = fam
    for start in (base, lo, hi):
        family = family_for(start, pool)
        assert family is not None and family.base.name == "paper"
        assert [c.name for _, c in family.members] == ["grad-x0.5", "paper", "grad-x2"]
        assert family.range == (0.5, 2.0)
    assert family_for(pool[3], pool) is None  # no variants
    assert family_for(pool[4], pool) is None  # trained from paper but not a gradient rescaling


def test_members_are_returned_exactly_and_midpoints_blend(fam):
    base, lo, hi, pool = fam
    family = family_for(base, pool)
    assert family.at(1.0) is base and family.at(2.0) is hi and family.at(0.5) is lo
    mid = family.at(math.sqrt(2))
    assert isinstance(mid, BlendedCheckpoint) and mid.t == pytest.approx(0.5)
    assert mid.lambdas.a_grad == pytest.approx(4 * math.sqrt(2))
    m = mid.load_model()
    s0, s1 = base.load_model().state_dict(), hi.load_model().state_dict()
    for k, v in m.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            torch.testing.assert_close(v, 0.5 * s0[k] + 0.5 * s1[k])
    assert mid.sha256() != base.sha256() and mid.sha256() == family.at(math.sqrt(2)).sha256()
    below = family.at(0.5 ** 0.25)
    assert below.base is lo and below.other is base and below.t == pytest.approx(0.75)  # log2(0.84/0.5)
    with pytest.raises(CheckpointError, match="outside"):
        family.at(3.0)


def test_blend_end_points_equal_the_members(fam):
    base, _, hi, _ = fam
    m0, m1 = base.load_model(), hi.load_model()
    x = torch.randn(1, 1, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(blend_models(m0, m1, 0.0)(x, x), m0(x, x))
        torch.testing.assert_close(blend_models(m0, m1, 1.0)(x, x), m1(x, x))


def test_a_blend_fuses_like_a_checkpoint(fam):
    base, _, hi, pool = fam
    a, b = scene(40, 48, 1), scene(40, 48, 2)
    mid = family_for(base, pool).at(1.5)
    r = fuse("ir-vis", a, b, checkpoint=mid, device="cpu")
    r0 = fuse("ir-vis", a, b, checkpoint=base, device="cpu")
    r1 = fuse("ir-vis", a, b, checkpoint=hi, device="cpu")
    assert r.pixels.shape == a.shape and r.checkpoint_sha256 == mid.sha256()
    assert not np.array_equal(r.pixels, r0.pixels) and not np.array_equal(r.pixels, r1.pixels)


def test_name_at_gradient_scale_resolves_through_the_registry(fam, tmp_path, monkeypatch):
    import shutil

    from pmgi_gui import paths
    from pmgi_gui.core.checkpoints import find_checkpoint

    weights = tmp_path / "weights"
    for name in ("paper", "grad-x0.5", "grad-x2"):
        shutil.copytree(tmp_path / name, weights / "ir-vis" / name)
    monkeypatch.setattr(paths, "weights_dir", lambda: weights)
    monkeypatch.setattr(paths, "user_checkpoints_dir", lambda: tmp_path / "user")
    mid = find_checkpoint("paper@g1.5", "ir-vis")
    assert isinstance(mid, BlendedCheckpoint) and mid.scale == pytest.approx(1.5)
    assert find_checkpoint("paper@g2", "ir-vis").name == "grad-x2"
    with pytest.raises(CheckpointError, match="outside"):
        find_checkpoint("paper@g4", "ir-vis")
    shutil.rmtree(weights / "ir-vis" / "grad-x2")
    shutil.rmtree(weights / "ir-vis" / "grad-x0.5")
    with pytest.raises(CheckpointError, match="no gradient-scaled variants"):
        find_checkpoint("paper@g1.5", "ir-vis")


def test_family_study_tool_measures_the_path(fam, tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    from pmgi_gui.core import imageio

    spec = importlib.util.spec_from_file_location(
        "family_study", Path(__file__).resolve().parents[1] / "tools" / "family_study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    for i in range(2):
        d = tmp_path / "data" / f"p{i}"
        d.mkdir(parents=True)
        imageio.write_image(d / "ir.png", scene(32, 40, i))
        imageio.write_image(d / "vis.png", scene(32, 40, 10 + i))
    out = tmp_path / "study.json"
    rc = study.main(["--task", "ir-vis", "--data", str(tmp_path / "data"), "--base",
                     str(tmp_path / "paper"), "--member", str(tmp_path / "grad-x0.5"),
                     "--member", str(tmp_path / "grad-x2"), "--points", "5", "-o", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert [r["g"] for r in result["rows"]] == pytest.approx([0.5, 2 ** -0.5, 1, 2 ** 0.5, 2])
    assert [r["checkpoint"] for r in result["rows"]][::2] == ["grad-x0.5", "paper", "grad-x2"]
    assert {"EN", "MI", "AG", "MSE_A", "MSE_B"} <= set(result["monotone"])
    # The rows differ along the path (random members: different functions).
    assert len({round(r["AG"], 6) for r in result["rows"]}) == 5
    assert "monotone" in capsys.readouterr().out


def test_monotone_rule():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "family_study", Path(__file__).resolve().parents[1] / "tools" / "family_study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    assert study.monotone([1, 2, 3, 4])[0] and study.monotone([4, 3, 3, 1])[0]
    assert not study.monotone([1, 3, 2, 4])[0]          # a step back of 25 % of the range
    assert study.monotone([1, 2, 1.95, 4])[0]           # 1.7 %: within the tolerance


def test_a_sibling_at_scale_one_replaces_the_base_as_the_centre(fam, tmp_path):
    """A variant fine-tuned with the base's own lambdas carries the same fine-tuning
    drift as the others: it is the family's g = 1 member, and the base stands apart."""
    base, lo, hi, pool = fam
    same = _variant(tmp_path / "grad-x1", base, 1.0, 6)
    pool = pool + [same]
    family = family_for(lo, pool)
    assert [c.name for _, c in family.members] == ["grad-x0.5", "grad-x1", "grad-x2"]
    assert family.base.name == "paper" and family.at(1.0).name == "grad-x1"
    assert family.at(1.5).base.name == "grad-x1"
    assert family_for(same, pool).members == family.members
    assert family_for(base, pool) is None  # paper itself is not on the path
    assert family_for(base, pool, as_base=True).members == family.members
    assert family.at(1.5).name == "paper@g1.5"  # named after the family's base


def test_variants_marked_not_continuous_form_no_family(fam, tmp_path):
    base, lo, hi, pool = fam
    apart = [save_checkpoint(tmp_path / f"apart-{c.name}", {"default": c.load_model()},
                             task="ir-vis", lambdas=c.lambdas, label=c.label,
                             extra={**c.extra, "family": {"continuous": False}})
             for c in (lo, hi)]
    assert family_for(base, [base, *apart]) is None
    assert family_for(apart[0], [base, *apart]) is None
