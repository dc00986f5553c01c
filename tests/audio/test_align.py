"""Phone names, classes and per-frame labels (audio/align.py), on hand-made timings, on espeak-ng's
own phoneme events and (when pocketsphinx is installed) on a forced alignment."""

import shutil
import sys

import numpy as np
import pytest

from vasa3d_jax.audio import align
from vasa3d_jax.audio.align import Phone


def test_ipa_and_arpabet_names_share_one_set_of_classes():
    assert align.arpabet("AA1") == ("AA",) and align.arpabet("aɪ") == ("AY",) and align.arpabet("ɑː") == ("AA",)
    assert align.arpabet("tʃ") == ("CH",) and align.arpabet("n̩") == ("N",) and align.arpabet("+NSN+") == ()
    assert [align.phone_class(n) for n in ("m", "M", "p", "B", "ɑː", "AE", "aʊ", "ɔː", "oʊ", "_", "SIL", "t")] == [
        "bilabial", "bilabial", "bilabial", "bilabial", "open_vowel", "open_vowel", "open_vowel",
        "open_vowel", "other", "silence", "silence", "other"]


def test_frame_phones_takes_the_phone_under_each_frame_centre():
    # 25 fps frame centres: 0.02, 0.06, 0.10, 0.14, 0.18, 0.22 s (hand-computed expectations).
    phones = [Phone("_", 0.0, 0.05), Phone("m", 0.05, 0.12), Phone("ɑː", 0.12, 0.20)]
    assert align.frame_phones(phones, 6) == ["_", "m", "m", "ɑː", "ɑː", "SIL"]


def test_transcript_words():
    assert align.transcript_words("Feed'st thy light's flame, 'twas ok!") == [
        "feed'st", "thy", "light's", "flame", "twas", "ok"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (make setup installs it)")
def test_espeak_sentence_frames_follow_its_phoneme_events():
    from vasa3d_jax.motion.synthetic import synthesize

    wav, phonemes = synthesize("mama papa")
    n = -(-len(wav) // 640)
    classes = [align.phone_class(p) for p in align.frame_phones(phonemes, n)]
    # Independent check: a frame is bilabial exactly when its centre lies inside an m/p event.
    centres = (np.arange(n) + 0.5) / 25
    inside = [any(p.start <= t < p.end and p.name in ("m", "p") for p in phonemes) for t in centres]
    assert [c == "bilabial" for c in classes] == inside and sum(inside) >= 4  # m a m a p a p a
    assert "open_vowel" in classes
    assert align.espeak_arpabet("niggarding").split()[:3] == ["N", "IH", "G"]


def test_forced_align_without_pocketsphinx_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)
    with pytest.raises(ImportError, match="pip install"):
        align.forced_align(np.zeros(16000, np.float32), "hello")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (make setup installs it)")
def test_forced_align_finds_the_words_of_a_slow_sentence():
    pytest.importorskip("pocketsphinx")
    from vasa3d_jax.motion.synthetic import synthesize

    wav, phonemes = synthesize("map", rate=110)
    phones = align.forced_align(wav, "map")
    assert [p.name for p in phones if p.name != "SIL"] == ["M", "AE", "P"]
    # pocketsphinx's /m/ overlaps espeak-ng's own /m/ event (an independent timing of the same audio)
    m_ps = next(p for p in phones if p.name == "M")
    m_es = next(p for p in phonemes if p.name == "m")
    assert min(m_ps.end, m_es.end) - max(m_ps.start, m_es.start) > 0
