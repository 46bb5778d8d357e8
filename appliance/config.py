"""The kiosk's configuration: one typed schema, loaded once, passed down explicitly.

On the box the file is ``/etc/avatar-kiosk/config.toml``; in a dev checkout it is
``.kiosk/config.toml`` (see :mod:`appliance.paths`). Every field has a default, so an empty
or missing file is a valid configuration. Anything the schema does not accept stops start-up
with one line naming the key, the value and what is accepted (:class:`ConfigError`) — a
technician editing the file over SSH must see exactly what to fix, never a traceback.

Each field carries its documentation in ``metadata["doc"]``; ``avatar-kiosk config --defaults``
prints the whole schema as a commented TOML file, so the docs and the code cannot drift.
"""

# No `from __future__ import annotations` here: the validator reads the real field types.
import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration problem, phrased as the one line a technician needs."""


def _f(default: Any, doc: str, *, choices: tuple | None = None, lo: float | None = None,
       hi: float | None = None) -> Any:
    """A schema field: default, one-line doc, and what values are accepted."""
    meta = {"doc": doc, "choices": choices, "lo": lo, "hi": hi}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class PathsConfig:
    """Where things live. Empty means the default for this kind of install (box or dev checkout)."""

    state_dir: str = _f("", "Profiles, models and the SQLite database (box: /var/lib/avatar-kiosk).")
    cache_dir: str = _f("", "Re-creatable files: cached phrases, face rigs (box: /var/cache/avatar-kiosk).")
    models_dir: str = _f("", "Verified model files, one folder per model id (default: <state_dir>/models).")
    runtime_dir: str = _f("", "The control socket (box: /run/avatar-kiosk).")


@dataclass(frozen=True)
class AudioConfig:
    input_device: str = _f("", "Microphone: a substring of the PortAudio device name; empty = system default.")
    output_device: str = _f("", "Speaker: a substring of the PortAudio device name; empty = system default.")
    output_rate: int = _f(22050, "Playback sample rate in Hz; speech is resampled to it.", lo=8000, hi=96000)
    frame_ms: int = _f(20, "Microphone frame length in ms (webrtcvad accepts 10, 20 or 30).", choices=(10, 20, 30))
    reconnect_s: float = _f(3.0, "Seconds between attempts to reopen a missing microphone or speaker.", lo=0.2, hi=60)
    volume: float = _f(1.0, "Playback gain applied to the kiosk's voice.", lo=0.0, hi=4.0)


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: int = _f(2, "webrtcvad aggressiveness: 0 (lenient) … 3 (strict).", lo=0, hi=3)
    preroll_ms: int = _f(300, "Audio kept from before speech starts, so the first syllable is never cut.", lo=0, hi=2000)
    start_ms: int = _f(120, "Voiced audio needed within the start window to open an utterance.", lo=20, hi=2000)
    end_silence_ms: int = _f(600, "Silence that ends an utterance.", lo=100, hi=5000)
    early_stt_ms: int = _f(200, "Silence after which transcription starts, before end_silence_ms confirms the end "
                           "(thrown away if the visitor goes on); 0 = off.", lo=0, hi=5000)
    min_utterance_ms: int = _f(250, "Utterances shorter than this are dropped as noise blips.", lo=0, hi=5000)
    max_utterance_s: float = _f(15.0, "An utterance is cut here even if the visitor keeps talking.", lo=1, hi=120)
    silero_threshold: float = _f(0.5, "Silero speech probability an utterance must reach (second opinion vs noise); 0 disables.", lo=0.0, hi=1.0)


@dataclass(frozen=True)
class WakeConfig:
    mode: str = _f("open", "open: any speech; wake: a wake word; name: the persona's name in the transcript.",
                   choices=("open", "wake", "name"))
    wake_word: str = _f("okay_nabu", "microWakeWord model used in 'wake' mode.",
                        choices=("okay_nabu", "hey_jarvis", "alexa", "hey_mycroft"))
    followup_s: float = _f(20.0, "After a wake, follow-up turns need no wake word for this long.", lo=0, hi=600)


@dataclass(frozen=True)
class SttConfig:
    engine: str = _f("faster-whisper", "Speech-to-text engine (a registry name).", choices=("faster-whisper",))
    model: str = _f("whisper-base", "Model id from models/manifest.toml.")
    language: str = _f("auto", "auto = choose between the persona's languages; or a fixed 'ru' / 'en'.",
                       choices=("auto", "ru", "en"))
    device: str = _f("cpu", "cpu or cuda.", choices=("cpu", "cuda"))
    compute_type: str = _f("int8", "CTranslate2 compute type (cpu: int8; 3060: int8_float16).",
                           choices=("int8", "int8_float16", "float16", "float32"))
    beam_size: int = _f(1, "Beam size; 1 = greedy, fastest.", lo=1, hi=10)
    window_margin_s: float = _f(5.0, "Seconds of silence the encoder sees after the speech; 0 = whisper's full 30-s "
                                "window (3x slower on a CPU; under ~3 s whisper base starts to loop).", lo=0, hi=30)
    min_confidence: float = _f(-1.0, "Average log-probability below which a transcript is ignored.", lo=-10, hi=0)
    threads: int = _f(2, "CPU threads for the STT engine.", lo=1, hi=64)


@dataclass(frozen=True)
class LlmConfig:
    engine: str = _f("llama-cpp", "Persona LLM engine (a registry name): llama-cpp (the model on this box) or "
                     "openai-server (a shared OpenAI-compatible server: llama.cpp's, vLLM, Ollama; the local "
                     "model stays loaded and answers whenever the server does not).",
                     choices=("llama-cpp", "openai-server"))
    model: str = _f("qwen2.5-coder-1.5b-q4km", "Model id from models/manifest.toml.")
    n_ctx: int = _f(2048, "Context window in tokens.", lo=256, hi=32768)
    n_gpu_layers: int = _f(0, "Layers offloaded to the GPU (-1 = all).", lo=-1, hi=1000)
    threads: int = _f(2, "CPU threads for generation.", lo=1, hi=64)
    max_reply_tokens: int = _f(80, "Hard cap on a reply's length in tokens.", lo=8, hi=1024)
    # 0.3, not 0.6: at 0.6 Qwen2.5-1.5B answered "Какая планета самая большая?" with «Марс» and
    # invented "8 лун" for Jupiter though the sheet says otherwise; at 0.3 it keeps to the sheet.
    temperature: float = _f(0.3, "Sampling temperature (low: the kiosk keeps to its fact sheet).", lo=0.0, hi=2.0)
    repeat_penalty: float = _f(1.3, "Repetition penalty (small models loop without one).", lo=1.0, hi=3.0)
    head_start: bool = _f(True, "Start writing the reply on the early transcript, while the end of speech is still "
                          "being confirmed (dropped if the visitor goes on).")
    server_url: str = _f("", "openai-server: the server's API base, e.g. http://10.0.0.5:8000/v1 (https with "
                         "server_ca_file for a private CA).")
    server_model: str = _f("", "openai-server: the model name sent with each request (vLLM and Ollama need it; "
                           "llama.cpp's server takes any).")
    server_api_key_file: str = _f("", "openai-server: a file holding the API key (Bearer token), readable only by "
                                  "the service (mode 0600 or 0400); empty = no key.")
    server_ca_file: str = _f("", "openai-server: CA certificate (PEM) the https server's certificate must chain "
                             "to; empty = the system's CAs.")
    server_first_token_s: float = _f(1.5, "openai-server: no first word from the server within this long and the "
                                     "local model answers the turn (the most a visitor waits on a dead server).",
                                     lo=0.2, hi=30)
    server_stall_s: float = _f(2.0, "openai-server: the server stops sending for this long mid-reply and the local "
                               "model finishes the reply.", lo=0.2, hi=30)
    server_retry_s: float = _f(10.0, "openai-server: while the server is down, how often it is asked whether it "
                               "is back (turns are answered locally meanwhile).", lo=1, hi=3600)
    history_turns: int = _f(6, "Visitor turns kept in the conversation history.", lo=0, hi=50)
    languages: list = _f(["en", "ru"], "Languages the model can answer in; a turn in another persona language gets "
                         "a fixed, honest reply in that language (set [\"en\"] for an English-only model "
                         "such as SmolLM2-135M).")


@dataclass(frozen=True)
class TtsConfig:
    engine: str = _f("piper-espeak", "Text-to-speech engine (a registry name).", choices=("piper-espeak", "xtts"))
    english_voice: str = _f("piper-joe", "Model id of the English piper voice.")
    russian_voice: str = _f("irina", "Russian voice of the embedded TTS: an RHVoice voice (LGPL; Irina is the clearest) "
                            "or espeak-ng (barely intelligible: the last fallback).",
                            choices=("irina", "anna", "elena", "aleksandr", "espeak-ng"))
    voice_match: bool = _f(True, "Move the embedded voice toward the profile's samples (pitch, rate, timbre).")
    model: str = _f("xtts-v2", "Model id of the cloning TTS (production engine only).")
    device: str = _f("cpu", "cpu or cuda (production engine).", choices=("cpu", "cuda"))


@dataclass(frozen=True)
class FaceConfig:
    engine: str = _f("mesh-warp", "Face animator (a registry name).", choices=("mesh-warp", "neural-lipsync"))
    size: int = _f(512, "Side of the square face image the animator produces, in pixels.", lo=128, hi=1024)
    fps: int = _f(25, "Video frame rate.", lo=10, hi=60)
    lipsync_model: str = _f("lipsync-wav2lip-onnx", "Model id of the neural lip-sync (production engine only).")


@dataclass(frozen=True)
class DisplayConfig:
    sdl_driver: str = _f("", "SDL video driver: empty = SDL's choice; kmsdrm, x11, wayland, dummy (headless).")
    fullscreen: bool = _f(False, "Fullscreen with the cursor hidden (the box sets this true).")
    width: int = _f(720, "Window width when not fullscreen.", lo=160, hi=7680)
    height: int = _f(1280, "Window height when not fullscreen.", lo=160, hi=7680)
    font: str = _f("", "TTF font with Cyrillic; empty = DejaVu Sans from the system.")
    keyboard: bool = _f(True, "Visitors may write instead of speak: a \"Write\" button opens an on-screen keyboard "
                        "(touch screen or mouse; a USB keyboard types into it too).")


@dataclass(frozen=True)
class SessionConfig:
    visitor_gone_s: float = _f(45.0, "Silence after which the visitor counts as gone and history is dropped.", lo=5, hi=3600)
    languages: list = _f(["en", "ru"], "Languages the kiosk may answer in, first = default.")


@dataclass(frozen=True)
class PrivacyConfig:
    store_text: bool = _f(False, "Keep transcripts and replies in the local database.")
    text_retention_days: int = _f(7, "Stored text older than this is deleted.", lo=1, hi=365)
    debug_capture: bool = _f(False, "Write raw visitor audio to the cache folder (technician debugging only).")


@dataclass(frozen=True)
class ProvisioningConfig:
    trusted_keys: list = _f([], "Ed25519 public keys (hex) allowed to sign bundles; empty = unsigned bundles accepted.")
    max_file_mb: int = _f(8192, "Largest single file accepted from a stick, in MiB.", lo=1, hi=65536)
    min_voice_s: float = _f(30.0, "Least speech (pauses not counted) the voice recordings must hold, in seconds.", lo=5, hi=3600)
    auto_detect: bool = _f(True, "Watch for USB sticks and provision from them automatically.")
    ca_file: str = _f("", "CA certificate (PEM) that https bundle servers' certificates must chain to "
                      "(`avatar-kiosk provision https://…`); empty = the system's CAs.")


@dataclass(frozen=True)
class MetricsConfig:
    textfile_dir: str = _f("", "Where the Prometheus text files go (node_exporter's textfile collector reads them); "
                           "empty = /var/lib/prometheus/node-exporter on the box, <state_dir>/metrics in a checkout.")
    interval_s: float = _f(15.0, "How often the kiosk's metrics file is rewritten (and after every turn).",
                           lo=1, hi=3600)
    http_port: int = _f(0, "Also serve the metrics at http://127.0.0.1:PORT/metrics (localhost only, for an agent "
                        "on the box); 0 = off.", lo=0, hi=65535)


@dataclass(frozen=True)
class PresenceConfig:
    """Who is in front of the kiosk, from an optional USB camera (see README, "Camera")."""

    camera: str = _f("", "Camera for presence: empty = none (presence from sound, as before); a V4L2 device "
                     "(\"/dev/video0\" or its index \"0\"); or a video file standing in for one (played on the "
                     "kiosk's audio clock: tests and demos).")
    loop_file: bool = _f(False, "A video file as the camera starts again at its end (its time goes on).")
    fps: float = _f(5.0, "Frames analysed per second (the face detector runs on one CPU thread).", lo=0.5, hi=30)
    min_face: float = _f(0.12, "Close enough to greet: the face's width as a fraction of the picture's "
                         "(~0.12 is about 1.5 m with a 70-degree webcam).", lo=0.01, hi=1.0)
    looking: bool = _f(True, "Greet only a face turned to the screen (not one passing by in profile).")
    max_turn: float = _f(0.35, "How far a face may be turned and still count as looking: the nose's offset "
                         "from the eyes' middle, in eye distances (frontal ~0.05, profile > 0.5).", lo=0.05, hi=2.0)
    min_confidence: float = _f(0.6, "Face detector score needed to count a face.", lo=0.1, hi=0.99)
    confirm_frames: int = _f(2, "Analysed frames in a row with a face before the visitor counts as arrived "
                             "(one false detection greets nobody).", lo=1, hi=30)
    gone_after_s: float = _f(8.0, "No face for this long: the visitor has left (history dropped, captions "
                             "cleared, back to attract).", lo=1, hi=600)
    retry_s: float = _f(5.0, "Seconds between attempts to reopen a missing or failed camera.", lo=0.5, hi=300)
    attract_interval_s: float = _f(60.0, "While nobody is there (camera only), invite people in this often "
                                   "(seconds of quiet); 0 = never.", lo=0, hi=3600)
    attract_en: list = _f(["Hello there! Come closer, I'd love to talk."], "English invitations (one is picked "
                          "in turn; said from the phrase cache).")
    attract_ru: list = _f(["Здравствуйте! Подходите, давайте поговорим."], "Russian invitations.")
    night_hours: list = _f([22, 7], "Local hours [from, until] when the kiosk invites nobody (the same "
                           "hour twice = never quiet).")


@dataclass(frozen=True)
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    wake: WakeConfig = field(default_factory=WakeConfig)
    stt: SttConfig = field(default_factory=SttConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    provisioning: ProvisioningConfig = field(default_factory=ProvisioningConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    presence: PresenceConfig = field(default_factory=PresenceConfig)


def _type_name(tp: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string",
            list: "a list"}.get(tp, getattr(tp, "__name__", str(tp)))


def _check_value(key: str, value: Any, f: dataclasses.Field) -> Any:
    tp = f.type
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    # bool is an int in Python; a TOML `true` must not pass as a number and vice versa.
    if not isinstance(value, tp) or (tp in (int, float) and isinstance(value, bool)):
        raise ConfigError(f"config: {key} = {value!r} is not accepted: expected {_type_name(tp)}")
    if tp is float and not math.isfinite(value):
        raise ConfigError(f"config: {key} = {value!r} is not accepted: expected a finite number")
    meta = f.metadata
    if meta.get("choices") is not None and value not in meta["choices"]:
        accepted = ", ".join(repr(c) for c in meta["choices"])
        raise ConfigError(f"config: {key} = {value!r} is not accepted: one of {accepted}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"config: {key} = {value!r} is out of range: accepted {lo} … {hi}")
    return value


def _build(cls: type, data: dict, prefix: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in fields:
            accepted = ", ".join(sorted(fields))
            raise ConfigError(f"config: unknown key {full!r} (= {value!r}): known keys here are {accepted}")
        f = fields[key]
        if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
            if not isinstance(value, dict):
                raise ConfigError(f"config: {full} = {value!r} is not accepted: expected a [{full}] table")
            kwargs[key] = _build(f.default_factory, value, f"{full}.")
        else:
            kwargs[key] = _check_value(full, value, f)
    return cls(**kwargs)


LANGUAGES = ("en", "ru")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # an id from the manifest, never a path
_HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")              # an Ed25519 public key


def from_dict(data: dict) -> Config:
    """Validate a parsed TOML document into a :class:`Config` (raises :class:`ConfigError`)."""
    cfg = _build(Config, data, "")
    for key, langs in (("session.languages", cfg.session.languages), ("llm.languages", cfg.llm.languages)):
        if not langs or not set(langs) <= set(LANGUAGES):
            raise ConfigError(f"config: {key} = {langs!r} is not accepted: a non-empty list of 'en' and/or 'ru'")
    for key, value in (("stt.model", cfg.stt.model), ("llm.model", cfg.llm.model),
                       ("tts.english_voice", cfg.tts.english_voice), ("tts.model", cfg.tts.model)):
        if ".." in value or not _MODEL_ID.match(value):
            raise ConfigError(f"config: {key} = {value!r} is not accepted: a model id from the model list "
                              "(`avatar-kiosk models list`), not a path")
    for k in cfg.provisioning.trusted_keys:
        if not isinstance(k, str) or not _HEX_KEY.match(k.strip()):
            raise ConfigError(f"config: provisioning.trusted_keys has {k!r}, which is not a public key: each is the "
                              "64-character hex line `avatar-kiosk bundle keygen` printed")
    if cfg.llm.engine == "openai-server" and not re.match(r"^https?://[^/\s]+", cfg.llm.server_url):
        raise ConfigError(f"config: llm.server_url = {cfg.llm.server_url!r} is not accepted: llm.engine = "
                          "'openai-server' needs the server's http:// or https:// address, e.g. http://10.0.0.5:8000/v1")
    hours = cfg.presence.night_hours
    if len(hours) != 2 or not all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 23 for h in hours):
        raise ConfigError(f"config: presence.night_hours = {hours!r} is not accepted: two hours 0…23, [from, until], "
                          "e.g. [22, 7]")
    for key in ("attract_en", "attract_ru"):
        phrases = getattr(cfg.presence, key)
        if not all(isinstance(p, str) and p.strip() for p in phrases):
            raise ConfigError(f"config: presence.{key} = {phrases!r} is not accepted: a list of phrases (text)")
    for name, value in [*((f"paths.{n}", getattr(cfg.paths, n)) for n in ("state_dir", "cache_dir", "models_dir",
                                                                             "runtime_dir")),
                        ("llm.server_api_key_file", cfg.llm.server_api_key_file),
                        ("llm.server_ca_file", cfg.llm.server_ca_file),
                        ("provisioning.ca_file", cfg.provisioning.ca_file),
                        ("metrics.textfile_dir", cfg.metrics.textfile_dir)]:
        if value and not Path(value).is_absolute():
            raise ConfigError(f"config: {name} = {value!r} is not accepted: an absolute path "
                              "(a relative one would depend on the folder the kiosk was started from)")
    return cfg


def load(path: Path | None) -> Config:
    """Load the config file; a missing file means all defaults, anything unreadable is an error."""
    if path is None or not path.exists():
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config: cannot read {path}: {e.__class__.__name__}: {e}") from e
    text = text.removeprefix("\ufeff")  # a byte-order mark from a Windows editor: not part of the TOML
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config: {path} is not valid TOML: {e}") from e
    return from_dict(data)


def replace(cfg: Config, section: str, **changes: Any) -> Config:
    """A copy of ``cfg`` with fields of one section changed (for tests and the CLI's overrides)."""
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **changes)})


def defaults_toml() -> str:
    """The whole schema as a commented TOML file: every key, its default and its doc line."""
    lines = ["# avatar-kiosk configuration. Every key is optional; shown here with its default.", ""]
    for sf in dataclasses.fields(Config):
        lines.append(f"[{sf.name}]")
        for f in dataclasses.fields(sf.default_factory):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            lines.append(f"## {f.metadata['doc']}")
            lines.append(f"# {f.name} = {_toml_value(default)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)
