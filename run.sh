#!/usr/bin/env bash
# One command from a fresh machine: virtual environment, dependencies, model weights, then
#   ./run.sh serve [voice-agent serve options]   run the server (http://127.0.0.1:8000)
#   ./run.sh test  [pytest options]              checks (ruff, mypy), then the test suite
#   ./run.sh setup                               set up only
# Everything lands inside this folder: .venv/ and models/weights/ (both git-ignored).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=.venv
extra=""
[ "${1:-}" = "test" ] && extra="[test]"

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when the dependency list changed. llama-cpp-python has no binary wheel on
# PyPI: the first install compiles it (about 7 to 13 minutes on 2 cores); pip caches the result.
# It is built for this CPU's vector instructions but without AMX: llama.cpp's default
# (-march=native) emits AMX tile instructions wherever the CPU lists them, and virtual machines
# that list AMX without granting its register state kill the first generation with SIGILL.
if [ -z "${CMAKE_ARGS:-}" ] && [ -r /proc/cpuinfo ]; then
    cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
    CMAKE_ARGS="-DGGML_NATIVE=OFF"
    for pair in avx:AVX avx2:AVX2 bmi2:BMI2 fma:FMA f16c:F16C avx_vnni:AVX_VNNI avx512f:AVX512 \
        avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
        case "$cpu_flags" in *" ${pair%%:*} "*) CMAKE_ARGS="$CMAKE_ARGS -DGGML_${pair##*:}=ON" ;; esac
    done
    export CMAKE_ARGS
fi
stamp="$VENV/.installed$extra"
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing dependencies${extra:+ (with test extras)}"
    # (this machine's pip config names local indexes that lack most packages: hide that noise)
    "$VENV/bin/python" -m pip install --quiet --upgrade pip 2> >(grep -v "is ignored" >&2)
    "$VENV/bin/python" -m pip install --quiet -e ".$extra" 2> >(grep -v "is ignored" >&2)
    echo "$want" > "$stamp"
fi

if [ "${1:-}" = "test" ] && ! command -v chromium >/dev/null 2>&1; then
    # the browser demo test drives Debian's headless Chromium (no browser download at test time)
    echo "==> installing Debian's chromium for the browser test"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if [ "${1:-}" = "test" ] && ! command -v espeak-ng >/dev/null 2>&1; then
    # the scripted callers of `voice-agent bench scenarios` speak with Debian's espeak-ng
    echo "==> installing Debian's espeak-ng for the scripted callers"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng >/dev/null
fi

if [ "${1:-}" = "test" ] && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    # the storage tests start a throwaway PostgreSQL server from Debian's initdb/pg_ctl
    echo "==> installing Debian's postgresql for the storage tests"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

if [ "${1:-}" = "test" ] && ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    # the scale-out test puts Debian's nginx in front of two servers
    echo "==> installing Debian's nginx-light for the scale-out test"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light >/dev/null
fi

echo "==> assembling model weights (checksummed; skipped when present)"
models="whisper-base qwen2.5-coder-1.5b piper-joe-medium"
[ "${1:-}" = "test" ] && models="$models smollm2-135m whisper-tiny.en"
"$VENV/bin/voice-agent" models fetch $models

cmd=${1:-serve}
[ $# -gt 0 ] && shift
case "$cmd" in
    serve) exec "$VENV/bin/voice-agent" serve "$@" ;;
    test)
        rc=0
        whole=1  # a test selection of your own (-m, -k, a path) runs without the checks
        for arg in "$@"; do
            case "$arg" in -m | -m* | -k | -k* | tests* | *.py | *::*) whole=0 ;; esac
        done
        if [ "$whole" = 1 ]; then
            echo "==> checks: ruff (lint, format) and mypy"
            if ! { "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check . && "$VENV/bin/mypy"; }; then
                echo "checks failed: fix what is listed above (the tests did not run)" >&2
                exit 1
            fi
        fi
        "$VENV/bin/python" -m pytest "$@" || rc=$?
        # the latency bench once, quick (1 call, 2 turns, default models), then its floor (the same
        # calls, an instant model): numbers printed, not asserted; its own data folder, so it
        # never touches a running server's database
        echo "==> latency bench, quick mode, with the floor"
        VOICE_AGENT_DATA_DIR="$(mktemp -d)" "$VENV/bin/voice-agent" bench latency --quick --floor \
            --chart var/bench/latency-quick.png || echo "bench: exit $? (not a test failure)"
        # two scripted calls, played and graded like the full scenario bench: printed, not asserted
        echo "==> scenario bench, 2 scripted calls"
        VOICE_AGENT_DATA_DIR="$(mktemp -d)" "$VENV/bin/voice-agent" bench scenarios \
            --file tests/data/scenarios.jsonl --limit 2 || echo "bench: exit $? (not a test failure)"
        exit $rc ;;
    setup) echo "==> ready" ;;
    *) echo "usage: ./run.sh serve|test|setup [options]" >&2; exit 2 ;;
esac
