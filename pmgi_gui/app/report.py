"""The report the window exports: one CSV row and one JSON entry per method. No Qt."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..core._atomic import atomic_write

__all__ = ["write_metrics_report"]


def write_metrics_report(folder: Path, stem: str, meta: dict, rows: list[dict],
                         metric_names: dict[str, str]) -> tuple[Path, Path]:
    """Write ``<stem>_metrics.csv`` and ``<stem>_metrics.json`` into ``folder``.

    ``rows``: dicts with method, name, seconds, device, checkpoint, checkpoint_sha256 and
    metrics (key -> value); ``metric_names``: key -> display name, in column order.
    """
    folder = Path(folder)
    csv_path = folder / f"{stem}_metrics.csv"
    json_path = folder / f"{stem}_metrics.json"
    keys = list(metric_names)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["method", "name", "seconds", "device", "checkpoint"] + keys)
    for r in rows:
        writer.writerow([r["method"], r["name"], f"{r['seconds']:.6f}", r.get("device", ""),
                         r.get("checkpoint") or ""]
                        + ["" if r["metrics"].get(k) is None else repr(float(r["metrics"][k]))
                           for k in keys])
    doc = {
        "software": f"pmgi-gui {__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **meta,
        "metrics": metric_names,
        "methods": [{**r, "metrics": {k: float(v) for k, v in r["metrics"].items()}} for r in rows],
    }
    csv_bytes = buf.getvalue().encode()
    json_bytes = (json.dumps(doc, indent=2) + "\n").encode()
    atomic_write(csv_path, lambda fh: fh.write(csv_bytes))
    atomic_write(json_path, lambda fh: fh.write(json_bytes))
    return csv_path, json_path
