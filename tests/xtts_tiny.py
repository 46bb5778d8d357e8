"""Build an XTTS checkpoint folder with the real architecture and file layout, at a tiny size.

Same files as coqui/XTTS-v2 (config.json, model.pth, vocab.json), same classes (coqui-tts' Xtts:
GPT-2 text/audio model, HiFi-GAN decoder with its speaker encoder), random weights. ``size="full"``
keeps XTTS-v2's own dimensions (30 layers, 1024 channels) for honest timing of the architecture.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

SPECIALS = ["[STOP]", "[UNK]", "[SPACE]", "[START]", "[en]", "[ru]"]


def write_vocab(path: Path) -> int:
    from tokenizers import Tokenizer, models

    chars = list(string.ascii_lowercase + string.digits + ".,!?'-:;") + [chr(c) for c in range(0x430, 0x450)] + ["ё"]
    vocab = {tok: i for i, tok in enumerate(SPECIALS + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tok.add_special_tokens(SPECIALS)
    tok.save(str(path))
    return len(vocab)


def build(folder: Path, size: str = "tiny") -> Path:
    import torch
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import Xtts, XttsArgs

    folder.mkdir(parents=True, exist_ok=True)
    n_tokens = write_vocab(folder / "vocab.json")
    if size == "tiny":
        dims = {"gpt_layers": 1, "gpt_n_model_channels": 64, "gpt_n_heads": 2, "decoder_input_dim": 64}
    else:
        dims = {"gpt_layers": 30, "gpt_n_model_channels": 1024, "gpt_n_heads": 16, "decoder_input_dim": 1024}
    args = XttsArgs(gpt_number_text_tokens=n_tokens, gpt_start_text_token=SPECIALS.index("[START]"),
                    gpt_stop_text_token=0, gpt_use_perceiver_resampler=True, gpt_max_audio_tokens=80,
                    **dims)
    config = XttsConfig(model_args=args, languages=["en", "ru"])
    model = Xtts.init_from_config(config)
    model.init_models()
    torch.save({"model": model.state_dict()}, folder / "model.pth")
    cfg = config.to_dict()
    (folder / "config.json").write_text(json.dumps(cfg, indent=1, default=str))
    return folder
