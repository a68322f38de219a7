import pytest

from pmgi_gui.core.tasks import TASK_NAMES
from pmgi_gui.selftest import self_test
from tests.helpers import random_checkpoint


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    monkeypatch.setattr("pmgi_gui.paths.weights_dir", lambda: tmp_path / "weights")
    monkeypatch.setenv("PMGI_USER_DIR", str(tmp_path / "user"))
    for task in TASK_NAMES:
        random_checkpoint(tmp_path / "weights" / task / "paper", task=task)
    return tmp_path / "weights"


def test_self_test_passes_with_every_task_shipped(shipped):
    lines = []
    assert self_test(lines.append) == 0
    assert lines[-1] == "self-test passed"
    for task in TASK_NAMES:
        assert any(line.startswith(f"{task}: ok - 1 checkpoint(s), paper fused the demo pair")
                   for line in lines), task


def test_self_test_fails_on_a_damaged_checkpoint(shipped, capsys):
    weights = shipped / "medical" / "paper" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    lines = []
    assert self_test(lines.append) == 1
    assert any(line.startswith("medical: FAILED - CheckpointError") and "sha256" in line for line in lines)
    assert lines[-1] == "self-test FAILED (1 task(s))"


def test_pmgi_self_test_command_runs_the_same_check(shipped, capsys):
    from pmgi_gui.cli import main

    assert main(["self-test"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "self-test passed"
    assert sum(line.split(":")[0] in TASK_NAMES for line in out) == len(TASK_NAMES)
