# Sourced by demo.sh and test.sh: installs what capsa needs on a fresh Debian machine and
# activates a virtual environment in .venv (Debian's Python refuses system-wide pip installs).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
# Sourced from `sh -c` (no script path in $0): the repository is the current directory.
[ -f "$repo/pyproject.toml" ] || repo=$(pwd)
apt_packages="unzip zstd jq bubblewrap squashfs-tools openssh-client mmdebstrap graphviz chromium xrootd-server squashfs-tools-ng podman runc buildah python3-venv slurmctld slurmd slurm-client munge time hdf5-tools"
missing=""
for tool in unzip zstd jq bwrap unsquashfs mksquashfs ssh-keygen mmdebstrap dot chromium xrootd tar2sqfs podman runc buildah slurmctld slurmd sinfo munged h5diff; do
    command -v "$tool" >/dev/null 2>&1 || missing="yes"
done
# GNU time for benchmarks/bench.py: `command -v time` finds the shell keyword, so probe the file.
[ -x /usr/bin/time ] || missing="yes"
python=${PYTHON:-python3}
"$python" -c "import venv, ensurepip" 2>/dev/null || missing="yes"
if [ -n "$missing" ] && command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    # python3-venv only exists where Python comes from Debian; ignore it elsewhere.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $apt_packages >/dev/null 2>&1 ||
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq unzip zstd jq bubblewrap squashfs-tools openssh-client mmdebstrap graphviz chromium xrootd-server squashfs-tools-ng podman runc buildah slurmctld slurmd slurm-client munge time hdf5-tools
fi
if [ ! -x "$repo/.venv/bin/python" ]; then
    "$python" -m venv "$repo/.venv"
fi
. "$repo/.venv/bin/activate"
python -m pip install -q --disable-pip-version-check -e "$repo[test]"
