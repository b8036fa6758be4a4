"""`capsa image build`: a recipe (Debian packages, a hash-pinned pip requirement from a local
wheel, a file, env, labels) builds the same SIF bytes twice; the recipe is the deffile; the
result runs with its env, file and Python distribution; bad recipes are one line."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from capsa.containers.runtime import RunSpec
from capsa.containers.runtime.bwrap import BwrapRuntime
from capsa.containers.runtime.cache import ImageCache
from capsa.format.digest import sha256_file
from conftest import CliResult

pytestmark = pytest.mark.container  # real builds (mmdebstrap) and containers (bwrap)


def _wheel(dest: Path) -> Path:
    """A pure-Python wheel written by hand (no build backend, no index)."""
    files = {
        "capsatoy/__init__.py": b"ANSWER = 42\n",
        "capsatoy-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: capsatoy\nVersion: 1.0\n",
        "capsatoy-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: hand\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={h},{len(data)}")
    record.append("capsatoy-1.0.dist-info/RECORD,,")
    files["capsatoy-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    whl = dest / "capsatoy-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            z.writestr(info, data)
    return whl


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    if shutil.which("mmdebstrap") is None:
        pytest.skip("capsa image build needs mmdebstrap (Debian: apt-get install mmdebstrap)")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    whl = _wheel(wheels)
    (tmp_path / "requirements.txt").write_text(
        f"capsatoy==1.0 --hash=sha256:{sha256_file(whl)[7:]}\n"
    )
    (tmp_path / "config.yaml").write_text("detector: ARCA\n")
    r = tmp_path / "toy.toml"
    r.write_text(
        'suite = "bookworm"\n'
        "epoch = 1700000000\n"
        "[pip]\n"
        'requirements = "requirements.txt"\n'
        'find_links = "wheels"\n'
        "[files]\n"
        '"/opt/ana/config.yaml" = "config.yaml"\n'
        "[env]\n"
        'CI_BUILD = "1"\n'
        "[labels]\n"
        '"org.km3net.image" = "toy"\n'
    )
    return r


@pytest.mark.slow  # two mmdebstrap builds
def test_a_recipe_builds_the_same_bytes_twice_and_runs(
    recipe: Path, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    a, b = tmp_path / "a.sif", tmp_path / "b.sif"
    r = cli("image", "build", recipe, "-o", a, "--json")
    if r.rc == 6 and "mmdebstrap failed" in r.err:
        pytest.skip(f"mmdebstrap cannot build here (no Debian mirror?): {r.err.strip()}")
    assert r.rc == 0, r.err
    assert json.loads(r.out)["env"] == {"CI_BUILD": "1"}
    assert cli("image", "build", "-q", recipe, "-o", b).rc == 0
    assert a.read_bytes() == b.read_bytes()

    info = json.loads(cli("image", "inspect", a, "--json").out)
    deffile = next(o for o in info["sif"]["objects"] if o["type"] == "Deffile")
    assert deffile["content"] == recipe.read_text()
    assert ["capsatoy", "1.0"] in info["python"]
    names = {n for n, _ in info["packages"]}
    assert {"python3", "python3-pip", "libstdc++6"} <= names
    assert "Debian" in info["os"] and info["labels"]["org.km3net.image"] == "toy"

    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": "/home/capsa"}
    script = "import capsatoy, os; print(capsatoy.ANSWER, os.environ['CI_BUILD'])"
    spec = RunSpec(
        a, sha256_file(a), ("sh", "-c", f'python3 -c "{script}"; cat /opt/ana/config.yaml'),
        env, "/work", work,
    )  # fmt: skip
    res = BwrapRuntime(ImageCache(tmp_path / "cache")).run(spec, work / "out", work / "err")
    assert res.exit_code == 0, (work / "err").read_text()
    assert (work / "out").read_text() == "42 1\ndetector: ARCA\n"


def test_bad_recipes_are_one_line(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    r = cli("image", "build", tmp_path / "none.toml", "-o", tmp_path / "x.sif")
    assert r.rc == 9 and "no such recipe" in r.err
    bad = tmp_path / "bad.toml"
    for text, message in (
        ("suite = [", "not valid TOML"),
        ('packages = ["x"]\n', "needs suite"),
        ('suite = "bookworm"\nflavour = 1\n', "unknown recipe keys: flavour"),
        ('suite = "bookworm"\n[pip]\nrequirements = "req.txt"\n', "without a hash"),
        ('suite = "bookworm"\n[files]\n"rel/path" = "req.txt"\n', "absolute path"),
    ):
        (tmp_path / "req.txt").write_text("numpy==2.0\n")
        bad.write_text(text)
        r = cli("image", "build", bad, "-o", tmp_path / "x.sif")
        assert r.rc == 3 and message in r.err and len(r.err_lines) == 1, (text, r.err)
    assert not (tmp_path / "x.sif").exists()
