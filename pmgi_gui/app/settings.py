"""What the window remembers between runs.

Typed settings with a schema version live as JSON in the user's config folder
(platformdirs; ``PMGI_CONFIG_DIR`` overrides it for tests). A file that is
damaged, from a newer version, or holds wrong types never stops the window: the
affected values fall back to their defaults. Window geometry is Qt's own business
and goes through ``QSettings`` (an INI file in the same folder).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..core._atomic import atomic_write
from ..core.colour import PET_COLORMAPS
from ..core.spec import DEVICES
from ..core.tasks import TASK_NAMES
from ..paths import user_config_dir

__all__ = ["Settings", "SCHEMA_VERSION", "settings_path", "geometry_store"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SETTINGS_FILE = "settings.json"
GEOMETRY_FILE = "window.ini"


@dataclass
class Settings:
    task: str = "ir-vis"
    device: str = "auto"
    # Last folders of each file dialog.
    source_dir: str = ""
    save_dir: str = ""
    report_dir: str = ""
    checkpoint_dir: str = ""
    # Task name -> name of the checkpoint last chosen for it.
    checkpoints: dict = field(default_factory=dict)
    # Task name -> gradient scale last chosen on its checkpoint family's texture slider.
    gradient_scales: dict = field(default_factory=dict)
    # Baseline keys the user switched off.
    baselines_off: list = field(default_factory=list)
    pet_colormap: str = "hot"
    pet_opacity: float = 0.5

    def validated(self) -> "Settings":
        """A copy with every out-of-range value replaced by its default."""
        d = Settings()
        out = Settings(**asdict(self))
        if out.task not in TASK_NAMES:
            out.task = d.task
        if out.device not in DEVICES:
            out.device = d.device
        if out.pet_colormap not in PET_COLORMAPS:
            out.pet_colormap = d.pet_colormap
        if not 0.0 <= out.pet_opacity <= 1.0:
            out.pet_opacity = d.pet_opacity
        out.checkpoints = {str(k): str(v) for k, v in out.checkpoints.items()
                           if k in TASK_NAMES and isinstance(v, str)}
        out.baselines_off = [str(k) for k in out.baselines_off if isinstance(k, str)]
        out.gradient_scales = {k: float(v) for k, v in out.gradient_scales.items()
                               if k in TASK_NAMES and isinstance(v, (int, float))
                               and not isinstance(v, bool) and math.isfinite(v) and v > 0}
        return out

    @classmethod
    def load(cls, path: Path | None = None) -> "Settings":
        path = path or settings_path()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("ignoring unreadable settings %s: %s", path, exc)
            return cls()
        if not isinstance(raw, dict):
            return cls()
        version = raw.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            log.warning("settings %s have schema %r; this version reads %d: using defaults",
                        path, version, SCHEMA_VERSION)
            return cls()
        values = {}
        defaults = cls()
        for f in fields(cls):
            if f.name not in raw:
                continue
            value, default = raw[f.name], getattr(defaults, f.name)
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is type(default):
                values[f.name] = value
        return cls(**values).validated()

    def save(self, path: Path | None = None) -> None:
        path = path or settings_path()
        data = {"schema_version": SCHEMA_VERSION, **asdict(self.validated())}
        text = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda fh: fh.write(text))
        except OSError as exc:  # a read-only config folder must not break closing
            log.warning("cannot save settings to %s: %s", path, exc)


def settings_path() -> Path:
    return user_config_dir() / SETTINGS_FILE


def geometry_store():
    """The QSettings (INI, in the config folder) that keep window geometry and state."""
    from PySide6.QtCore import QSettings

    return QSettings(str(user_config_dir() / GEOMETRY_FILE), QSettings.Format.IniFormat)
