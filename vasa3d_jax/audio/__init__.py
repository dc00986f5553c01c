"""Audio front-end: any audio -> 16 kHz mono -> speech features aligned to motion frames.

    wav = load_audio("speech.m4a")              # float32 mono 16 kHz, in [-1, 1]
    enc = whisper_encoder_outputs(wav)          # (T50, 384): Whisper tiny.en's last hidden states, 50 Hz
    feats = speech_features(wav, fps=25)        # (T25, F): what the motion generator consumes

Modules: ``io`` (decoding, mono, resampling, input checks), ``mel`` (Whisper's log-mel),
``ct2`` (a reader for CTranslate2's model.bin), ``whisper`` (the encoder in Flax and its weight
mapping), ``features`` (long-audio windows, the encoder registry, alignment to motion frames).
"""

from vasa3d_jax.audio.ct2 import Ct2Model, read_ct2_model
from vasa3d_jax.audio.features import (
    LogMelFeatures,
    SpeechEncoder,
    WhisperFeatures,
    get_encoder,
    register_encoder,
    resample_frames,
    speech_features,
    whisper_encoder_outputs,
)
from vasa3d_jax.audio.io import DEFAULT_MAX_SECONDS, AudioTooLongError, load_audio, load_speech
from vasa3d_jax.audio.mel import log_mel_spectrogram
from vasa3d_jax.audio.whisper import WhisperEncoder, WhisperEncoderConfig, encode_mel_windows, load_whisper_encoder

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "AudioTooLongError",
    "Ct2Model",
    "LogMelFeatures",
    "SpeechEncoder",
    "WhisperEncoder",
    "WhisperEncoderConfig",
    "WhisperFeatures",
    "encode_mel_windows",
    "get_encoder",
    "load_audio",
    "load_speech",
    "load_whisper_encoder",
    "log_mel_spectrogram",
    "read_ct2_model",
    "register_encoder",
    "resample_frames",
    "speech_features",
    "whisper_encoder_outputs",
]
