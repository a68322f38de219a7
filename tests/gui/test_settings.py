"""Settings files: damaged, newer or wrong-typed ones never stop the window."""

from __future__ import annotations

import json

from pmgi_gui.app.settings import SCHEMA_VERSION, Settings, settings_path


def test_round_trip_in_the_config_folder(_isolated_user_dirs):
    _, config = _isolated_user_dirs
    s = Settings(task="medical", device="cpu", checkpoints={"medical": "mine"},
                 gradient_scales={"medical": 1.5}, baselines_off=["dwt"], pet_colormap="jet",
                 pet_opacity=0.25)
    s.save()
    assert settings_path() == config / "settings.json"
    assert Settings.load() == s


def test_damaged_file_gives_defaults(_isolated_user_dirs):
    settings_path().write_text("{ not json")
    assert Settings.load() == Settings()


def test_newer_schema_gives_defaults(_isolated_user_dirs):
    settings_path().write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1, "task": "medical"}))
    assert Settings.load() == Settings()


def test_wrong_values_fall_back_one_by_one(_isolated_user_dirs):
    settings_path().write_text(json.dumps({
        "schema_version": SCHEMA_VERSION, "task": "no-such-task", "device": 3,
        "pet_colormap": "viridis", "pet_opacity": 1, "save_dir": "/tmp/x",
        "checkpoints": {"ir-vis": "a", "nope": "b", "medical": 5},
        "gradient_scales": {"ir-vis": 2, "medical": -1, "nope": 1.5, "multi-focus": "x",
                            "multi-exposure": True}}))
    s = Settings.load()
    assert s.task == "ir-vis" and s.device == "auto" and s.pet_colormap == "hot"
    assert s.pet_opacity == 1.0 and s.save_dir == "/tmp/x"
    assert s.checkpoints == {"ir-vis": "a"}
    assert s.gradient_scales == {"ir-vis": 2.0}
