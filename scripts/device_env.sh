# Sourced by the scripts that run on a lent GPU machine (device_check.sh, device_stage2.sh): the
# packages its own Python lacks (soundfile, soxr, hypothesis, librosa and their needs) from the
# wheels carried in .whl/, then musiclord's source and the repository (benchmarks/) on the path.
# .whl/ may hold wheels for several Python versions: pip picks, by name, the ones this Python takes.
# It is ignored by git (third-party binaries): pass it in the device call's carry (".whl"). Filled with
#   for v in 310 311 312 313; do pip download --no-deps --only-binary=:all: --python-version $v \
#     --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
#     -d .whl soxr cffi hypothesis; done; pip download --no-deps -d .whl soundfile pycparser sortedcontainers attrs
if ! python3 -c "import soundfile, soxr, hypothesis" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    names=$(ls .whl/*.whl | xargs -n1 basename | cut -d- -f1 | sort -u)
    # shellcheck disable=SC2086
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        --find-links .whl $names || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
