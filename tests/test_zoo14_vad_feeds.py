"""The feeds the model zoo gives its two newer voice detectors are what each one hears as speech,
and the same front end on near-silence (or noise) is heard as none: the zoo's equivalence
checks then run every layer on the inputs the models are trained for, not on features a wrong
front end (unscaled samples, a missing am.mvn) would make.

Measured: Silero VAD v6 gives 0.65..0.94 at best on the four voiced feeds, 0.02..0.06 on white
noise; FSMN's silence class is below 0.5 on every frame of the voiced feeds and on at most 11 %
of the frames of near-silence (it hears white noise as speech, as FSMN VADs do: not tested).
"""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.backends.onnxruntime import session
from graphopt.realmodels import (
    fetch_model,
    fsmn_feed,
    fsmn_inputs,
    kaldi_fbank,
    silero_v6_feed,
    vad_v6_inputs,
)


@pytest.mark.realmodel
def test_silero_v6_hears_the_voiced_feeds_and_not_noise():
    run = session(str(fetch_model("silero_vad_v6")))
    feeds = vad_v6_inputs(4)
    assert [f["input"].shape for f in feeds] == [(6, 576), (8, 576), (10, 576), (12, 576)]
    # each window starts with the last 64 samples of the one before (faster-whisper's layout)
    batch = feeds[1]["input"]
    assert not batch[0, :64].any() and np.array_equal(batch[1:, :64], batch[:-1, -64:])
    for feed in feeds:
        assert run.run(None, feed)[0].max() > 0.6
    noise = np.random.default_rng(1).normal(0.0, 0.05, 8 * 512).astype(np.float32)
    assert run.run(None, silero_v6_feed(noise))[0].max() < 0.1


@pytest.mark.realmodel
def test_fsmn_hears_the_voiced_feeds_and_not_silence():
    run = session(str(fetch_model("fsmn_vad")))
    for feed in fsmn_inputs(4):
        assert feed["speech"].shape[2] == 400
        silence_probability = run.run(None, feed)[0][0, :, 0]
        assert (silence_probability < 0.5).all()
    quiet = np.random.default_rng(0).normal(0.0, 1e-4, 8000)
    silence_probability = run.run(None, fsmn_feed(quiet))[0][0, :, 0]
    assert (silence_probability < 0.5).mean() <= 0.2


def test_kaldi_fbank_frames_and_a_tone():
    """25 / 10 ms frames, only whole ones (kaldi's snip_edges); a 1 kHz tone's energy peaks in
    the mel bin whose centre is nearest 1 kHz (bin 27 of 80 from 20 Hz to 8 kHz: 1004 Hz)."""
    tone = 10000.0 * np.sin(2 * np.pi * 1000.0 * np.arange(16000) / 16000)
    frames = kaldi_fbank(tone, 16000)
    assert frames.shape == (1 + (16000 - 400) // 160, 80)
    assert set(frames.argmax(axis=1)) == {27}
