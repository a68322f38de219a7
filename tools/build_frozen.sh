#!/usr/bin/env bash
# Build the frozen application (build.spec -> dist/pmgi-gui/) and smoke-test it as a user
# would run it, with no Python around:
#   1. install PyInstaller: the `build` extra of pyproject.toml (read from there)
#   2. build (log: build/pyinstaller.log)
#   3. check that no library a bundled file links to was dropped by build.spec
#   4. dist/pmgi-gui/pmgi-gui --self-test: every shipped checkpoint loads, each task's demo
#      pair fuses, metrics compute (non-zero exit if any task fails)
#   5. launch the window offscreen; it closes by itself (--quit-after); its stderr may
#      hold only the lines listed in EXPECTED_STDERR
# Exits non-zero if any step fails; prints the bundle size and the time of each step.
# Usage: tools/build_frozen.sh        (on a busy machine: nice -n 5 tools/build_frozen.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

# Lines that may appear on stderr of the frozen runs; anything else fails the smoke test.
EXPECTED_STDERR=(
  '^INFO pmgi_gui\.[A-Za-z_.]+: '                          # the application's own log (INFO)
  '^This plugin does not support propagateSizeHints\(\)$'  # Qt's offscreen platform, on restoring geometry
)

now() { echo "$EPOCHREALTIME"; }
elapsed() { python -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
step() { printf '\n== %s\n' "$*"; }
t0=$(now)
failed=()

step "install PyInstaller (the build extra)"
mapfile -t build_reqs < <(python - <<'PY'
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["build"]))
PY
)
pip install -q "${build_reqs[@]}" || exit 1
python -m PyInstaller --version

step "build (build.spec -> dist/pmgi-gui)"
t=$(now)
mkdir -p build
if ! timeout 1800 python -m PyInstaller --noconfirm --distpath dist --workpath build/pyinstaller build.spec \
     > build/pyinstaller.log 2>&1; then
  tail -n 40 build/pyinstaller.log
  echo "build FAILED (full log: build/pyinstaller.log)"
  exit 1
fi
build_s=$(elapsed $t)
size=$(du -sh dist/pmgi-gui | cut -f1)
echo "built in ${build_s} s; dist/pmgi-gui: ${size} on disk ($(du -sh --apparent-size dist/pmgi-gui | cut -f1) apparent)"

step "linked libraries"
python tools/check_bundle_libs.py dist/pmgi-gui || failed+=("linked libraries")

# The frozen runs: no display, their own user folders, no Python environment leaking in.
run_dir=$(mktemp -d)
trap 'rm -rf "$run_dir"' EXIT
mkdir -m 700 "$run_dir/xdg"
frozen() {
  # A UTF-8 locale, as a desktop has: under "C", Qt warns on stderr that it switched to C.UTF-8.
  env -u PYTHONPATH -u PYTHONHOME LC_ALL=C.UTF-8 QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR="$run_dir/xdg" \
      PMGI_USER_DIR="$run_dir/user" PMGI_CONFIG_DIR="$run_dir/config" \
      timeout 600 dist/pmgi-gui/pmgi-gui "$@"
}
# Prints the stderr lines that match none of EXPECTED_STDERR; returns 1 if there are any.
unexpected_stderr() {
  local pattern args=()
  for pattern in "${EXPECTED_STDERR[@]}"; do args+=(-e "$pattern"); done
  grep -Ev "${args[@]}" "$1" > "$1.unexpected"
  case $? in
    1) return 0 ;;  # every line expected (or none at all)
    0) echo "unexpected stderr:"; sed 's/^/  | /' "$1.unexpected"; return 1 ;;
    *) echo "could not read $1"; return 1 ;;
  esac
}

step "frozen self-test: pmgi-gui --self-test"
t=$(now)
frozen --self-test 2> "$run_dir/selftest.err"
rc=$?
selftest_s=$(elapsed $t)
echo "exit status ${rc} after ${selftest_s} s"
if (( rc != 0 )); then
  echo "stderr:"; sed 's/^/  | /' "$run_dir/selftest.err"
  failed+=("self-test")
else
  unexpected_stderr "$run_dir/selftest.err" || failed+=("self-test stderr")
fi

step "frozen window, offscreen: pmgi-gui --quit-after 0 (start-up to window shown, then closed)"
t=$(now)
frozen --quit-after 0 2> "$run_dir/window0.err"
rc=$?
window_s=$(elapsed $t)
echo "exit status ${rc} after ${window_s} s"
(( rc == 0 )) || failed+=("window launch")
unexpected_stderr "$run_dir/window0.err" || failed+=("window stderr")

step "frozen window, offscreen: pmgi-gui --quit-after 3000 (open 3 s, then closed)"
frozen --quit-after 3000 2> "$run_dir/window.err"
rc=$?
echo "exit status ${rc}"
(( rc == 0 )) || failed+=("window 3 s")
unexpected_stderr "$run_dir/window.err" || failed+=("window 3 s stderr")

step "summary"
echo "build ${build_s} s; bundle ${size}; self-test ${selftest_s} s; window shown and closed ${window_s} s; total $(elapsed $t0) s"
if (( ${#failed[@]} )); then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "frozen build OK"
