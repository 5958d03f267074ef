"""Keep the converters' chatter out of the export log, and their real errors and warnings in it.

tf2onnx and the TFLite converter print to stdout and straight to file descriptor 2 from C++: a
TensorSpec dump of every captured variable (Keras's ExportArchive, about 40 lines per TFLite
file), the MLIR quantiser's settings and the TFLite interpreter's delegate notice. None of it is
something a user can act on. ``quiet_converter`` drops exactly those known lines and lets
everything else through after the block, and replays all of it, unfiltered, when the block fails.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from edgehisto.bundle.native_stderr import NativeStderr, native_stderr

# Lines on fd 2 that carry no information for a user (each seen in a real export log).
CHATTER = (
    # the MLIR quantiser echoes its settings on every full-integer conversion
    re.compile(r"^fully_quantize: \d+, inference_type: "),
    # the TFLite interpreter announces its default CPU delegate once per process
    re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"),
)

# TFLite warns when int8 input/output types come without explicit input statistics; the
# representative dataset supplies the quantisation parameters, and the parity gates check the
# int8 file against Keras, so the warning asks nothing of the user.
_INPUT_STATS_WARNING = "Statistics for quantized inputs were expected, but not specified"


def drop_chatter(text: str) -> str:
    """``text`` without the lines that match ``CHATTER``."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not any(pattern.search(line.rstrip("\n")) for pattern in CHATTER))


@contextmanager
def quiet_converter() -> Iterator[None]:
    """Silence converter chatter in the block: Keras export dumps, known fd-2 lines, one TFLite warning.

    Output on fd 2 is held (``bundle.native_stderr``) while the block runs, so it appears after
    the block rather than as it happens; a block that raises gets all of it back, chatter included.
    """
    import keras

    interactive = keras.config.is_interactive_logging_enabled()
    # With interactive logging off, Keras sends its export summaries (the TensorSpec dumps) to
    # absl's INFO level, which is not shown; Keras's own warnings still reach the user.
    keras.config.disable_interactive_logging()
    sys.stdout.flush()  # what was printed before the block stays before what the block held
    held, failed = NativeStderr(), True
    try:
        with native_stderr() as held, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_INPUT_STATS_WARNING)
            yield
            failed = False
    finally:
        shown = held.text if failed else drop_chatter(held.text)
        if shown:
            sys.stderr.write(shown)
            sys.stderr.flush()
        if interactive:
            keras.config.enable_interactive_logging()
