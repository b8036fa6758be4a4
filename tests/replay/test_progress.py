"""The live count of replayed steps: drawn on a terminal, silent otherwise; the dashboard's
address is a line of its own unless -q."""

from __future__ import annotations

import io

from capsa.replay.progress import StepProgress
from capsa.replay.report import OutputReport, StepReport


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_done_running_and_not_reproduced() -> None:
    out = Tty()
    p = StepProgress(3, None, out)
    p.started(0)
    p.started(1)
    p.finished(0, StepReport("a", "ok", outputs=[OutputReport("x", "identical", "sha256:")]))
    p.finished(1, StepReport("b", "failed"))
    p.close()
    assert out.getvalue().endswith("\rreplay: 2/3 steps done, 0 running, 1 not reproduced\x1b[K\n")
    assert "1 running" in out.getvalue()


def test_not_a_terminal_or_quiet_draws_nothing() -> None:
    plain = io.StringIO()
    p = StepProgress(1, None, plain)
    p.started(0)
    p.finished(0, StepReport("a", "ok"))
    p.note("Dask dashboard: http://127.0.0.1:1/status")
    p.close()
    assert plain.getvalue() == "Dask dashboard: http://127.0.0.1:1/status\n"
    quiet = Tty()
    q = StepProgress(1, False, quiet)
    q.started(0)
    q.note("Dask dashboard: http://127.0.0.1:1/status")
    q.close()
    assert quiet.getvalue() == ""
