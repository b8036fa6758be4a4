"""Export a bundle's description to the formats other provenance tools read (`capsa export`).

* :mod:`capsa.export.rocrate` — an RO-Crate 1.1 crate following the Workflow Run RO-Crate
  profiles (Process Run Crate, Workflow Run Crate and Provenance Run Crate 0.5): every step a
  ``CreateAction`` whose ``instrument`` is its SIF image (``ContainerImage``, ``SIFImage``).
* :mod:`capsa.export.intoto` — an in-toto Statement v1 with a SLSA Provenance v1 predicate,
  optionally signed as a DSSE envelope.
* :mod:`capsa.export.prov` — a W3C PROV-JSON document.

Each format is a pure function from an open :class:`~capsa.bundle.Bundle` to a JSON document
(``dict``), plus a writer that never replaces an existing target without ``force``.

Why the documents are built here as plain JSON and not with the ecosystems' libraries
(``rocrate``, ``prov``, ``in-toto-attestation``): those libraries are only needed to *read* the
formats, and each would add a heavy dependency tree (rdflib, networkx, lxml, requests, protobuf…)
to a tool whose runtime needs five packages and must install on bare HPC nodes. The formats
themselves are small, documented JSON. Building them ourselves also keeps them deterministic:
no random identifiers and no clock — the same bundle exports to the same bytes (the libraries
mint UUIDs and stamp the current time; our one exception is an RO-Crate's required
``datePublished`` when the bundle has no ``created`` time and SOURCE_DATE_EPOCH is unset).
The test suite loads
every export with the ecosystem's own library (tests/test_export.py), so "valid" is judged by
them, not by our own parser.
"""

from __future__ import annotations

from .intoto import intoto_statement, write_intoto
from .prov import prov_document, write_prov
from .registry import Exporter, exporter, exporters, register_exporter
from .rocrate import crate_metadata
from .rocrate_files import write_crate

__all__ = [
    "Exporter",
    "crate_metadata",
    "exporter",
    "exporters",
    "intoto_statement",
    "prov_document",
    "register_exporter",
    "write_crate",
    "write_intoto",
    "write_prov",
]
