#!/bin/sh
# The main job, end to end, on real KM3NeT data (km3net-testdata's mupage_ARCA.h5):
# record three analysis steps in a container, pack and sign the bundle, verify it, show the
# history of the result, and replay it — printing the verdicts.
# Usage: sh scripts/demo.sh     (everything is left in ./demo-out/km3net/; safe to run again)
. "$(dirname "$0")/_install.sh"
cd "$repo"
python -m pip install -q --disable-pip-version-check "km3net-testdata>=0.4"
out="$repo/demo-out/km3net"
project="$out/project"
bundle="$out/km3net-analysis.capsa"
mkdir -p "$out/keys"

echo "== 1. the analysis image (python3 + h5py + numpy from Debian; built once, then reused)"
image=$(python fixtures/images/build.py analysis | tail -n 1)
echo "$image"

echo "== 2. a fresh work directory with the real data and the analysis scripts"
rm -rf "$project" && mkdir -p "$project"
data=$(python -c "from km3net_testdata import data_path; print(data_path('hdf5/mupage_ARCA.h5'))")
cp "$data" "$data.prov.json" "$project/"
cp examples/km3net/select_events.py examples/km3net/histogram.py examples/km3net/result.py "$project/"
cd "$project"

echo "== 3. record the steps (each runs in the image; capsa hashes inputs and outputs)"
set -x
capsa run -q --image "$image" --name select \
    --input mupage_ARCA.h5 --input mupage_ARCA.h5.prov.json --input select_events.py \
    --output events.h5 -- python3 select_events.py mupage_ARCA.h5 events.h5
capsa run -q --image "$image" --name histogram --input events.h5 --input histogram.py \
    --output hist.h5 --compare hdf5 --ignore-attr /@kid -- python3 histogram.py events.h5 hist.h5
capsa run -q --image "$image" --name result --input hist.h5 --input result.py \
    --output result.h5 --output zenith.png -- python3 result.py hist.h5 result.h5 zenith.png
capsa log
set +x

echo "== 4. pack the lineage of the result into one signed bundle"
# Reuse the key pair; a pair left half-written by an interrupted run is made anew.
if [ ! -f "$out/keys/analyst.key" ] || [ ! -f "$out/keys/analyst.pub" ]; then
    capsa keygen -q --force -o "$out/keys/analyst"
fi
set -x
capsa pack -o "$bundle" --from-journal result.h5 zenith.png --force \
    --title "ARCA atmospheric muons: energy spectrum and zenith distribution" \
    --author "A. Physicist" --license CC-BY-4.0 --sign "$out/keys/analyst.key"

echo "== 5. verify it (structure, every digest, the signature)"
capsa verify "$bundle" --key "$out/keys/analyst.pub"
capsa show "$bundle" --key "$out/keys/analyst.pub"

echo "== 6. the history of the result"
capsa history "$bundle" result.h5

echo "== 7. replay every step from the bundle alone and compare the outputs"
cd "$out"
capsa replay "$bundle" --key "$out/keys/analyst.pub" --html "$out/report.html" --force
set +x
echo "done: the bundle is $bundle (public key: $out/keys/analyst.pub)"
echo "the report for reviewers (one self-contained HTML page): $out/report.html"
