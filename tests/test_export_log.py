"""The export log holds what a user needs: converter chatter is dropped, real errors and warnings stay."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="export needs the [train] extra")

CHATTER = "fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8\n"
EDGEHISTO = Path(sys.executable).with_name("edgehisto")


def test_known_chatter_on_fd_2_is_dropped_and_other_lines_pass_through(capfd):
    from edgehisto.export.converter_output import quiet_converter

    with quiet_converter():
        os.write(2, CHATTER.encode())
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"W0000 a converter warning the user must see\n")
    err = capfd.readouterr().err
    assert "fully_quantize" not in err and "XNNPACK" not in err
    assert "a converter warning the user must see" in err


def test_a_failing_block_replays_everything_it_held(capfd):
    from edgehisto.export.converter_output import quiet_converter

    with pytest.raises(RuntimeError), quiet_converter():
        os.write(2, CHATTER.encode())
        raise RuntimeError("conversion failed")
    assert "fully_quantize" in capfd.readouterr().err


def test_keras_interactive_logging_is_restored_after_the_block():
    import keras

    from edgehisto.export.converter_output import quiet_converter

    assert keras.config.is_interactive_logging_enabled()
    with quiet_converter():
        assert not keras.config.is_interactive_logging_enabled()
    assert keras.config.is_interactive_logging_enabled()  # training's progress bar still draws


@pytest.mark.slow
def test_the_export_command_prints_no_tensorspec_dump_and_only_a_few_lines(idc_run, tmp_path):
    done = subprocess.run([str(EDGEHISTO), "export", str(idc_run), "--out", str(tmp_path / "bundle"),
                           "--calibration-images", "16"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    for chatter in ("TensorSpec", "Saved artifact", "fully_quantize", "XNNPACK", "Statistics for quantized inputs"):
        assert chatter not in log, chatter
    # progress lines of one stage and the parity table; the dumps alone were about 90 lines
    assert len(log.splitlines()) <= 30, log
