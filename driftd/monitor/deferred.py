"""Window steps evaluated on a thread while the consuming thread goes on.

A step's tests read only a frozen copy of the window (:meth:`CountWindow.frozen`), so they run
on the evaluation thread while the next batch is polled, decoded and routed. What depends on
the order of evaluations — the policy, alert ids and payloads, the evaluation line — is
concluded on the consuming thread, in trigger order, when the pipeline hands the batch's lines
out: with the next batch, at a checkpoint, at an idle poll, or at the end of a finite stream.
The lines are exactly those of in-line evaluation, in the same order (tests compare both).

Memory stays bounded: the frozen copies waiting to be evaluated hold at most
:data:`BUDGET_BYTES` (a submit beyond it waits for the oldest evaluation); a computed
evaluation keeps only its result.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from driftd.monitor.evaluate import evaluate
from driftd.monitor.spec import MonitorSpec
from driftd.windows.base import WindowView

BUDGET_BYTES = 16 << 20  # frozen window copies waiting for the evaluation thread

Result = tuple[dict[str, Any], float]  # (evaluation, seconds it took)
Output = tuple[int, Any]  # (trigger position, output line)


class Concludes(Protocol):
    """A version monitor (``driftd.monitor.version``): the in-order end of a step."""

    def conclude(
        self,
        result: Result,
        reference: str | None,
        view: WindowView | None,
        seq: int,
        trigger: int,
        ctx: Any,
        rollback_to: str | None,
    ) -> list[Output]: ...


def _timed(spec: MonitorSpec, view: WindowView) -> Result:
    t0 = time.perf_counter()
    ev = evaluate(spec, view)
    return ev, time.perf_counter() - t0


class Evaluator:
    """The evaluation thread of one pipeline, and its memory budget."""

    def __init__(self, budget_bytes: int | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftd-steps")
        self._budget = BUDGET_BYTES if budget_bytes is None else budget_bytes
        self._lock = threading.Lock()
        self._held = 0
        self._queue: deque[Future[Result]] = deque()

    def submit(self, spec: MonitorSpec, view: WindowView, nbytes: int) -> Future[Result]:
        while self._queue and (self._queue[0].done() or self._held + nbytes > self._budget):
            self._queue.popleft().result()  # over budget: wait for the oldest to be computed
        with self._lock:
            self._held += nbytes
        fut = self._pool.submit(_timed, spec, view)
        fut.add_done_callback(lambda _f: self._release(nbytes))
        self._queue.append(fut)
        return fut

    def _release(self, nbytes: int) -> None:
        with self._lock:
            self._held -= nbytes


class Pending:
    """A step whose tests run on the evaluation thread; :meth:`conclude` finishes it."""

    __slots__ = ("monitor", "ctx", "future", "reference", "seq", "trigger", "rollback_to")

    def __init__(
        self,
        monitor: Concludes,
        ctx: Any,
        future: Future[Result],
        reference: str | None,
        seq: int,
        trigger: int,
        rollback_to: str | None,
    ) -> None:
        self.monitor, self.ctx, self.future, self.reference = monitor, ctx, future, reference
        self.seq, self.trigger, self.rollback_to = seq, trigger, rollback_to

    def conclude(self) -> list[Output]:
        return self.monitor.conclude(
            self.future.result(), self.reference, None, self.seq, self.trigger, self.ctx,
            self.rollback_to,
        )  # fmt: skip


def resolve(lines: Iterable[dict[str, Any] | Pending]) -> list[dict[str, Any]]:
    """The lines with every pending step concluded in place (in order)."""
    out: list[dict[str, Any]] = []
    for line in lines:
        if isinstance(line, Pending):
            out.extend(x for _, x in line.conclude())
        else:
            out.append(line)
    return out
