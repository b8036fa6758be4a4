"""The one step graph: which step produced which file, what a file depends on, where a run
starts and ends. Recording (pack from the journal), replay (scheduling), history and the exports
all read steps through it.

A file is (path, digest): a path may be written by several steps with different content, so an
input depends on the latest earlier step that wrote that path *with that digest*.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import NotFoundError
from ..format.manifest import Step

__all__ = ["MAX_GROUPS", "StepGraph", "group_names", "group_steps", "rule_of"]

FileKey = tuple[str, str]
MAX_GROUPS = 60
"""More rules than this and runs of digits in step names are folded too."""
_RULE = re.compile(r"^(?P<rule>[^\[\]]+)\[.*\]$", re.DOTALL)


@dataclass
class StepGraph:
    """Steps in recording order, indexed by what they wrote."""

    steps: Sequence[Step]
    _writers: dict[str, list[int]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for i, s in enumerate(self.steps):
            for o in s.outputs:
                self._writers.setdefault(o.path, []).append(i)

    def producer(self, path: str, digest: str | None, before: int | None = None) -> int | None:
        """Index of the latest step before ``before`` (default: all) that wrote ``path`` (with
        ``digest``, when given)."""
        limit = len(self.steps) if before is None else min(before, len(self.steps))
        for i in reversed(self._writers.get(path, ())):
            if i >= limit:
                continue
            if digest is None or any(
                o.path == path and o.digest == digest for o in self.steps[i].outputs
            ):
                return i
        return None

    def closure(self, targets: Sequence[str], *, before: int | None = None) -> list[int]:
        """Indexes of the steps that produced ``targets`` (paths), transitively, in order."""
        end = len(self.steps) if before is None else before
        chosen: set[int] = set()
        todo: list[tuple[str, str | None, int]] = [(p, None, end) for p in targets]
        while todo:
            path, digest, limit = todo.pop()
            i = self.producer(path, digest, limit)
            if i is None:
                if digest is None:
                    raise NotFoundError(
                        "no recorded step produced this output",
                        where=path,
                        hint="`capsa log` (or `capsa ls`) lists what there is",
                    )
                continue  # an original input: no step made it
            if i not in chosen:
                chosen.add(i)
                todo.extend((f.path, f.digest, i) for f in self.steps[i].inputs)
        return sorted(chosen)

    def dependencies(self) -> dict[int, set[int]]:
        """Step j depends on the latest earlier step that wrote one of its inputs."""
        deps: dict[int, set[int]] = {}
        for j, s in enumerate(self.steps):
            found = (self.producer(f.path, f.digest, j) for f in s.inputs)
            deps[j] = {i for i in found if i is not None}
        return deps

    def origins(self, indexes: Sequence[int] | None = None) -> list[FileKey]:
        """(path, digest) of the inputs no earlier (chosen) step produced, in order of first
        use."""
        chosen = range(len(self.steps)) if indexes is None else indexes
        produced: set[FileKey] = set()
        seen: dict[FileKey, None] = {}
        for i in chosen:
            s = self.steps[i]
            for f in s.inputs:
                key = (f.path, f.digest)
                if key not in produced:
                    seen.setdefault(key, None)
            produced.update((f.path, f.digest) for f in s.outputs)
        return list(seen)

    def results(self) -> list[FileKey]:
        """(path, digest) of step outputs no later step read: the run's final results."""
        used_later: set[FileKey] = set()
        out: list[FileKey] = []
        for s in reversed(self.steps):
            for f in reversed(s.outputs):
                key = (f.path, f.digest)
                if key not in used_later and key not in out:
                    out.append(key)
            used_later.update((f.path, f.digest) for f in s.inputs)
        return out[::-1]


def rule_of(name: str) -> str:
    """The rule a step belongs to: ``align[sample=A]`` → ``align``; other names are their own."""
    m = _RULE.match(name)
    return m.group("rule") if m else name


def group_steps(steps: Sequence[Step]) -> dict[str, list[int]]:
    """Step indexes by rule (:func:`group_names` of their names)."""
    return group_names([s.name for s in steps])


def group_names(names: Sequence[str]) -> dict[str, list[int]]:
    """Step indexes by rule, in order of first appearance. Steps named ``rule[wildcards]``
    (Snakemake's job names, capsa's fan-outs) share the group ``rule``; other names are their own
    group, unless that leaves more than MAX_GROUPS groups: then runs of digits fold too
    (``job-001``, ``job-002`` → ``job-#``)."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(rule_of(name), []).append(i)
    if len(groups) > MAX_GROUPS:
        folded: dict[str, list[int]] = {}
        for key, members in groups.items():
            folded.setdefault(re.sub(r"\d+", "#", key), []).extend(members)
        groups = {k: sorted(v) for k, v in folded.items()}
    return groups
