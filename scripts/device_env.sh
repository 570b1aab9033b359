# Sourced by the scripts that run on a lent GPU machine (device_check.sh, device_stage2.sh): the
# packages its own Python lacks (soundfile, soxr, librosa and their needs) from the wheels carried in
# .whl/, then musiclord's source and the repository (benchmarks/) on the path.
if ! python3 -c "import soundfile, soxr, librosa" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
