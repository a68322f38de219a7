import json
import sys

import pytest
import torch

from pmgi_gui.core.checkpoints import (MANIFEST, find_checkpoint, import_official, list_checkpoints,
                                       load_checkpoint, save_checkpoint)
from pmgi_gui.core.errors import CheckpointError
from pmgi_gui.core.tasks import get_task
from tests.helpers import random_checkpoint, random_model


def test_round_trip_keeps_weights_and_manifest(tmp_path):
    model = random_model("batch", seed=3)
    ckpt = save_checkpoint(tmp_path / "c", {"default": model}, task="medical",
                           lambdas=get_task("medical").lambdas, label="test",
                           provenance={"note": "unit test"})
    again = load_checkpoint(tmp_path / "c")
    assert again.task == "medical" and again.normalisation == "batch"
    assert again.lambdas == get_task("medical").lambdas
    assert again.provenance["note"] == "unit test"
    assert len(again.sha256()) == 64 and again.sha256() == ckpt.sha256()
    loaded = again.load_model()
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, loaded.state_dict()[k]), k
    manifest = json.loads((tmp_path / "c" / MANIFEST).read_text())
    assert set(manifest["lambdas"]) == {"a_int", "a_grad", "b_int", "b_grad"}


def test_tampered_weights_are_refused(tmp_path):
    ckpt = random_checkpoint(tmp_path / "c")
    weights = tmp_path / "c" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        ckpt.load_model()


def test_wrong_shapes_are_refused_even_with_a_matching_hash(tmp_path):
    from safetensors.torch import save_file

    ckpt = random_checkpoint(tmp_path / "c", normalisation="none")
    state = random_model("none").state_dict()
    state["a.conv1.conv.weight"] = torch.zeros(16, 3, 3, 3)
    save_file(state, str(tmp_path / "c" / "model.safetensors"))
    manifest = json.loads((tmp_path / "c" / MANIFEST).read_text())
    import hashlib

    manifest["models"]["default"]["sha256"] = hashlib.sha256(
        (tmp_path / "c" / "model.safetensors").read_bytes()).hexdigest()
    (tmp_path / "c" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"a.conv1.conv.weight has shape \(16, 3, 3, 3\)"):
        load_checkpoint(ckpt.path).load_model()


def test_a_pickle_disguised_as_safetensors_is_refused(tmp_path):
    import hashlib
    import pickle

    ckpt = random_checkpoint(tmp_path / "c")
    weights = tmp_path / "c" / "model.safetensors"

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    weights.write_bytes(pickle.dumps(Evil()))
    manifest = json.loads((tmp_path / "c" / MANIFEST).read_text())
    manifest["models"]["default"]["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (tmp_path / "c" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(ckpt.path).load_model()


@pytest.mark.parametrize("change, message", [
    ({"format": "something"}, "not a pmgi-checkpoint manifest"),
    ({"task": "x-ray"}, "unknown task 'x-ray'"),
    ({"normalisation": "layer"}, "unknown normalisation 'layer'"),
    ({"models": {"default": {"file": "../../etc/passwd.safetensors", "sha256": "0" * 64}}},
     "plain .safetensors file name"),
    ({"lambdas": {"a_int": 1}}, "lambdas need"),
    ({"format_version": 99}, "format version 99 is not supported"),
])
def test_bad_manifests_are_refused(tmp_path, change, message):
    random_checkpoint(tmp_path / "c")
    manifest = json.loads((tmp_path / "c" / MANIFEST).read_text())
    manifest.update(change)
    (tmp_path / "c" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "c")


def test_manifest_that_is_not_json(tmp_path):
    random_checkpoint(tmp_path / "c")
    (tmp_path / "c" / MANIFEST).write_bytes(b"\x00\xff not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(tmp_path / "c")


def test_registry_finds_user_checkpoints_by_name_and_refuses_other_tasks(tmp_path, monkeypatch):
    monkeypatch.setenv("PMGI_USER_DIR", str(tmp_path / "user"))
    random_checkpoint(tmp_path / "user" / "checkpoints" / "medical" / "mine", task="medical")
    assert "mine" in [c.name for c in list_checkpoints("medical")]
    assert find_checkpoint("mine", "medical").task == "medical"
    with pytest.raises(CheckpointError, match="no checkpoint named 'mine' for task ir-vis"):
        find_checkpoint("mine", "ir-vis")
    with pytest.raises(CheckpointError, match="made for task medical, not ir-vis"):
        find_checkpoint(str(tmp_path / "user" / "checkpoints" / "medical" / "mine"), "ir-vis")


def test_per_band_checkpoint_needs_a_band(tmp_path):
    lam = get_task("pan-sharpening").lambdas
    for k in (1, 2):
        save_checkpoint(tmp_path / "p", {f"band{k}": random_model("none", k)}, task="pan-sharpening",
                        lambdas=lam, label="bands", merge=True)
    ckpt = load_checkpoint(tmp_path / "p")
    assert ckpt.bands == [1, 2]
    with pytest.raises(CheckpointError, match="say which band"):
        ckpt.load_model()
    with pytest.raises(CheckpointError, match="no model for band 3"):
        ckpt.load_model(band=3)
    assert ckpt.load_model(band=2).normalisation == "none"


def test_missing_tensorflow_gives_one_line_explanation(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    monkeypatch.setitem(sys.modules, "tensorflow.train", None)
    with pytest.raises(CheckpointError, match=r"needs TensorFlow: pip install 'pmgi-gui\[official\]'"):
        import_official(tmp_path / "x", "ir-vis", tmp_path / "out")
