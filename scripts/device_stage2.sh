#!/usr/bin/env bash
# Stage-2 runs of the quality preset at once on a lent GPU (the `device` tool), after the dataset's
# chunks have been unpacked into /tmp/data (scripts/device_data.py; a chunk carried in this call is
# unpacked first). Usage, in the device call:
#   bash scripts/device_stage2.sh LATENT.pt SPECS [CHUNK]
# LATENT.pt: a stage-1 checkpoint (RUN/latent.pt); SPECS: one run per line, "NAME [key=value ...]".
# Each run's model.pt (as NAME.pt), one log and every run's config.yaml come back under $OUT
# (at most 6 runs: 8 files). DEVICE=cpu runs it without a GPU (a smoke test).
set -u
latent=$1 specs=$2 chunk=${3:-}
. scripts/device_env.sh
[ -n "$chunk" ] && { python3 scripts/device_data.py unpack "$chunk" /tmp/data || exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
mkdir -p /tmp/logs
run() {
    name=$1; shift
    mkdir -p /tmp/runs/$name && cp "$latent" /tmp/runs/$name/latent.pt
    timeout ${LIMIT:-450} python3 -m musiclord.cli train --data /tmp/data --out /tmp/runs/$name --config quality \
        --stage amortized --resume device=${DEVICE:-cuda} num_threads=3 amortized.checkpoint_every=1000 "$@" \
        > /tmp/logs/$name.log 2>&1
    echo "$name rc=$?" >> /tmp/logs/rc.txt
    cp /tmp/runs/$name/model.pt "$OUT/$name.pt" 2>/dev/null
}
t0=$(date +%s)
while read -r line; do [ -n "$line" ] && run $line & done < "$specs"
sleep 45; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
wait
echo "all done in $(( $(date +%s) - t0 )) s"
for f in /tmp/logs/*.log; do echo "== $f"; tr '\r' '\n' < "$f" | grep -v "it/s\]$" | tail -4; done > "$OUT/logs.txt"
for d in /tmp/runs/*/; do echo "== $d"config.yaml; cat "$d"config.yaml; done > "$OUT/configs.txt"
cat /tmp/logs/rc.txt "$OUT/logs.txt"
