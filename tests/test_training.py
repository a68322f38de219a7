"""Training: the loss by hand, determinism, resume, cancel, fine-tuning, the CLI.

Everything runs a few steps on tiny synthetic pairs (batch 2, 24x24 patches)."""

import csv
import json

import numpy as np
import pytest
import torch

from pmgi_gui.cli import main
from pmgi_gui.core import imageio
from pmgi_gui.core.checkpoints import find_checkpoint, load_checkpoint
from pmgi_gui.core.engine import fuse_gray
from pmgi_gui.core.errors import Cancelled, PmgiError
from pmgi_gui.core.fusion import fuse
from pmgi_gui.core.network import to_network
from pmgi_gui.core.tasks import Lambdas
from pmgi_gui.core.training import (
    fine_tune, laplacian, load_training_data, loss_terms, pair_weights, pmgi_loss,
    save_fine_tuned, state_path_for, train)
from tests.helpers import random_checkpoint, scene

FAST = dict(steps=4, batch=2, patch=24, device="cpu", threads=1, save_every=100)


# -- the loss, worked out by hand ------------------------------------------------

def _img(rows):
    return torch.tensor(rows, dtype=torch.float64)[None, None]


def test_loss_against_hand_computed_values():
    f = _img([[0, 0, 0], [0, 0, 0], [0, 0, 0]])
    a = _img([[0, 0, 0], [0, 1, 0], [0, 0, 0]])        # one bright centre pixel
    b = _img([[.5, .5, .5], [.5, .5, .5], [.5, .5, .5]])  # constant: only the zero padding has edges

    # lap(a), zero padding: centre 0+0+0+0-4*1 = -4; the four edge middles see the
    # centre once: +1; the corners see nothing: 0.
    assert torch.equal(laplacian(a), _img([[0, 1, 0], [1, -4, 1], [0, 1, 0]]))
    # lap(b): centre 4*.5 - 4*.5 = 0; edge middles have 3 neighbours inside:
    # 3*.5 - 2 = -.5; corners have 2: 2*.5 - 2 = -1.
    assert torch.equal(laplacian(b), _img([[-1, -.5, -1], [-.5, 0, -.5], [-1, -.5, -1]]))

    t = loss_terms(f, a, b)
    # |F-A|^2: one pixel of 1 in nine             -> 1/9
    assert t["a_int"].item() == pytest.approx(1 / 9)
    # |lap F - lap A|^2: 16 + 4*1 + 4*0            -> 20/9
    assert t["a_grad"].item() == pytest.approx(20 / 9)
    # |F-B|^2: .25 everywhere                       -> .25
    assert t["b_int"].item() == pytest.approx(0.25)
    # |lap F - lap B|^2: 0 + 4*.25 + 4*1            -> 5/9
    assert t["b_grad"].item() == pytest.approx(5 / 9)

    # Each term alone, with the x100 of the released code.
    for key, value in (("a_int", 1 / 9), ("a_grad", 20 / 9), ("b_int", 0.25), ("b_grad", 5 / 9)):
        only = Lambdas(**{k: float(k == key) for k in ("a_int", "a_grad", "b_int", "b_grad")})
        assert pmgi_loss(f, a, b, only).item() == pytest.approx(100 * value)

    # The ir-vis weights (1, 4, 0.3, 5): 100 * (1/9 + 4*20/9 + 0.3*.25 + 5*5/9)
    #   = 100 * (106/9 + 0.075) = 1185.2778
    paper = Lambdas(a_int=1, a_grad=4, b_int=0.3, b_grad=5)
    assert pmgi_loss(f, a, b, paper).item() == pytest.approx(1185.27777, abs=1e-3)

    # F = B: the B terms vanish. |B-A|^2: .25 on all nine pixels -> .25;
    # lap B - lap A: centre 0-(-4) = 4 -> 16; edge middles -.5-1 -> 2.25 (x4 = 9);
    # corners -1-0 -> 1 (x4 = 4); (16 + 9 + 4)/9 = 29/9.
    t = loss_terms(b, a, b)
    assert t["b_int"].item() == 0 and t["b_grad"].item() == 0
    assert t["a_int"].item() == pytest.approx(0.25)
    assert t["a_grad"].item() == pytest.approx(29 / 9)


def test_medical_pairs_are_weighted_against_adjacent_slices():
    names = [f"mri_hv25{k:03d}" for k in range(10, 20)] + ["mripet_17", "mripet_21"]
    w, rule = pair_weights("medical", names)
    # A run of ten adjacent slices: the middle ones have 5 within +-2, the ends 3.
    assert w[5] == pytest.approx(1 / 5) and w[0] == pytest.approx(1 / 3)
    assert w[10] == w[11] == 1  # slices four apart do not count as neighbours
    assert "medical" in rule
    w, rule = pair_weights("ir-vis", ["tno_01", "tno_02"])
    assert list(w) == [1, 1] and rule == "uniform over pairs"


# -- training on tiny synthetic pairs --------------------------------------------

@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "ir-vis"
    for k in range(2):
        (root / f"p{k}").mkdir(parents=True)
        imageio.write_image(root / f"p{k}" / "ir.png", scene(36, 40, k))
        vis = np.stack([scene(36, 40, 10 + k)] * 3, -1)
        vis[..., 0] = np.clip(vis[..., 0].astype(int) + 30, 0, 255)  # a colour visible
        imageio.write_image(root / f"p{k}" / "vis.png", vis)
    return root


@pytest.fixture(scope="module")
def trained(pairs_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "ckpt"
    return train("ir-vis", pairs_dir, out, seed=3, **FAST)


def _weights(ckpt):
    model = ckpt.load_model()
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_writes_a_checkpoint_that_loads_and_fuses(trained, pairs_dir):
    ckpt = load_checkpoint(trained.checkpoint.path)
    assert ckpt.normalisation == "batch" and ckpt.task == "ir-vis"
    info = ckpt.extra["training"]
    assert info["steps"] == 4 and info["seed"] == 3 and info["batch"] == 2
    assert info["data"]["pairs"] == ["p0", "p1"] and len(info["data"]["sha256"]) == 64
    assert info["lr_schedule"]["kind"] == "cosine" and info["device"].startswith("cpu")
    assert ckpt.lambdas == Lambdas(1, 4, 0.3, 5)  # the paper's, by default
    rows = list(csv.DictReader(open(trained.loss_csv)))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[-1]["loss"]) == pytest.approx(trained.final_loss)
    ir = imageio.read_image(pairs_dir / "p0" / "ir.png")
    vis = imageio.read_image(pairs_dir / "p0" / "vis.png")
    out = fuse("ir-vis", ir, vis, checkpoint=ckpt, device="cpu").pixels
    assert out.shape == vis.shape and out.dtype == np.uint8


def test_same_seed_same_weights(pairs_dir, tmp_path, trained):
    again = train("ir-vis", pairs_dir, tmp_path / "again", seed=3, **FAST)
    w1, w2 = _weights(trained.checkpoint), _weights(again.checkpoint)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    other = train("ir-vis", pairs_dir, tmp_path / "other", seed=4, **FAST)
    assert not torch.equal(_weights(other.checkpoint)["fuse.weight"], w1["fuse.weight"])


def test_cancel_then_resume_equals_an_uninterrupted_run(pairs_dir, tmp_path, trained):
    out = tmp_path / "resumed"
    done = []
    with pytest.raises(Cancelled, match="stopped at step 2 of 4"):
        train("ir-vis", pairs_dir, out, seed=3, progress=lambda s, n, loss, rate: done.append(s),
              cancel=lambda: len(done) >= 2, **FAST)
    assert done == [1, 2] and state_path_for(out).is_file() and not (out / "manifest.json").exists()
    with pytest.raises(PmgiError, match="pass --resume"):
        train("ir-vis", pairs_dir, out, seed=3, **FAST)
    with pytest.raises(PmgiError, match="seed differ"):
        train("ir-vis", pairs_dir, out, seed=5, resume=True, **FAST)
    resumed = train("ir-vis", pairs_dir, out, seed=3, resume=True, **FAST)
    w1, w2 = _weights(trained.checkpoint), _weights(resumed.checkpoint)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    losses = lambda p: [r["loss"] for r in csv.DictReader(open(p))]  # noqa: E731
    assert losses(resumed.loss_csv) == losses(trained.loss_csv)
    assert resumed.checkpoint.extra["training"]["resumed_at"] == [2]
    assert not state_path_for(out).exists()  # a finished run leaves its checkpoint only


def test_fine_tune_moves_the_output_towards_the_weighted_source(tmp_path, monkeypatch):
    monkeypatch.setenv("PMGI_USER_DIR", str(tmp_path / "user"))
    base = random_checkpoint(tmp_path / "base", task="ir-vis", normalisation="batch", seed=1)
    ir, vis = scene(32, 32, 1), scene(32, 32, 7)
    a = to_network(torch.from_numpy(ir.astype(np.float32))).numpy()

    def distance_to_a(model):
        return float(np.mean((fuse_gray(model, ir.astype(np.float32), vis.astype(np.float32)) - a) ** 2))

    before = distance_to_a(base.load_model())
    intensity_of_a = Lambdas(a_int=1, a_grad=0, b_int=0, b_grad=0)
    model, info = fine_tune(base, ir, vis, "ir-vis", intensity_of_a, steps=12, batch=2, patch=24,
                            lr=1e-3, device="cpu", threads=1)
    assert distance_to_a(model) < 0.5 * before
    assert info["base"]["checkpoint"] == "base" and info["loss"]["final"] < info["loss"]["first"]
    saved = save_fine_tuned(model, info, name="more-ir")
    assert saved.path == tmp_path / "user" / "checkpoints" / "ir-vis" / "more-ir"
    assert find_checkpoint("more-ir", "ir-vis").lambdas == intensity_of_a
    with pytest.raises(Cancelled):
        fine_tune(base, ir, vis, "ir-vis", intensity_of_a, steps=5, cancel=lambda: True,
                  device="cpu", threads=1)


def test_metrics_of_the_final_model_are_recorded(pairs_dir, tmp_path):
    from pmgi_gui.core.metrics import TASK_METRICS

    result = train("ir-vis", pairs_dir, tmp_path / "m", steps=1, batch=2, patch=24, device="cpu",
                   threads=1, eval_data=pairs_dir)
    metrics = json.loads((result.checkpoint.path / "manifest.json").read_text())["metrics"]
    assert metrics["pairs"] == ["p0", "p1"]
    assert list(metrics["mean"]) == list(TASK_METRICS["ir-vis"])
    # One step leaves a nearly flat image: correlations may be undefined, entropy is not.
    assert np.isfinite(metrics["mean"]["EN"]) and np.isfinite(metrics["mean"]["SD"])


def test_data_errors_are_explained(tmp_path):
    with pytest.raises(PmgiError, match="no ir-vis training pairs"):
        load_training_data("ir-vis", tmp_path)
    (tmp_path / "small").mkdir()
    imageio.write_image(tmp_path / "small" / "ir.png", scene(10, 10))
    imageio.write_image(tmp_path / "small" / "vis.png", scene(10, 10, 1))
    with pytest.raises(PmgiError, match="smaller than the 24x24 patch"):
        load_training_data("ir-vis", tmp_path, patch=24)


# -- command line ----------------------------------------------------------------

def test_cli_train_and_fine_tune(pairs_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["train", "--task", "ir-vis", "--data", str(pairs_dir.parent), "--steps", "2",
               "--batch", "2", "--patch", "24", "--lambdas", "1,4,0.3,5", "--device", "cpu",
               "-o", str(out)])
    assert rc == 0 and "trained ir-vis" in capsys.readouterr().out
    assert load_checkpoint(out).extra["training"]["steps"] == 2
    rc = main(["train", "--task", "ir-vis", "--pair", str(pairs_dir / "p0" / "ir.png"),
               str(pairs_dir / "p0" / "vis.png"), "--init", str(out), "--steps", "2", "--batch", "2",
               "--patch", "24", "--lambdas", "2,4,0.3,5", "--device", "cpu", "-o", str(tmp_path / "ft")])
    assert rc == 0 and load_checkpoint(tmp_path / "ft").lambdas.a_int == 2


@pytest.mark.parametrize("args, message", [
    (["--lambdas", "1,2,3"], "--lambdas needs four numbers"),
    (["--lambdas", "1,-1,0,0"], "must be finite and not negative"),
    (["--steps", "0"], "steps must be a whole number of at least 1"),
    (["--resume", "--pair", "a.png", "b.png"], "--resume continues a --data run"),
    (["--data", "/nonexistent/pairs"], "training data folder not found"),
])
def test_cli_train_errors_are_one_line(args, message, tmp_path, capsys):
    if "--pair" not in args and "--data" not in args:
        args = args + ["--data", str(tmp_path)]
    rc = main(["train", "--task", "ir-vis", *args, "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("pmgi: error: ") and message in err and err.count("\n") == 1


def test_evaluation_pairs_are_held_out_of_training_by_pixel_content(tmp_path):
    from pmgi_gui.core import imageio
    from pmgi_gui.core.training import held_out_digests, load_training_data
    from tests.helpers import scene

    for name, seed in (("p0", 0), ("p1", 1), ("p2", 2)):
        (tmp_path / "train" / name).mkdir(parents=True)
        imageio.write_image(tmp_path / "train" / name / "ir.png", scene(64, 64, seed))
        imageio.write_image(tmp_path / "train" / name / "vis.png", scene(64, 64, seed + 10))
    # The evaluation copy of p1 has another name and format, but the same pixels.
    (tmp_path / "eval" / "x").mkdir(parents=True)
    imageio.write_image(tmp_path / "eval" / "x" / "ir.tif", scene(64, 64, 1))
    imageio.write_image(tmp_path / "eval" / "x" / "vis.png", scene(64, 64, 99))
    data = load_training_data("ir-vis", tmp_path / "train", patch=32,
                              exclude=held_out_digests("ir-vis", tmp_path / "eval"))
    assert data.pairs == ["p0", "p2"]
    assert data.skipped == ["p1: held out for evaluation"]


def _pan_pairs(root, n=2, bands=3):
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"p{i}"
        d.mkdir(parents=True)
        pan = scene(64, 64, i)
        ms = np.stack([scene(16, 16, i + 10 * k) for k in range(bands)], -1)
        ms = np.clip(ms.astype(int) + rng.integers(-3, 4, ms.shape), 0, 255).astype(np.uint8)
        imageio.write_image(d / "pan.tif", pan)
        imageio.write_image(d / "ms.tif", ms)
    return root


def test_per_band_pan_models_gather_into_one_checkpoint(tmp_path):
    data = _pan_pairs(tmp_path / "pan")
    out = tmp_path / "perband"
    for band in (1, 2, 3):
        r = train("pan-sharpening", data, out, band=band, **FAST)
        assert r.checkpoint.bands == list(range(1, band + 1))
        assert (out / f"loss-band{band}.csv").is_file()
        assert not state_path_for(out, band).exists()
    ckpt = load_checkpoint(out)
    # Each band's run is described, and each model saw only its band.
    assert {f"training_band{k}" for k in (1, 2, 3)} <= set(ckpt.extra)
    w1 = ckpt.load_model(1).state_dict()["fuse.weight"]
    assert not torch.equal(w1, ckpt.load_model(2).state_dict()["fuse.weight"])
    with pytest.raises(PmgiError, match="already holds"):
        train("pan-sharpening", data, out, band=2, **FAST)
    ms = np.stack([scene(16, 16, k) for k in range(3)], -1)
    r = fuse("pan-sharpening", ms, scene(64, 64, 5), checkpoint=ckpt, device="cpu")
    assert r.pixels.shape == (64, 64, 3)
    with pytest.raises(PmgiError, match="band"):
        train("pan-sharpening", data, tmp_path / "x", band=4, **FAST)
    with pytest.raises(PmgiError, match="pan-sharpening"):
        train("ir-vis", data, tmp_path / "y", band=1, **FAST)


def test_batch_norm_statistics_from_whole_images(pairs_dir, tmp_path, trained):
    """--bn-stats images: the running statistics become the plain average, over the
    training images, of each whole image's own moments; the weights stay."""
    from pmgi_gui.core.training import recalibrate_checkpoint

    out = recalibrate_checkpoint(trained.checkpoint, "ir-vis", pairs_dir, tmp_path / "recal")
    before, after = _weights(trained.checkpoint), _weights(out)
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    for k in before:
        if k not in stats and not k.endswith("num_batches_tracked"):
            assert torch.equal(before[k], after[k]), k
    assert all(not torch.equal(before[k], after[k]) for k in stats)
    # By hand for the first layer of path A: its input is concat(ir, ir, vis) of each
    # whole pair, its moments those of the batch-norm input over that image.
    model = trained.checkpoint.load_model()
    layer = model.a.conv1
    means, variances = [], []
    for k in ("p0", "p1"):
        ir, vis = (imageio.read_image(pairs_dir / k / f) for f in ("ir.png", "vis.png"))
        from pmgi_gui.core.tasks import network_inputs

        (x, y), = network_inputs("ir-vis", ir, vis)
        a = to_network(torch.from_numpy(np.asarray(x, np.float32)).half().float())[None, None]
        b = to_network(torch.from_numpy(np.asarray(y, np.float32)).half().float())[None, None]
        with torch.no_grad():
            z = layer.conv(torch.cat([a, a, b], 1))
        means.append(z.mean((0, 2, 3)))
        variances.append(z.var((0, 2, 3), unbiased=True))
    torch.testing.assert_close(after["a.conv1.bn.running_mean"], torch.stack(means).mean(0),
                               atol=2e-3, rtol=1e-2)
    torch.testing.assert_close(after["a.conv1.bn.running_var"], torch.stack(variances).mean(0),
                               atol=2e-3, rtol=1e-2)
    info = out.extra["batch_norm_recalibrated"]
    assert info["images"] == 2 and info["source"]["sha256"] == trained.checkpoint.sha256()
    with pytest.raises(PmgiError, match="new folder"):
        recalibrate_checkpoint(out, "ir-vis", pairs_dir, out.path)
    # The same at the end of training, recorded in the manifest.
    r = train("ir-vis", pairs_dir, tmp_path / "img", seed=3, bn_stats="images", **FAST)
    assert r.checkpoint.extra["training"]["batch_norm_statistics"]["images"] == 2
    torch.testing.assert_close(_weights(r.checkpoint)["a.conv1.bn.running_mean"],
                               after["a.conv1.bn.running_mean"], atol=1e-5, rtol=1e-4)


def test_cli_recalibrate(pairs_dir, trained, tmp_path, capsys):
    assert main(["recalibrate", str(trained.checkpoint.path), "--task", "ir-vis", "--data",
                 str(pairs_dir), "-o", str(tmp_path / "r")]) == 0
    assert "on 2 whole images" in capsys.readouterr().out
    assert main(["recalibrate", str(trained.checkpoint.path), "--task", "ir-vis", "--data",
                 str(pairs_dir), "-o", str(tmp_path / "r")]) == 2
    assert "already holds" in capsys.readouterr().err
