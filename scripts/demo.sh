#!/bin/sh
# The main job on a built-in example: make data, pack, sign, verify, list, read in place, extract.
# Usage: sh scripts/demo.sh        (results are left in ./demo-out/)
. "$(dirname "$0")/_install.sh"
cd "$repo"
out=demo-out
rm -rf "$out" && mkdir -p "$out"
set -x
python examples/make_demo_data.py "$out/analysis"
capsa pack -o "$out/analysis.capsa" "$out/analysis" --title "capsa demo analysis" \
    --author "A. Physicist" --license CC-BY-4.0 \
    --role 'analysis/raw.h5=input' --role 'analysis/reco.h5=output'
capsa keygen -o "$out/demo-key"
capsa sign "$out/analysis.capsa" --key "$out/demo-key.key"
capsa ls "$out/analysis.capsa"
capsa verify "$out/analysis.capsa" --key "$out/demo-key.pub"
python -c "import capsa, h5py; b = capsa.open('$out/analysis.capsa'); \
f = h5py.File(b.open_member('analysis/raw.h5'), 'r'); \
print('read in place from the bundle:', f['hits'].shape, f['hits'][:3]['dom_id'])"
capsa extract "$out/analysis.capsa" -C "$out/extracted"
set +x
echo "demo done: bundle at $out/analysis.capsa, extracted copy in $out/extracted/"
