"""Progress for long jobs: a live bar on a terminal, a few plain lines anywhere else.

``progress_bar`` returns a ``tqdm`` bar when its stream (standard error by default) is a terminal.
Otherwise it returns a ``PlainProgress``, which writes at most about ``lines`` plain lines per bar
(one each time another tenth of the total is done, and a last one when the bar closes), with no
carriage returns, so that a log file holds a readable record instead of thousands of redraws::

    train 30/300 (10%) 12.4s reward/mean=0.132 loss=-0.004

Both accept the calls the project makes: ``update(n)``, ``set_postfix(mapping or **fields)``,
``close()``, use as a context manager, and iteration over an iterable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

PLAIN_LINES = 10


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or stream-like objects without isatty
        return False


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 initial: int = 0, disable: bool = False, file: TextIO | None = None,
                 lines: int = PLAIN_LINES, **tqdm_kwargs: Any):
    """A progress bar over ``total`` units (or over ``iterable``); see the module doc."""
    stream = file if file is not None else sys.stderr
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if _is_terminal(stream) and not disable:
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, initial=initial, file=stream, **tqdm_kwargs)
    return PlainProgress(iterable, total=total, desc=desc, initial=initial, disable=disable, file=stream,
                         lines=lines)


class PlainProgress:
    """Plain-line progress for streams that are not terminals (see the module doc)."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 initial: int = 0, disable: bool = False, file: TextIO | None = None,
                 lines: int = PLAIN_LINES) -> None:
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.n = initial
        self.disable = disable
        self.file = file if file is not None else sys.stderr
        self.lines = max(1, lines)
        self.postfix = ""
        self.started = time.perf_counter()
        self.closed = False
        self._written_at = initial
        self._due = False
        self._next_mark = self._mark_after(initial)

    def _mark_after(self, n: int) -> float:
        """The next count at which a line is due: the next tenth (by ``lines``) of the total."""
        if not self.total:
            return float("inf")
        step = self.total / self.lines
        return (int(n / step) + 1) * step

    def _line(self) -> str:
        done = f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else f"{self.n}"
        text = f"{self.desc} {done} {time.perf_counter() - self.started:.1f}s".strip()
        return f"{text} {self.postfix}".rstrip()

    def _write(self) -> None:
        if self.disable:
            return
        print(self._line(), file=self.file, flush=True)
        self._written_at = self.n

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units. A line that falls due waits for the next ``set_postfix`` (callers
        update, then describe the new state), the next update or ``close``."""
        if self._due:
            self._flush()
        self.n += n
        if self.n >= self._next_mark - 1e-9:
            self._due = True
            self._next_mark = self._mark_after(self.n)

    def _flush(self) -> None:
        self._due = False
        self._write()

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **fields: Any) -> None:
        items = {**(ordered_dict or {}), **fields}
        self.postfix = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items.items())
        if self._due:
            self._flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._due or self.n != self._written_at:  # the last state, unless it was just written
            self._flush()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("this progress bar was made without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()
