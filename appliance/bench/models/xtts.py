"""Build an XTTS checkpoint folder with the real architecture and file layout, random weights.

Same files as coqui/XTTS-v2 (config.json, model.pth, vocab.json), same classes (coqui-tts' Xtts:
GPT-2 text/audio model with the perceiver conditioning resampler, HiFi-GAN decoder with its speaker
encoder), random weights, loaded by :class:`appliance.engines.tts_xtts.XttsTTS` like the real folder.

* ``size="tiny"``: a 1-layer, 64-channel GPT for fast tests (80 audio tokens at most).
* ``size="full"``: XTTS-v2's own dimensions (30 GPT layers, 1024 channels, 16 heads, 605 audio and
  402 text tokens at most, the same HiFi-GAN decoder) for honest timing of the architecture.

The vocabulary is character-level (ASCII letters, digits, punctuation, Cyrillic): XTTS-v2's real BPE
vocabulary (6681 tokens) makes a sentence about a third as many text tokens, so the conditioning
prefix here is a little longer than in production (a slight overestimate of the first-chunk time).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

SPECIALS = ["[STOP]", "[UNK]", "[SPACE]", "[START]", "[en]", "[ru]"]
SIZES = ("tiny", "full")


def write_vocab(path: Path) -> int:
    from tokenizers import Tokenizer, models

    chars = list(string.ascii_lowercase + string.digits + ".,!?'-:;") + [chr(c) for c in range(0x430, 0x450)] + ["ё"]
    vocab = {tok: i for i, tok in enumerate(SPECIALS + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tok.add_special_tokens(SPECIALS)
    tok.save(str(path))
    return len(vocab)


def build(folder: Path, size: str = "tiny") -> Path:
    """Write config.json, model.pth and vocab.json into ``folder``; returns ``folder``."""
    import torch
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import Xtts, XttsArgs

    if size not in SIZES:
        raise ValueError(f"xtts size must be one of {SIZES}, not {size!r}")
    folder.mkdir(parents=True, exist_ok=True)
    n_tokens = write_vocab(folder / "vocab.json")
    if size == "tiny":
        dims = {"gpt_layers": 1, "gpt_n_model_channels": 64, "gpt_n_heads": 2, "decoder_input_dim": 64,
                "gpt_max_audio_tokens": 80}
    else:  # XTTS-v2 (coqui/XTTS-v2 config.json)
        dims = {"gpt_layers": 30, "gpt_n_model_channels": 1024, "gpt_n_heads": 16, "decoder_input_dim": 1024,
                "gpt_max_audio_tokens": 605, "gpt_max_text_tokens": 402}
    args = XttsArgs(gpt_number_text_tokens=n_tokens, gpt_start_text_token=SPECIALS.index("[START]"),
                    gpt_stop_text_token=0, gpt_use_perceiver_resampler=True, **dims)
    config = XttsConfig(model_args=args, languages=["en", "ru"])
    model = Xtts.init_from_config(config)
    model.init_models()
    tmp = folder / "model.pth.partial"
    torch.save({"model": model.state_dict()}, tmp)
    tmp.replace(folder / "model.pth")
    cfg = config.to_dict()
    (folder / "config.json").write_text(json.dumps(cfg, indent=1, default=str))
    return folder


def is_built(folder: Path) -> bool:
    return all((folder / n).is_file() for n in ("config.json", "model.pth", "vocab.json"))
