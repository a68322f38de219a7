"""Our checkpoint format, the registry of shipped and user checkpoints, and the
importer of the authors' TensorFlow checkpoints.

A checkpoint is a folder::

    manifest.json         task, lambdas, normalisation, label, provenance, and for
                          each model its weights file and that file's sha256
    model.safetensors     the weights (safetensors: loading cannot run code)

A task whose authors used one network per band (pan-sharpening) may hold one
model per band (``band1`` ... ``bandN``) instead of the single ``default`` one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from .. import paths
from ._atomic import atomic_write
from .errors import CheckpointError
from .spec import NORMALISATIONS
from .tasks import TASKS, Lambdas, get_task

if TYPE_CHECKING:
    from .network import PMGI

# torch and the network are imported where weights are read or written, not here:
# listing and validating checkpoints (the window at start-up) needs neither.

__all__ = [
    "Checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "find_checkpoint",
    "list_checkpoints",
    "import_official",
    "MANIFEST",
]

MANIFEST = "manifest.json"
FORMAT = "pmgi-checkpoint"
FORMAT_VERSION = 1
DEFAULT_MODEL = "default"
_MAX_MANIFEST_BYTES = 1 << 20
_MAX_WEIGHTS_BYTES = 64 << 20  # the network has 41,633 parameters: ~170 kB
_MODEL_KEY = re.compile(r"^(default|band[1-9][0-9]?)$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.safetensors$")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Checkpoint:
    """A validated checkpoint folder. Weights are read (and hash-checked) on demand."""

    path: Path
    task: str
    normalisation: str
    lambdas: Lambdas
    label: str
    input_a: str
    models: dict[str, dict]  # key -> {"file": ..., "sha256": ...}
    provenance: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def bands(self) -> list[int]:
        return sorted(int(k[4:]) for k in self.models if k.startswith("band"))

    def sha256(self, key: str | None = None) -> str:
        """The weights hash of one model, or a combined hash of all of them."""
        if key is not None:
            return self.models[key]["sha256"]
        if len(self.models) == 1:
            return next(iter(self.models.values()))["sha256"]
        joined = "".join(f"{k}:{v['sha256']}" for k, v in sorted(self.models.items()))
        return hashlib.sha256(joined.encode()).hexdigest()

    def model_key(self, band: int | None = None) -> str:
        if DEFAULT_MODEL in self.models:
            return DEFAULT_MODEL
        if band is None:
            raise CheckpointError(
                f"checkpoint {self.name} holds one model per band ({', '.join(self.models)}); "
                "say which band")
        key = f"band{band}"
        if key not in self.models:
            raise CheckpointError(f"checkpoint {self.name} has no model for band {band} "
                                  f"(it has {', '.join(sorted(self.models))})")
        return key

    def load_model(self, band: int | None = None) -> PMGI:
        """The network in eval mode on the CPU, after checking hash and shapes."""
        key = self.model_key(band)
        entry = self.models[key]
        file = self.path / entry["file"]
        if not file.is_file():
            raise CheckpointError(f"checkpoint {self.name}: weights file {entry['file']} is missing")
        if file.stat().st_size > _MAX_WEIGHTS_BYTES:
            raise CheckpointError(f"checkpoint {self.name}: {entry['file']} is far too large for PMGI")
        if _sha256(file) != entry["sha256"]:
            raise CheckpointError(
                f"checkpoint {self.name}: {entry['file']} does not match the sha256 in its manifest "
                "(the file was changed or damaged)")
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(file))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {self.name}: {entry['file']} is not a valid "
                                  f"safetensors file ({exc})") from None
        from .network import PMGI

        model = PMGI(self.normalisation)
        _check_state(model, state, f"checkpoint {self.name}")
        model.load_state_dict(state)
        return model.eval()


def _check_state(model: PMGI, state: dict, what: str) -> None:
    import torch

    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            detail.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
        raise CheckpointError(f"{what}: tensors do not fit a {model.normalisation}-normalised "
                              f"PMGI network ({'; '.join(detail)})")
    for key, ref in expected.items():
        got = state[key]
        if tuple(got.shape) != tuple(ref.shape):
            raise CheckpointError(f"{what}: tensor {key} has shape {tuple(got.shape)}, "
                                  f"expected {tuple(ref.shape)}")
        if not got.is_floating_point():
            raise CheckpointError(f"{what}: tensor {key} is {got.dtype}, expected floating point")
        if not torch.isfinite(got).all():
            raise CheckpointError(f"{what}: tensor {key} holds NaN or infinite values")


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Open a checkpoint folder (or its manifest.json) and validate the manifest."""
    path = Path(path)
    if path.name == MANIFEST:
        path = path.parent
    manifest_path = path / MANIFEST
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not manifest_path.is_file():
        raise CheckpointError(f"{path} is not a checkpoint folder (no {MANIFEST})")
    if manifest_path.stat().st_size > _MAX_MANIFEST_BYTES:
        raise CheckpointError(f"{manifest_path} is too large to be a checkpoint manifest")
    try:
        m = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{manifest_path} is not valid JSON ({exc})") from None
    what = f"checkpoint {path.name}"
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise CheckpointError(f"{what}: manifest is not a {FORMAT} manifest")
    if m.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{what}: format version {m.get('format_version')!r} is not supported "
                              f"(this program reads version {FORMAT_VERSION})")
    if m.get("task") not in TASKS:
        raise CheckpointError(f"{what}: unknown task {m.get('task')!r}")
    if m.get("normalisation") not in NORMALISATIONS:
        raise CheckpointError(f"{what}: unknown normalisation {m.get('normalisation')!r}")
    models = m.get("models")
    if not isinstance(models, dict) or not models:
        raise CheckpointError(f"{what}: manifest lists no models")
    for key, entry in models.items():
        if not _MODEL_KEY.match(str(key)):
            raise CheckpointError(f"{what}: bad model name {key!r}")
        if (not isinstance(entry, dict) or not _FILE_NAME.match(str(entry.get("file", "")))
                or not re.fullmatch(r"[0-9a-f]{64}", str(entry.get("sha256", "")))):
            # File names are plain names inside the folder: no paths, no "..".
            raise CheckpointError(f"{what}: model {key!r} needs a plain .safetensors file name "
                                  "and a sha256")
    try:
        lambdas = Lambdas.from_dict(m.get("lambdas") or {})
    except Exception as exc:  # PmgiError with the detail
        raise CheckpointError(f"{what}: {exc}") from None
    known = {"format", "format_version", "task", "normalisation", "lambdas", "label", "input_a",
             "models", "provenance"}
    return Checkpoint(
        path=path,
        task=m["task"],
        normalisation=m["normalisation"],
        lambdas=lambdas,
        label=str(m.get("label") or path.name),
        input_a=str(m.get("input_a") or get_task(m["task"]).role_a),
        models={k: dict(v) for k, v in models.items()},
        provenance=dict(m.get("provenance") or {}),
        extra={k: v for k, v in m.items() if k not in known},
    )


def save_checkpoint(out_dir: str | os.PathLike, models: dict[str, PMGI], *, task: str,
                    lambdas: Lambdas, label: str, provenance: dict | None = None,
                    extra: dict | None = None, merge: bool = False) -> Checkpoint:
    """Write ``models`` (key ``default`` or ``bandK``) as a checkpoint folder.

    With ``merge``, models are added to an existing checkpoint of the same task and
    normalisation (used to gather per-band models into one checkpoint).
    """
    import torch
    from safetensors.torch import save

    out = Path(out_dir)
    norms = {m.normalisation for m in models.values()}
    if len(norms) != 1:
        raise CheckpointError("all models of one checkpoint must share their normalisation")
    normalisation = norms.pop()
    entries: dict[str, dict] = {}
    if merge and (out / MANIFEST).is_file():
        old = load_checkpoint(out)
        if old.task != task or old.normalisation != normalisation:
            raise CheckpointError(f"{out} holds a {old.normalisation} checkpoint for {old.task}; "
                                  f"cannot add a {normalisation} model for {task}")
        entries = old.models
        provenance = {**old.provenance, **(provenance or {})}
        extra = {**old.extra, **(extra or {})}
    out.mkdir(parents=True, exist_ok=True)
    for key, model in models.items():
        if not _MODEL_KEY.match(key):
            raise CheckpointError(f"bad model name {key!r}")
        file = out / ("model.safetensors" if key == DEFAULT_MODEL else f"{key}.safetensors")
        state = {k: v.detach().to("cpu", torch.float32).contiguous()
                 for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        blob = save(state)
        atomic_write(file, lambda fh: fh.write(blob))
        entries[key] = {"file": file.name, "sha256": _sha256(file)}
    if DEFAULT_MODEL in entries and len(entries) > 1:
        raise CheckpointError("a checkpoint holds either one default model or per-band models")
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": task,
        "label": label,
        "input_a": get_task(task).role_a,
        "normalisation": normalisation,
        "lambdas": lambdas.as_dict(),
        "models": dict(sorted(entries.items())),
        "provenance": {"software": f"pmgi-gui {__version__}", **(provenance or {})},
        **(extra or {}),
    }
    text = (json.dumps(manifest, indent=2) + "\n").encode()
    atomic_write(out / MANIFEST, lambda fh: fh.write(text))
    return load_checkpoint(out)


# -- registry --------------------------------------------------------------------

def _registry_roots() -> list[Path]:
    return [paths.weights_dir(), paths.user_checkpoints_dir()]


def list_checkpoints(task: str | None = None) -> list[Checkpoint]:
    """Shipped checkpoints (weights/<task>/<name>/) then the user's, valid ones only."""
    found = []
    for root in _registry_roots():
        for manifest in sorted(root.glob(f"{task or '*'}/*/{MANIFEST}")):
            try:
                ckpt = load_checkpoint(manifest.parent)
            except CheckpointError:
                continue
            if task is None or ckpt.task == task:
                found.append(ckpt)
    return found


def find_checkpoint(spec: str | os.PathLike | None, task: str) -> Checkpoint:
    """A checkpoint by folder path, or by name in the registry for ``task``, or
    ``NAME@gG``: NAME's family blended at gradient scale G (``paper@g1.5``).

    Refuses a checkpoint made for another task.
    """
    get_task(task)
    if spec is None:
        spec = get_task(task).default_checkpoint
    path = Path(spec)
    blend = re.fullmatch(r"(.+)@g([0-9]*\.?[0-9]+)", str(spec))
    if blend and not path.exists():
        # NAME@gG: the family of NAME at gradient scale G (see core/family.py).
        from .family import family_for

        member = find_checkpoint(blend.group(1), task)
        family = family_for(member, as_base=True)
        if family is None:
            raise CheckpointError(f"checkpoint {member.name} has no gradient-scaled variants "
                                  f"installed, so {spec!r} cannot be blended")
        return family.at(float(blend.group(2)))
    if path.exists() or os.sep in str(spec) or (os.altsep and os.altsep in str(spec)):
        ckpt = load_checkpoint(path)
    else:
        matches = [c for c in list_checkpoints(task) if c.name == str(spec)]
        if not matches:
            names = ", ".join(c.name for c in list_checkpoints(task)) or "none installed"
            raise CheckpointError(f"no checkpoint named {spec!r} for task {task} "
                                  f"(available: {names}); give a checkpoint folder path instead")
        ckpt = matches[0]
    if ckpt.task != task:
        raise CheckpointError(f"checkpoint {ckpt.name} was made for task {ckpt.task}, not {task}")
    return ckpt


# -- the authors' TensorFlow checkpoints -----------------------------------------

# Our layer name -> (TF scope stem, TF variable suffix).
_TF_LAYERS = {
    "conv1": ("layer1", "1"),
    "conv2": ("layer2", "2"),
    "transfer2": ("layer2_3", "2_3"),
    "conv3": ("layer3", "3"),
    "transfer3": ("layer3_4", "3_4"),
    "conv4": ("layer4", "4"),
}


def _read_official(prefix: str) -> tuple[PMGI, str]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter
    try:
        from tensorflow.train import load_checkpoint as tf_load_checkpoint
    except ImportError:
        raise CheckpointError("reading the authors' TensorFlow checkpoints needs TensorFlow: "
                              "pip install 'pmgi-gui[official]'") from None
    if not Path(prefix + ".index").is_file():
        raise CheckpointError(f"no TensorFlow checkpoint at {prefix} (expected {prefix}.index "
                              "and its .data-* files)")
    try:
        reader = tf_load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except Exception as exc:  # TF raises its own error types
        raise CheckpointError(f"cannot read TensorFlow checkpoint {prefix}: {exc}") from None
    import torch

    from .network import LEVELS, PMGI

    has_bn = "fusion_model/layer1/BatchNorm/moving_mean" in shapes
    # The released test script normalises with each image's own moments and fresh
    # gamma=1, beta=0; checkpoints without BatchNorm variables are plain conv stacks.
    normalisation = "reference" if has_bn else "none"
    model = PMGI(normalisation)
    state = {}

    def get(name):
        if name not in shapes:
            raise CheckpointError(f"{prefix} is not a PMGI checkpoint (no variable {name})")
        return torch.from_numpy(reader.get_tensor(name).copy())

    for path, suffix in (("a", ""), ("b", "_vi")):
        for name in LEVELS:
            scope, n = _TF_LAYERS[name]
            scope = f"fusion_model/{scope}{suffix}"
            # TF stores conv kernels HWIO; PyTorch wants OIHW.
            state[f"{path}.{name}.conv.weight"] = get(f"{scope}/w{n}{suffix}").permute(3, 2, 0, 1)
            state[f"{path}.{name}.conv.bias"] = get(f"{scope}/b{n}{suffix}")
    state["fuse.weight"] = get("fusion_model/layer5/w5").permute(3, 2, 0, 1)
    state["fuse.bias"] = get("fusion_model/layer5/b5")
    state = {k: v.float().contiguous() for k, v in state.items()}
    _check_state(model, state, f"TensorFlow checkpoint {prefix}")
    model.load_state_dict(state)
    return model.eval(), normalisation


def import_official(prefix: str | os.PathLike, task: str, out_dir: str | os.PathLike,
                    band: int | None = None) -> Checkpoint:
    """Convert one of the authors' TensorFlow checkpoints (``.index`` + ``.data-*``)
    to our format. Per-band pan-sharpening checkpoints are gathered into one folder
    by importing each band into the same ``out_dir``."""
    t = get_task(task)
    prefix = str(prefix)
    if prefix.endswith(".index"):
        prefix = prefix[: -len(".index")]
    if band is not None and not 1 <= band <= 99:
        raise CheckpointError(f"band must be between 1 and 99, got {band}")
    if task == "pan-sharpening" and band is None:
        raise CheckpointError("the official pan-sharpening checkpoints are one per band: "
                              "give --band K")
    model, normalisation = _read_official(prefix)
    key = DEFAULT_MODEL if band is None else f"band{band}"
    provenance = {
        "source": "authors' TensorFlow checkpoint (PMGI_AAAI2020, MIT licence)",
        "checkpoint": Path(prefix).name,
        "imported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if band is not None:
        provenance[f"band{band}_checkpoint"] = str(Path(prefix).parent.name) + "/" + Path(prefix).name
    return save_checkpoint(out_dir, {key: model}, task=task, lambdas=t.lambdas,
                           label="official (authors' release)", provenance=provenance,
                           merge=band is not None)
