"""How the CLI draws the library's ``progress(done, total, label)`` reports (``bundle.progress``).

On a terminal: one progress bar per label, redrawn in place. Anywhere else (a log file, a pipe,
CI): a line when a label starts and one when it finishes, so a log holds a few lines per loop
rather than one per batch. Library functions only call the callback; the CLI decides how to draw.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import click

from edgehisto.bundle.progress import Progress


@contextmanager
def progress_reporter(stream=None) -> Iterator[Progress]:
    """Yield a ``progress(done, total, label)`` callback drawing on ``stream`` (default: stderr).

    Reports of one label are expected in increasing ``done``; a new label closes the previous bar.
    """
    stream = stream if stream is not None else click.get_text_stream("stderr")
    on_terminal = stream.isatty()
    current: dict = {"label": None, "shown": 0}
    with ExitStack() as bars:
        def progress(done: int, total: int, label: str) -> None:
            if label != current["label"]:
                bars.close()  # a label left unfinished (an error, a cut-short loop) ends here
                current.update(label=label, shown=0)
                if on_terminal:
                    current["bar"] = bars.enter_context(click.progressbar(length=total, label=label, file=stream))
                else:
                    click.echo(f"{label}: 0/{total}", file=stream)
            if on_terminal:
                current["bar"].update(done - current["shown"])
            current["shown"] = done
            if done >= total:
                # finish now, so the lines the command prints next start on a line of their own
                bars.close()
                current["label"] = None
                if not on_terminal:
                    click.echo(f"{label}: {done}/{total}", file=stream)

        yield progress
