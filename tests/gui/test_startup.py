"""Start-up: the probe that benchmarks/bench_startup.py reads."""

from __future__ import annotations

from ._util import run_main


def test_startup_probe_reports_the_window_and_the_first_result_then_quits(qapp, monkeypatch, capsys):
    from pmgi_gui.app.main import STARTUP_PROBE_ENV
    from pmgi_gui.app.main_window import MainWindow

    monkeypatch.setenv(STARTUP_PROBE_ENV, "1")
    # Returns: the probe closed the window and quit (its own limit is 120 s).
    assert run_main(qapp, [], limit_ms=300_000) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()
             if line.startswith("pmgi-startup ")]
    events = [parts[1] for parts in lines]
    assert events == ["window_shown", "first_result", "pmgi_result"], lines
    shown, first, pmgi = (float(parts[2]) for parts in lines)
    assert 0 < shown <= first <= pmgi
    assert lines[1][3] == "average"  # the cheapest method first, PMGI (shipped) after it
    assert not [w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]


def test_devices_are_found_in_the_background(qtbot, make_window):
    w = make_window(find_devices=False)
    assert [w.device_combo.itemData(i) for i in range(w.device_combo.count())] == ["auto", "cpu"]
    assert "finding the devices" in w.device_label.text()
    w.find_devices_in_background()
    qtbot.waitUntil(lambda: "finding" not in w.device_label.text(), timeout=30_000)
    qtbot.waitUntil(lambda: w._device_thread is None, timeout=5_000)
    assert "PMGI runs on: CPU" in w.device_label.text()  # set_device("cpu") by the fixture


def test_start_up_fuses_the_demo_cheapest_first_and_then_shows_pmgi(qtbot, make_window):
    from pmgi_gui.core.fusion import PMGI_METHOD, methods_for

    w = make_window()
    arrived = []
    w.runner.method_finished.connect(lambda o: arrived.append((o.method, w.shown_method())))
    with qtbot.waitSignal(w.runner.finished, timeout=120_000) as blocker:
        w.start_up()
    canonical = [k for k, _ in methods_for("ir-vis")]
    assert [o.method for o in blocker.args[0].outcomes][:2] == ["average", PMGI_METHOD]
    # The average is shown at once, PMGI replaces it when it comes.
    assert arrived[0] == ("average", "average") and arrived[1] == (PMGI_METHOD, PMGI_METHOD)
    assert w.shown_method() == PMGI_METHOD
    # Listed in the usual order, each with its metrics once the job has scored it.
    assert list(w.results) == canonical
    assert [w.show_combo.itemData(i) for i in range(w.show_combo.count())] == canonical
    assert w.metrics_panel.shown_methods() == canonical
    assert all(w.results[k].metrics for k in canonical)
    assert all(w.metrics_panel.table.item(r, 2).text() for r in range(len(canonical)))
