"""Speech-to-text with faster-whisper (CTranslate2). Blocking: the conversation calls it from the
STT worker thread, and the segment generator is consumed here, in that thread.

Language choice: whisper's own language ID is unreliable on short clips (the base model calls
sub-second Russian English or Polish about half the time), so we only ever choose among the
persona's languages, by comparing their detection probabilities, and for very short clips the
last turn's language wins unless the other one is clearly more likely.

The encoder's window: whisper pads every clip to 30 s, and on 2 cores encoding those 30 s is ~0.45 s
of the ~0.6 s a question takes. CTranslate2 encodes shorter inputs too, so we cut the padded
features to the speech plus ``window_margin_s`` of the padding. On the 40 recorded Russian prompts
of ``bench --wer`` (beam 1): full window 18.6 % WER in 755 ms a prompt; speech + 5 s 18.9 % in
236 ms; speech + 3 s 20.3 %; speech + 0.5 s loops (180 %): whisper needs to see silence after
the words to stop.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..lang import is_cyrillic

SILENT = 1e-4           # peak below this (-80 dBFS): a clip of digital silence
SHORT_CLIP_S = 1.5       # below this, the prior language gets a head start
PRIOR_MARGIN = 3.0       # ...the other language must be this many times likelier to win
# Whisper's stock hallucinations on noise / silence (from its YouTube-subtitle training data).
HALLUCINATIONS = re.compile(
    r"^(thank(s| you)( (so much|very much))?( for watching)?|you|bye|"
    r"продолжение следует|субтитры.*|спасибо за просмотр|редактор субтитров.*)[.!…]*$",
    re.IGNORECASE)


class WhisperSTT:
    def __init__(self, model_dir: Path, *, device: str = "cpu", compute_type: str = "int8", threads: int = 2,
                 beam_size: int = 1, language: str = "auto", window_margin_s: float = 0.0) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(model_dir), device=device, compute_type=compute_type,
                                  cpu_threads=threads, num_workers=1)
        self.beam_size = beam_size
        self.fixed_language = None if language == "auto" else language
        # The persona's names as decoding hints, per language: whisper base hears "I'm Anna" as
        # "Amanda" otherwise, and the wake gate and the self-test listen for exactly those names.
        self.hotwords: dict[str, str] = {}
        # Language detection and decoding both need the encoder's output for the same 30 s window;
        # faster-whisper would compute it twice (~0.3 s each on 2 cores). We run the encoder once
        # and hand the result to the decoder's first encode call.
        self._reuse = None
        self.window_margin_s = window_margin_s
        self._frames: int | None = None  # the encoder's window for the clip being transcribed
        original_encode = self.model.encode

        def encode(features):
            reuse, self._reuse = self._reuse, None
            if reuse is not None:
                return reuse
            if self._frames is not None and features.shape[-1] > self._frames:
                features = np.ascontiguousarray(features[..., : self._frames])
            return original_encode(features)

        self.model.encode = encode

    @classmethod
    def from_settings(cls, settings) -> WhisperSTT:
        from ..models import load_manifest

        cfg = settings.config.stt
        folder = load_manifest(settings.paths.manifest).get(cfg.model).path(settings.paths.models_dir)
        return cls(folder, device=cfg.device, compute_type=cfg.compute_type, threads=cfg.threads,
                   beam_size=cfg.beam_size, language=cfg.language, window_margin_s=cfg.window_margin_s)

    def set_names(self, names: Sequence[str], key_words: Mapping[str, Sequence[str]] | None = None) -> None:
        """Hint the persona's names to the decoder (Cyrillic ones for Russian, the others for
        English), and the fact sheet's own names per language (:meth:`.Knowledge.key_words`)."""
        cyr = [n for n in names if is_cyrillic(n)]
        lat = [n for n in names if n not in cyr]
        extra = key_words or {}
        hints = {"ru": cyr + [w for w in extra.get("ru", ()) if w not in cyr],
                 "en": lat + [w for w in extra.get("en", ()) if w not in lat]}
        # The closing period matters: whisper continues the style of its prompt, and after a bare
        # comma list it wrote the 40 recorded prompts of `bench --wer` with less punctuation and
        # more wrong words (kiosk path 23.0 % WER; with the period 18.6 %, names alone 18.9 %).
        self.hotwords = {lang: ", ".join(ns) + "." for lang, ns in hints.items() if ns}

    def warm(self) -> None:
        """One throw-away decode: CTranslate2's first call is several times slower than the rest."""
        self._frames = self.window_frames(1.0)  # the shapes real clips will have
        try:
            self._decode(np.zeros(16000, np.float32), "en")
        finally:
            self._frames = None

    def choose_language(self, probs: dict[str, float], languages: Sequence[str], prior: str | None,
                        duration: float) -> tuple[str, float]:
        return choose_language(probs, languages, prior, duration)

    def transcribe(self, samples: np.ndarray, languages: Sequence[str], prior: str | None
                   ) -> tuple[str, str, float, float]:
        audio = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples.astype(np.float32)
        duration = len(audio) / 16000.0
        if not audio.size or float(np.max(np.abs(audio))) < SILENT:
            # Digital silence: nothing to hear. (With the short window whisper base once wrote
            # "I'm not going to be a good girl." for 1.5 s of zeros on a fresh clone.)
            return "", (self.fixed_language or (languages[0] if languages else "en")), -10.0, 0.0
        self._frames = self.window_frames(duration)
        try:
            return self._transcribe(audio, duration, languages, prior)
        finally:
            self._frames = None

    def window_frames(self, duration: float) -> int | None:
        """The encoder's input length in 10-ms feature frames for a clip of ``duration`` s; None: 30 s."""
        if self.window_margin_s <= 0:
            return None
        frames = int((duration + self.window_margin_s) * 100)
        return frames if frames < 3000 else None

    def _transcribe(self, audio: np.ndarray, duration: float, languages: Sequence[str], prior: str | None
                    ) -> tuple[str, str, float, float]:
        if self.fixed_language or len(languages) == 1:
            lang = self.fixed_language or languages[0]
            text, logprob = self._decode(audio, lang)
            return text, lang, logprob, 1.0
        from faster_whisper.audio import pad_or_trim

        fe = self.model.feature_extractor
        features = fe(audio)
        encoded = self.model.encode(pad_or_trim(features[..., : fe.nb_max_frames]))  # cut to the window
        probs = {tok[2:-2]: p for tok, p in self.model.model.detect_language(encoded)[0]}
        chosen, p = choose_language(probs, languages, prior, duration)
        self._reuse = encoded if len(audio) <= fe.n_samples else None
        try:
            text, logprob = self._decode(audio, chosen)
        finally:
            self._reuse = None
        return text, chosen, logprob, p

    def _decode(self, audio: np.ndarray, language: str) -> tuple[str, float]:
        # A visitor says about 4 tokens a second; capping the decode stops whisper's looping
        # hallucinations ("the first time I saw the first time I saw…") early and cheaply.
        max_new = int(len(audio) / 16000 * 8) + 12
        segments, _info = self.model.transcribe(
            audio, language=language, beam_size=self.beam_size, vad_filter=False,
            condition_on_previous_text=False, without_timestamps=True, temperature=0.0,
            max_new_tokens=max_new, hotwords=self.hotwords.get(language))
        texts, weights, logprob_sum = [], 0, 0.0
        for seg in segments:  # the generator runs the decoder: consume it here, in the worker thread
            if seg.no_speech_prob > 0.8 and seg.avg_logprob < -0.7:
                continue
            texts.append(seg.text.strip())
            n = max(len(seg.tokens), 1)
            weights += n
            logprob_sum += seg.avg_logprob * n
        text = _drop_restart(" ".join(t for t in texts if t).strip())
        if HALLUCINATIONS.match(text) or _repetitive(text):
            text = ""
        return text, (logprob_sum / weights if weights else -10.0)


def choose_language(probs: dict[str, float], languages: Sequence[str], prior: str | None,
                    duration: float) -> tuple[str, float]:
    """Pick among ``languages`` only; a short clip keeps ``prior`` unless another is clearly likelier."""
    cands = {lang: probs.get(lang, 0.0) for lang in languages}
    best = max(cands, key=cands.get)
    if prior in cands and duration < SHORT_CLIP_S and best != prior and cands[best] < PRIOR_MARGIN * cands[prior]:
        best = prior
    total = sum(cands.values()) or 1.0
    return best, cands[best] / total


def _drop_restart(text: str) -> str:
    """Whisper, given silence after the words, may start the sentence over ("Mars looks red because
    its dust is full of rust. Mars looks red because it's dust" on a fresh clone): a sentence of
    three words or more that repeats the start of an earlier one word for word is cut, with all
    after it. ("Where is the cafe? Where is the toilet?" differs, and stays.)"""
    parts = re.split(r"(?<=[.!?])\s+", text)
    earlier: list[list[str]] = []
    for i, part in enumerate(parts):
        words = re.findall(r"\w+", part.lower())
        if len(words) >= 3 and any(prev[:len(words)] == words for prev in earlier):
            return " ".join(parts[:i])
        earlier.append(words)
    return text


def _repetitive(text: str) -> bool:
    """A looping decode compresses far better than speech does (whisper's own 2.4 threshold)."""
    import zlib

    data = text.encode("utf-8")
    return len(data) > 40 and len(data) / len(zlib.compress(data)) > 2.4
