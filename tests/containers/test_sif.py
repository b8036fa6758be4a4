"""capsa.sif reads Apptainer's own SIF files and checks their DSSE signatures as Apptainer does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from capsa.containers.sif import open_sif
from capsa.errors import FormatError, NotFoundError
from capsa.signing.keys import load_public_key

SIF = Path(__file__).resolve().parents[2] / "fixtures" / "sif"
KEYS = [SIF / "keys" / f"{k}-public.pem" for k in ("ed25519", "rsa", "ecdsa")]


def _open(path: Path):  # type: ignore[no-untyped-def]
    img, close = open_sif(path)
    return img, close


def test_reads_busybox_built_by_apptainer() -> None:
    img, close = _open(SIF / "busybox_amd64.sif")
    try:
        assert img.arch == "amd64"
        assert img.id == "4f307b4c-58a8-4753-9c0f-21dceefed4a6"
        assert [d.type_name for d in img.descriptors] == [
            "Deffile",
            "GenericJSON",
            "GenericJSON",
            "Partition",
            "Signature",
        ]
        prim = img.primary_partition()
        assert prim.offset == 45056
        assert prim.partition() == {"fs_type": "Squashfs", "part_type": "PrimSys", "arch": "amd64"}
        info = img.inspect()
        deffile = next(o for o in info["objects"] if o["type"] == "Deffile")
        assert "From: busybox:1.33.1" in deffile["content"]
    finally:
        close()


@pytest.mark.parametrize(
    ("name", "types"),
    [
        ("empty.sif", []),
        ("one-object-generic-json.sif", ["GenericJSON"]),
        ("one-object-sbom.sif", ["SBOM"]),
        ("one-group.sif", ["Partition", "Partition"]),
        ("two-groups.sif", ["Partition", "Partition", "Partition"]),
    ],
)
def test_reads_generator_images(name: str, types: list[str]) -> None:
    img, close = _open(SIF / name)
    try:
        assert [d.type_name for d in img.descriptors] == types
        assert img.created_at == -62135596800  # Go zero time: the deterministic generator
    finally:
        close()


def test_sbom_format_and_groups() -> None:
    img, close = _open(SIF / "one-object-sbom.sif")
    try:
        assert img.inspect()["objects"][0]["format"] == "cyclonedx-json"
    finally:
        close()
    img, close = _open(SIF / "two-groups.sif")
    try:
        assert [d.group for d in img.descriptors] == [1, 1, 2]
        assert img.descriptors[2].partition()["fs_type"] == "Ext3"
    finally:
        close()


@pytest.mark.parametrize("name", ["empty.sif", "one-object-sbom.sif"])
def test_no_primary_partition_is_a_clear_error(name: str) -> None:
    img, close = _open(SIF / name)
    try:
        with pytest.raises(FormatError, match="no primary system partition"):
            img.primary_partition()
    finally:
        close()


def test_dsse_signature_verifies_with_both_keys() -> None:
    img, close = _open(SIF / "one-group-signed-dsse.sif")
    try:
        for key in KEYS[:2]:
            (res,) = img.verify_signatures([load_public_key(key)])
            assert (res.kind, res.status, res.group, res.verified_objects) == (
                "dsse",
                "valid",
                1,
                [1, 2],
            )
        (res,) = img.verify_signatures([load_public_key(KEYS[2])])  # ecdsa did not sign it
        assert res.status == "unknown-key"
    finally:
        close()


def test_pgp_signatures_are_listed_not_checked() -> None:
    for name, kind in [
        ("one-group-signed-pgp.sif", "pgp"),
        ("one-group-signed-legacy.sif", "legacy"),
        ("busybox_amd64.sif", "pgp"),
    ]:
        img, close = _open(SIF / name)
        try:
            (res,) = img.verify_signatures([load_public_key(KEYS[0])])
            assert (res.kind, res.status) == (kind, "not checked (PGP)")
            assert len(res.keyids[0]) == 40  # the PGP fingerprint from the descriptor
        finally:
            close()


def _signed_copy(tmp_path: Path) -> tuple[bytes, Path]:
    data = (SIF / "one-group-signed-dsse.sif").read_bytes()
    return data, tmp_path / "x.sif"


@pytest.mark.parametrize(
    ("offset", "reason"),
    [
        (0, "header changed"),  # launch script
        (50, "header changed"),  # image ID
        (32768, "object 1: data changed"),  # Raw partition
        (36864 + 2000, "object 2: data changed"),  # squashfs partition
        (4096 + 73, "object 1: descriptor changed"),  # name of descriptor 1
        (4096 + 585 + 201 + 20, "object 2: descriptor changed"),  # extra of descriptor 2
    ],
)
def test_one_flipped_byte_in_any_signed_part_fails(
    tmp_path: Path, offset: int, reason: str
) -> None:
    data, path = _signed_copy(tmp_path)
    mutated = bytearray(data)
    mutated[offset] ^= 0x01
    path.write_bytes(bytes(mutated))
    img, close = _open(path)
    try:
        (res,) = img.verify_signatures([load_public_key(k) for k in KEYS[:2]])
    finally:
        close()
    assert res.status == "invalid"
    assert reason in res.reason


def test_damaged_signature_fails_for_its_key_only(tmp_path: Path) -> None:
    data, path = _signed_copy(tmp_path)
    env_start = data.index(b'"sig":"', data.index(b"BhCwr7qZ")) + 7  # the RSA signature
    mutated = bytearray(data)
    mutated[env_start + 10] = ord("A") if mutated[env_start + 10] != ord("A") else ord("B")
    path.write_bytes(bytes(mutated))
    img, close = _open(path)
    try:
        (rsa_only,) = img.verify_signatures([load_public_key(KEYS[1])])
        (ed_only,) = img.verify_signatures([load_public_key(KEYS[0])])
    finally:
        close()
    assert (rsa_only.status, rsa_only.reason) == ("invalid", "signature does not verify")
    assert ed_only.status == "valid"


def test_unflipped_modified_time_is_not_signed(tmp_path: Path) -> None:
    """ModifiedAt is excluded from descriptor digests (objects may be touched): still valid."""
    data, path = _signed_copy(tmp_path)
    mutated = bytearray(data)
    mutated[4096 + 49] ^= 0x01  # descriptor 1 ModifiedAt
    path.write_bytes(bytes(mutated))
    img, close = _open(path)
    try:
        (res,) = img.verify_signatures([load_public_key(KEYS[0])])
    finally:
        close()
    assert res.status == "valid"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "too short"),
        (b"x" * 200, "bad magic"),
    ],
)
def test_not_a_sif(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "bad.sif"
    p.write_bytes(content)
    with pytest.raises(FormatError, match=message):
        open_sif(p)


def test_truncated_sif_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "t.sif"
    shutil.copy(SIF / "one-group.sif", p)
    with p.open("r+b") as f:
        f.truncate(36864 + 100)
    with pytest.raises(FormatError, match="outside the file"):
        open_sif(p)


def test_missing_sif() -> None:
    with pytest.raises(NotFoundError):
        open_sif("/nonexistent.sif")


# -- writer -----------------------------------------------------------------------------------


def _reread(data: bytes):  # type: ignore[no-untyped-def]
    import io

    from capsa.containers.sif import sif_from_file

    return sif_from_file(io.BytesIO(data), len(data), where="memory")


def test_writer_reproduces_apptainers_generator_images_byte_for_byte() -> None:
    """Given the same objects, capsa's writer makes exactly the files sif's Go generator made."""
    import io
    import struct

    from capsa.containers.sif import SifObject, write_sif

    one = (SIF / "one-group.sif").read_bytes()
    raw = SifObject.partition(one[32768:32772], fs_type="Raw", part_type="System", arch="386")
    squash = SifObject.partition(
        one[36864:40960], fs_type="Squashfs", part_type="PrimSys", arch="386"
    )
    two = (SIF / "two-groups.sif").read_bytes()
    ext3 = SifObject.partition(
        two[40960:], fs_type="Ext3", part_type="System", arch="amd64", group=2
    )
    sbom = (SIF / "one-object-sbom.sif").read_bytes()
    js = (SIF / "one-object-generic-json.sif").read_bytes()
    cases = {
        "empty.sif": [],
        "one-group.sif": [raw, squash],
        "two-groups.sif": [raw, squash, ext3],
        "one-object-sbom.sif": [SifObject("SBOM", sbom[32176:], extra=struct.pack("<i", 1))],
        "one-object-generic-json.sif": [SifObject("GenericJSON", js[32176:], name="data.json")],
    }
    for name, objects in cases.items():
        out = io.BytesIO()
        write_sif(out, objects, launch=b"")  # the generator leaves the launch script empty
        assert out.getvalue() == (SIF / name).read_bytes(), name


def test_written_image_reads_back_with_everything(tmp_path: Path) -> None:
    import io
    import uuid

    from capsa.containers.sif import LAUNCH_SCRIPT, SifObject, write_sif

    squash = (SIF / "one-group.sif").read_bytes()[36864:40960]
    part = tmp_path / "root.sqfs"
    part.write_bytes(squash)  # streamed from a path, as big partitions are
    out = io.BytesIO()
    write_sif(
        out,
        [
            SifObject("Deffile", b"Bootstrap: scratch\n"),
            SifObject("Labels", b'{"org.capsa.test":"1"}'),
            SifObject.partition(part, arch="amd64", name="rootfs"),
        ],
        image_id=uuid.UUID(int=7),
        created_at=1700000000,
    )
    data = out.getvalue()
    assert data.startswith(LAUNCH_SCRIPT)
    img = _reread(data)
    assert (img.arch, img.id, img.created_at) == ("amd64", str(uuid.UUID(int=7)), 1700000000)
    prim = img.primary_partition()
    assert prim.offset % 4096 == 0 and prim.name == "rootfs"
    assert img.read_object(prim) == squash
    info = img.inspect()
    assert [o["type"] for o in info["objects"]] == ["Deffile", "Labels", "Partition"]
    assert info["objects"][0]["content"] == "Bootstrap: scratch\n"
