"""Check a frozen bundle (Linux) after build.spec's DROP list took files out of it: no
library that a file still in the bundle links to (ELF NEEDED) may be one that DROP
removed. Libraries the bundle never held (the system's libc, libGL, ...) are not
judged. Needs `readelf` (binutils, which PyInstaller itself needs on Linux).

    python tools/check_bundle_libs.py dist/pmgi-gui
"""

from __future__ import annotations

import ast
import fnmatch
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def drop_patterns(spec: Path = ROOT / "build.spec") -> list[str]:
    """The DROP list of build.spec, read without running the spec."""
    for node in ast.parse(spec.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DROP" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"no DROP list in {spec}")


def needed(path: Path) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True).stdout
    return [line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]


def is_elf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def main(bundle: str) -> int:
    patterns = drop_patterns()
    files = [p for p in Path(bundle).rglob("*") if p.is_file() and not p.is_symlink() and is_elf(p)]
    present = {p.name for p in Path(bundle).rglob("*")}
    problems = []
    for path in files:
        for lib in needed(path):
            if lib not in present and any(fnmatch.fnmatch(lib, p) or fnmatch.fnmatch("x/" + lib, p)
                                          for p in patterns):
                problems.append(f"{path.relative_to(bundle)} needs {lib}, which build.spec drops")
    print(f"checked the linked libraries of {len(files)} ELF files: "
          f"{'all present' if not problems else f'{len(problems)} missing'}")
    for line in problems:
        print("  " + line)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    if not sys.platform.startswith("linux"):
        print("check_bundle_libs: ELF check skipped (not Linux)")
        raise SystemExit(0)
    raise SystemExit(main(sys.argv[1]))
