#!/bin/sh
# recover.sh BUNDLE OUTDIR — get every file out of a capsa bundle WITHOUT capsa.
#
# This script is documentation as much as a tool. It is written for someone who, many years from
# now, holds a *.capsa file and nothing else: no capsa, perhaps no Python. It needs only
#
#     unzip      (Info-ZIP; any ZIP reader that knows ZIP64 will do)
#     zstd       (the Zstandard command-line tool; any Zstandard decoder will do)
#     jq         (a JSON reader; any will do)
#     sha256sum, head, mkdir, chmod, mv, wc, tr, grep, mktemp, rm (GNU coreutils or similar)
#
# and a POSIX shell. The format is specified in spec/format.md; what follows is all you need.
#
# WHAT A BUNDLE IS
#   A bundle is an ordinary ZIP file (ZIP64, every entry stored uncompressed by ZIP) holding:
#     mimetype                    the text "application/vnd.capsa.bundle+zip"
#     blobs/sha256/<hex>          a file's bytes, as they are            (encoding "identity")
#     blobs/sha256/<hex>.zst      a file's bytes, Zstandard-compressed   (encoding "zstd-seekable")
#     (nothing)                   a file kept elsewhere, by reference    (encoding "external",
#                                 format 1.3: the manifest lists its URLs, size and SHA-256)
#     manifest.json               a JSON object describing everything
#     signatures/...              optional signatures over manifest.json (not needed to recover)
#   <hex> is the SHA-256 of the file's *uncompressed* bytes, in 64 lowercase hex digits.
#   Identical files are stored once, so several paths may share one blob.
#
#   A ".zst" blob is in the "Zstandard seekable format": a sequence of ordinary Zstandard frames
#   (1 MiB of data each) followed by a table of frame sizes stored in a *skippable* frame. Any
#   Zstandard decoder ignores skippable frames, so plain `zstd -dc` gives back the original bytes.
#
#   manifest.json (abridged):
#     { "capsa": "1.0",                                   format version MAJOR.MINOR
#       "blobs": { "sha256:<hex>": { "encoding": "identity" | "zstd-seekable" | "external",
#                                    "size": <bytes uncompressed>, "stored_size": <bytes in ZIP>,
#                                    "media_type": "...", "urls": [...] (external only) }, ... },
#       "files": { "<logical/path>": { "digest": "sha256:<hex>", "mode": "0644" | "0755",
#                                      "role": "input" | "output" | ... }, ... },
#       "bundle": { "title": ..., "authors": [...], ... },  "steps": [...] }
#
# WHAT THIS SCRIPT DOES, for every entry of manifest.files:
#   1. refuses a path that is absolute or has an empty, "." or ".." segment (it could escape OUTDIR);
#   2. finds the blob entry: blobs/sha256/<hex> or blobs/sha256/<hex>.zst, by the blob's encoding;
#   3. copies it out with `unzip -p` (through `zstd -dc` for .zst), never writing more than the
#      manifest's size + 1 bytes (so a "decompression bomb" cannot fill the disk);
#   4. checks the size and the SHA-256 of what it wrote against the manifest, sets the mode
#      (0644 or 0755) and only then gives the file its name, OUTDIR/<path>.
#   A file whose blob is "external" is not in the bundle: the script prints
#       external PATH SIZE sha256:<hex> URL [URL...]
#   for it (fetch it with curl -fL, aws s3 cp or xrdcp, then check sha256sum), and goes on.
#   It exits 0 only if every file in the bundle was recovered intact; otherwise it names each failure on
#   stderr, carries on with the other files, and exits 1 (2 for a usage error).
#
# Trust: the bundle's SHA-256 digests prove that each recovered file is the one the manifest
# names; whether the manifest itself is authentic is what signatures/ is for (not checked here).
# OUTDIR must not exist yet or be empty, so nothing already in it (e.g. a symbolic link) can
# redirect a write.

set -u

die() { printf 'recover.sh: %s\n' "$*" >&2; exit 2; }

[ $# -eq 2 ] || die "usage: sh recover.sh BUNDLE OUTDIR"
bundle=$1
outdir=$2
for tool in unzip zstd jq sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "needs '$tool' (Debian/Ubuntu: apt-get install unzip zstd jq)"
done
[ -f "$bundle" ] || die "no such file: $bundle"
if [ -e "$outdir" ]; then
    [ -d "$outdir" ] || die "not a directory: $outdir"
    [ -z "$(ls -A "$outdir")" ] || die "OUTDIR must be empty or not exist: $outdir"
fi

work=$(mktemp -d) || die "mktemp failed"
trap 'rm -rf "$work"' EXIT
trap 'exit 130' HUP INT TERM

# -- 1. The names of all entries, one per line (-Z1: "zipinfo" mode, names only). ---------------
# A ZIP file is read from its end, where the directory of entries is. If the end is missing (a
# truncated copy), the entries themselves may still be intact: Info-ZIP's `zip` can rebuild the
# directory by scanning them, and this script then runs on the repaired copy:
#     echo y | zip -FF BUNDLE --out REPAIRED.zip && sh recover.sh REPAIRED.zip OUTDIR
if ! unzip -Z1 "$bundle" > "$work/entries"; then
    die "cannot read the ZIP directory of $bundle (see above); if the file is truncated, try:" \
        "echo y | zip -FF '$bundle' --out REPAIRED.zip, then recover from REPAIRED.zip"
fi
has_entry() { grep -Fqx -- "$1" "$work/entries"; }

# -- 2. The mimetype entry says what this is. ----------------------------------------------------
has_entry mimetype || die "no 'mimetype' entry: not a capsa bundle"
mimetype=$(unzip -p "$bundle" mimetype)
[ "$mimetype" = "application/vnd.capsa.bundle+zip" ] || die "mimetype is '$mimetype', not a capsa bundle"

# -- 3. The manifest. -----------------------------------------------------------------------------
has_entry manifest.json || die "no manifest.json entry"
damaged=0
if ! unzip -p "$bundle" manifest.json > "$work/manifest.json"; then
    # Most likely a CRC-32 error (unzip said so above): the manifest is damaged. Go on anyway,
    # to salvage what can be salvaged: every file is still checked against its SHA-256 below,
    # so a damaged manifest cannot make a wrong file pass. The exit status will be 1.
    printf 'recover.sh: warning: manifest.json is damaged; continuing, the result is suspect\n' >&2
    damaged=1
fi
version=$(jq -r '.capsa' "$work/manifest.json") || die "manifest.json is not JSON"
case $version in
    1.*) ;;  # this script knows format 1.x; a later 1.y only adds optional fields
    *) printf 'recover.sh: warning: format %s, this script was written for 1.x\n' "$version" >&2 ;;
esac
printf 'bundle: %s\nformat: %s\ntitle:  %s\n' "$bundle" "$version" \
    "$(jq -r '.bundle.title // ""' "$work/manifest.json")"

# One line per file: path TAB digest TAB mode TAB encoding TAB size. Logical paths cannot
# contain a TAB, newline or other control character, nor a backslash (spec §2), so this is safe.
jq -r '. as $m | .files | to_entries[]
       | [.key, .value.digest, .value.mode, $m.blobs[.value.digest].encoding,
          ($m.blobs[.value.digest].size | tostring),
          (($m.blobs[.value.digest].urls // []) | join(" "))] | @tsv' \
    "$work/manifest.json" > "$work/files" || die "manifest.json has no usable 'files'"

mkdir -p "$outdir" || die "cannot create $outdir"
tab=$(printf '\t')
failed=0
count=0
external=0
fail() { printf 'recover.sh: FAILED %s: %s\n' "$1" "$2" >&2; failed=$((failed + 1)); }

# -- 4. Each file. ----------------------------------------------------------------------------------
while IFS=$tab read -r path digest mode encoding size urls; do
    count=$((count + 1))
    # 4a. The path must stay inside OUTDIR.
    case $path in
        "" | /*) fail "$path" "absolute or empty path refused"; continue ;;
    esac
    case "/$path/" in
        *//* | */./* | */../*) fail "$path" "path with an empty, '.' or '..' segment refused"; continue ;;
    esac
    # 4b. Which entry holds it.
    hex=${digest#sha256:}
    case $hex in
        *[!0-9a-f]* | "") fail "$path" "bad digest '$digest'"; continue ;;
    esac
    [ ${#hex} -eq 64 ] || { fail "$path" "bad digest '$digest'"; continue; }
    case $encoding in
        external)
            # Not in the bundle (format 1.3): say where it lives and what it must hash to.
            printf 'external %s %s %s %s\n' "$path" "$size" "$digest" "$urls"
            external=$((external + 1))
            continue ;;
        identity) entry="blobs/sha256/$hex" ;;
        zstd-seekable) entry="blobs/sha256/$hex.zst" ;;
        *) fail "$path" "unknown encoding '$encoding'"; continue ;;
    esac
    case $size in
        "" | *[!0-9]*) fail "$path" "bad size '$size'"; continue ;;
    esac
    has_entry "$entry" || { fail "$path" "entry $entry is missing"; continue; }
    # 4c. Copy it out to a temporary name. (`unzip -p` writes an entry's bytes to stdout;
    #     `head -c` stops a stream longer than the manifest says: one byte over is enough.)
    target="$outdir/$path"
    case $path in
        */*) mkdir -p "$outdir/${path%/*}" || { fail "$path" "cannot create its directory"; continue; } ;;
    esac
    tmp="$target.recover-tmp"
    if [ "$encoding" = identity ]; then
        unzip -p "$bundle" "$entry" </dev/null | head -c "$((size + 1))" > "$tmp"
    else
        unzip -p "$bundle" "$entry" </dev/null | zstd -dcq | head -c "$((size + 1))" > "$tmp"
    fi
    # 4d. Check it. (The pipeline's own status is not relied on: a failure anywhere in it shows
    #     up here as a wrong size or digest.) A file that fails is kept as <path>.corrupt, since
    #     damaged bytes may still be worth salvaging, but never under its real name.
    got_size=$(wc -c < "$tmp" | tr -d ' ')
    got=$(sha256sum < "$tmp") && got=${got%% *}
    if [ "$got_size" != "$size" ]; then
        mv -f "$tmp" "$target.corrupt"
        fail "$path" "size $got_size, manifest says $size (kept as $path.corrupt)"
        continue
    fi
    if [ "$got" != "$hex" ]; then
        mv -f "$tmp" "$target.corrupt"
        fail "$path" "sha256 $got, manifest says $hex (kept as $path.corrupt)"
        continue
    fi
    if [ "$mode" = 0755 ]; then chmod 755 "$tmp"; else chmod 644 "$tmp"; fi
    mv -f "$tmp" "$target" || { fail "$path" "cannot rename into place"; continue; }
    printf 'ok  %s\n' "$path"
done < "$work/files"

if [ "$failed" -ne 0 ]; then
    printf 'recover.sh: %d of %d files FAILED\n' "$failed" "$count" >&2
    exit 1
fi
if [ "$damaged" -ne 0 ]; then
    printf 'recover.sh: %d files recovered and checked, but manifest.json was damaged\n' "$count" >&2
    exit 1
fi
printf 'recovered %d files into %s, every SHA-256 checked\n' "$((count - external))" "$outdir"
if [ "$external" -ne 0 ]; then
    printf '%d external files listed above: fetch each from a URL and check its sha256sum\n' "$external"
fi
exit 0
