"""faster-whisper model folders (CTranslate2) with random weights, loaded by the real STT engine
(:class:`appliance.engines.stt_whisper.WhisperSTT`).

A ``transformers`` ``WhisperForConditionalGeneration`` is initialised at random from a
``WhisperConfig``, saved, and converted with CTranslate2's ``TransformersConverter`` (float16
weights; faster-whisper picks the compute type — int8_float16 on the GPU, int8 on the CPU — at load
time). The tokenizer, vocabulary and the CTranslate2 ``config.json`` (language ids, suppressed
tokens) come from the embedded multilingual whisper folder, which has the same 51865-token
vocabulary as every multilingual whisper; the alignment heads are set for this model's decoder.

* ``size="full"``: whisper-small's dimensions (the production ``faster-whisper-small``): d_model 768,
  12 encoder + 12 decoder layers, 12 heads, ffn 3072, 80 mel bins, 1500 audio / 448 text positions.
* ``size="tiny"``: d_model 64, 2 + 2 layers, 2 heads (same vocabulary), for tests.

Random weights decode garbage, so decoding runs until the engine's token cap: the timing is an
encode plus a full-length capped decode, a fair upper bound for a short utterance.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

SIZES = {
    "tiny": {"d_model": 64, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 2,
             "decoder_attention_heads": 2, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128},
    "full": {"d_model": 768, "encoder_layers": 12, "decoder_layers": 12, "encoder_attention_heads": 12,
             "decoder_attention_heads": 12, "encoder_ffn_dim": 3072, "decoder_ffn_dim": 3072},
}
FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")


def embedded_folder(settings) -> Path:
    """The embedded whisper folder (manifest role ``stt``, tier embedded) the tokenizer comes from."""
    from ...models import load_manifest

    manifest = load_manifest(settings.paths.manifest)
    return manifest.get(manifest.roles["stt"]["embedded"]).path(settings.paths.models_dir)


def is_built(folder: Path) -> bool:
    return all((folder / n).is_file() for n in FILES)


def build(folder: Path, size: str = "tiny", *, tokenizer_from: Path, seed: int = 0) -> Path:
    """Write a faster-whisper folder at ``folder``; ``tokenizer_from`` is a CTranslate2 whisper
    folder with tokenizer.json, vocabulary.txt and config.json (multilingual, 51865 tokens)."""
    import ctranslate2
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    if size not in SIZES:
        raise ValueError(f"whisper size must be one of {tuple(SIZES)}, not {size!r}")
    src_cfg = json.loads((tokenizer_from / "config.json").read_text())
    dims = SIZES[size]
    torch.manual_seed(seed)
    config = WhisperConfig(vocab_size=51865, num_mel_bins=80, max_source_positions=1500, max_target_positions=448,
                           decoder_start_token_id=50258, pad_token_id=50257, bos_token_id=50257,
                           eos_token_id=50257, **dims)
    model = WhisperForConditionalGeneration(config).eval()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-") as tmp:
        hf, out = Path(tmp) / "hf", Path(tmp) / "ct2"
        model.save_pretrained(hf)
        shutil.copy(tokenizer_from / "tokenizer.json", hf / "tokenizer.json")
        ctranslate2.converters.TransformersConverter(str(hf), load_as_float16=True).convert(
            str(out), quantization="float16", force=True)
        # The embedded model's tokenizer files and decoding config (language ids, suppressed tokens)
        for name in ("tokenizer.json", "vocabulary.txt", "preprocessor_config.json"):
            if (tokenizer_from / name).is_file():
                shutil.copy(tokenizer_from / name, out / name)
        (out / "vocabulary.json").unlink(missing_ok=True)
        n_layers, n_heads = dims["decoder_layers"], dims["decoder_attention_heads"]
        cfg = dict(src_cfg, alignment_heads=[[layer, h] for layer in range(n_layers // 2, n_layers)
                                             for h in range(n_heads)])
        (out / "config.json").write_text(json.dumps(cfg, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        out.replace(folder)
    return folder
