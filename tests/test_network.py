import pytest
import torch

from pmgi_gui.core.network import PMGI, RECEPTIVE_RADIUS, Moments, to_network
from tests.helpers import random_model, scene

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _inputs(h=64, w=80, device="cpu"):
    a = to_network(torch.from_numpy(scene(h, w, 1)).float())[None, None]
    b = to_network(torch.from_numpy(scene(h, w, 2)).float())[None, None]
    return a.to(device), b.to(device)


@pytest.mark.parametrize("normalisation", ["reference", "none", "batch"])
def test_parameter_count_matches_the_paper(normalisation):
    model = PMGI(normalisation)
    convs = sum(p.numel() for n, p in model.named_parameters() if ".bn." not in n)
    assert convs == 41_633


@pytest.mark.parametrize("device", DEVICES)
def test_folding_batch_norm_keeps_the_output(device):
    model = random_model("batch").to(device)
    a, b = _inputs(device=device)
    with torch.no_grad():
        before = model(a, b)
        folded = model.fold()
        after = folded(a, b)
    assert folded.normalisation == "none"
    assert not any(".bn." in k for k in folded.state_dict())
    assert before.std() > 0.01  # the check below is not vacuous
    assert torch.max(torch.abs(before - after)).item() < 1e-5


def test_reference_moments_fold_into_a_conv_stack():
    model = random_model("reference")
    a, b = _inputs()
    record = Moments({}, {})
    with torch.no_grad():
        y = model(a, b, record=record)
        assert len(record.mean) == 12
        replay = model(a, b, moments=record)
        folded = model.fold(record)(a, b)
    assert torch.equal(y, replay)
    assert torch.max(torch.abs(y - folded)).item() < 1e-5


def test_reference_output_depends_on_whole_image_statistics():
    # The quirk that makes naive tiling wrong for reference checkpoints.
    model = random_model("reference")
    a, b = _inputs()
    with torch.no_grad():
        whole = model(a, b)[..., :32, :32]
        crop = model(a[..., :32, :32], b[..., :32, :32])
    assert torch.max(torch.abs(whole - crop)).item() > 1e-3


def test_receptive_field_radius():
    model = random_model("none")
    a, b = _inputs(48, 48)
    with torch.no_grad():
        y0 = model(a, b)
        a2 = a.clone()
        a2[..., 24, 24] += 0.5
        changed = (model(a2, b) - y0).abs()[0, 0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert changed.any()
    assert (rows - 24).abs().max().item() == RECEPTIVE_RADIUS
    assert (cols - 24).abs().max().item() == RECEPTIVE_RADIUS
