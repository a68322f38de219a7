"""Start-up: the probe that benchmarks/bench_startup.py reads."""

from __future__ import annotations


def test_startup_probe_reports_the_window_and_the_first_result_then_quits(
        qapp, monkeypatch, capsys, no_shipped_weights):
    from pmgi_gui.app.main import STARTUP_PROBE_ENV, main
    from pmgi_gui.app.main_window import MainWindow

    monkeypatch.setenv(STARTUP_PROBE_ENV, "1")
    assert main([]) == 0  # returns: the probe closed the window
    lines = [line.split() for line in capsys.readouterr().out.splitlines()
             if line.startswith("pmgi-startup ")]
    events = [parts[1] for parts in lines]
    assert events == ["window_shown", "first_result"], lines
    shown, first = (float(parts[2]) for parts in lines)
    assert 0 < shown <= first
    assert lines[1][3] == "average"  # no checkpoint here: the fastest baseline comes first
    assert not [w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
