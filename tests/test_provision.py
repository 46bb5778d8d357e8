"""Provisioning from a bundle folder: the good path end to end, and every bad input with its own message
while the active profile stays byte-for-byte unchanged."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from support import bundles as T

from appliance import config as config_mod
from appliance import logs
from appliance.paths import Settings
from provisioning import bundle, derive, pipeline, profiles, staging

STUB = derive.STUB_ENV


@pytest.fixture(scope="module")
def good_src(tmp_path_factory) -> Path:
    """A source folder (photo, 45 s of real speech in three files, persona), built once."""
    return T.make_source(tmp_path_factory.mktemp("src") / "good")


def copy_src(good_src: Path, dest: Path) -> Path:
    shutil.copytree(good_src, dest)
    return dest


def build(src: Path, out: Path, key: Path | None = None) -> Path:
    bundle.build(src, out, key=key)
    return out


@pytest.fixture
def kiosk(settings, good_src, tmp_path, monkeypatch):
    """A kiosk with an active, confirmed profile (provisioned through the light path); yields
    (settings, digest-of-profiles-tree)."""
    monkeypatch.setenv(STUB, "1")
    r = pipeline.provision(settings, build(good_src, tmp_path / "old-bundle"))
    assert r.ok, r.message
    profiles.confirm(settings.paths)
    monkeypatch.delenv(STUB)
    return settings, T.tree_digest(settings.paths.profiles_dir)


def with_provisioning(settings: Settings, **changes) -> Settings:
    return Settings(config_mod.replace(settings.config, "provisioning", **changes), settings.paths)


def assert_refused(settings: Settings, before: str, bundle_dir: Path, code: str, *words: str, **kw):
    r = pipeline.provision(settings, bundle_dir, **kw)
    assert not r.ok
    assert r.code == code, (r.code, r.message)
    for w in words:
        assert w in r.message, r.message
    assert T.tree_digest(settings.paths.profiles_dir) == before
    assert list(settings.paths.staging_dir.iterdir()) == []
    report = (settings.paths.state_dir / profiles.REPORT).read_text(encoding="utf-8")
    assert "RESULT: FAILED" in report and r.message in report
    return r


# ----------------------------------------------------------------------------- the good path


def test_full_pipeline_on_a_demo_like_bundle(settings, good_src, tmp_path, caplog):
    """Real models: face detection, voice checks, speaker embedding, Real-ESRGAN (the face is 103 px)."""
    b = build(good_src, tmp_path / "bundle")
    seen: list[tuple[str, float]] = []
    with caplog.at_level(logging.INFO):
        r = pipeline.provision(settings, b, lambda s, f: seen.append((s, f)))
    assert r.ok, r.report
    paths = settings.paths
    active = profiles.active(paths)
    assert active is not None and active.name == r.profile_id
    assert profiles.is_complete(active, full=True)
    assert (active / profiles.TRYING).exists()  # on trial until the daemon confirms
    for rel in ("persona.toml", "photo.png", "voice/take1.wav", "derived/voice_reference.wav",
                "derived/speaker_embedding.npy", "derived/photo_enhanced.png", profiles.REPORT):
        assert (active / rel).is_file(), rel
    emb = np.load(active / "derived/speaker_embedding.npy")
    assert emb.shape == (256,) and abs(float(np.linalg.norm(emb)) - 1.0) < 1e-3
    import soundfile as sf

    ref, rate = sf.read(str(active / "derived/voice_reference.wav"))
    assert rate == 16000 and 30.0 <= len(ref) / rate <= 60.0
    from PIL import Image

    with Image.open(active / "derived/photo_enhanced.png") as im:
        assert im.size[0] > 512  # scaled up so the face is ~240 px wide
    # progress: every step, in order, each starting at 0 and ending at 1
    titles = [t for k, t in pipeline.STEPS.items() if k != "download"]  # "download" replaces "copy" for a URL
    order = [s for i, (s, _f) in enumerate(seen) if i == 0 or seen[i - 1][0] != s]
    assert order == titles
    for t in titles:
        fr = [f for s, f in seen if s == t]
        assert fr[0] == 0.0 and fr[-1] == 1.0 and fr == sorted(fr)
    assert "RESULT: OK" in r.report and "Anna" in r.message
    meta = profiles.info(paths, r.profile_id)
    assert meta.files  # every file recorded with its sha256
    rigs = list((paths.cache_dir / "face-rigs").glob("*.npz"))
    assert len(rigs) == 2  # the enhanced photo's and the original's: the animator's first start is a cache hit
    if any("said the greeting" in n for n in r.notes):  # the speech engines are installed
        assert (active / "derived/greeting_en.wav").is_file()
    assert (paths.state_dir / profiles.REPORT).read_text(encoding="utf-8") == r.report
    assert any(getattr(rec, "message_id", None) == logs.PROVISION_OK for rec in caplog.records)
    assert list(paths.staging_dir.iterdir()) == []


def test_new_profile_keeps_previous_for_rollback_and_confirm(kiosk, good_src, tmp_path, monkeypatch):
    settings, _ = kiosk
    paths = settings.paths
    old = profiles.active_id(paths)
    monkeypatch.setenv(STUB, "1")
    r = pipeline.provision(settings, build(good_src, tmp_path / "b2"))
    assert r.ok and r.previous_id == old
    assert profiles.active_id(paths) == r.profile_id
    assert profiles.info(paths, r.profile_id).trying
    assert profiles.confirm(paths) == r.profile_id
    assert not profiles.info(paths, r.profile_id).trying
    assert profiles.rollback(paths) == old
    assert profiles.active_id(paths) == old


def test_signed_bundle_accepted_with_site_key(kiosk, good_src, tmp_path, monkeypatch):
    settings, _ = kiosk
    key, pub = bundle.keygen(tmp_path / "site")
    monkeypatch.setenv(STUB, "1")
    r = pipeline.provision(with_provisioning(settings, trusted_keys=[pub]),
                           build(good_src, tmp_path / "b", key=key))
    assert r.ok, r.message
    assert "signature valid" in r.report


# ----------------------------------------------------------------------------- bad input


def test_stick_pulled_mid_copy(kiosk, good_src, tmp_path):
    settings, before = kiosk
    b = build(good_src, tmp_path / "stick")

    def pull(step: str, frac: float) -> None:
        if step == pipeline.STEPS["copy"] and 0 < frac < 1 and b.exists():
            shutil.rmtree(b)  # the files not yet opened vanish, as when the stick is pulled

    assert_refused(settings, before, b, "stick-removed", "USB stick was removed", on_progress=pull)


def test_stick_read_error_mid_copy(kiosk, good_src, tmp_path, monkeypatch):
    settings, before = kiosk
    b = build(good_src, tmp_path / "stick")
    real_read, calls = os.read, {"n": 0}

    def flaky_read(fd, n):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.EIO, "Input/output error")
        return real_read(fd, n)

    monkeypatch.setattr(staging.os, "read", flaky_read)
    assert_refused(settings, before, b, "stick-removed", "USB stick was removed")


def test_disk_full_during_staging(kiosk, good_src, tmp_path, monkeypatch):
    settings, before = kiosk
    b = build(good_src, tmp_path / "stick")
    real, calls = staging._write_all, {"n": 0}

    def full(fd, data):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(staging, "_write_all", full)
    assert_refused(settings, before, b, "disk-full", "disk is full")


def test_not_enough_free_space_is_seen_before_copying(kiosk, good_src, tmp_path, monkeypatch):
    settings, before = kiosk
    b = build(good_src, tmp_path / "stick")
    monkeypatch.setattr(staging.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 10 << 30, 1 << 20))
    assert_refused(settings, before, b, "disk-full", "free space")


@pytest.mark.parametrize("bad_path", ["../escape.wav", "/etc/passwd", "voice/../../x.wav", "voice\\x.wav"])
def test_manifest_paths_outside_the_bundle(kiosk, good_src, tmp_path, bad_path):
    settings, before = kiosk
    b = build(good_src, tmp_path / "stick")
    entries = bundle.scan(b) + [bundle.Entry(bad_path, 1, "0" * 64)]
    (b / bundle.MANIFEST).write_bytes(bundle.render_manifest(entries))
    assert_refused(settings, before, b, "unsafe-path", repr(bad_path))


def test_symlink_on_the_stick(kiosk, good_src, tmp_path):
    settings, before = kiosk
    b = build(good_src, tmp_path / "stick")
    os.symlink("/etc/passwd", b / "voice" / "take9.wav")
    assert_refused(settings, before, b, "unsafe-file", "voice/take9.wav", "a link")


def test_symlinked_folder_on_the_stick(kiosk, good_src, tmp_path):
    settings, before = kiosk
    b = build(good_src, tmp_path / "stick")
    os.symlink("/etc", b / "models")
    assert_refused(settings, before, b, "unsafe-file", "models", "a link")


def test_device_node_on_the_stick(kiosk, good_src, tmp_path):
    settings, before = kiosk
    b = build(good_src, tmp_path / "stick")
    try:
        os.mknod(b / "voice" / "null.wav", 0o644 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating device nodes needs CAP_MKNOD")
    assert_refused(settings, before, b, "unsafe-file", "voice/null.wav", "device file")


def test_fifo_on_the_stick(kiosk, good_src, tmp_path):
    settings, before = kiosk
    b = build(good_src, tmp_path / "stick")
    os.mkfifo(b / "voice" / "pipe.wav")
    assert_refused(settings, before, b, "unsafe-file", "voice/pipe.wav", "a pipe")


def test_file_over_the_size_limit(kiosk, good_src, tmp_path):
    settings, before = kiosk
    src = copy_src(good_src, tmp_path / "src")
    T.save_speech(src / "voice" / "long.wav", 140.0)  # ~2.2 MB at 8 kHz
    b = build(src, tmp_path / "stick")
    assert_refused(with_provisioning(settings, max_file_mb=1), before, b, "too-large", "voice/long.wav", "1 MB")


def test_name_that_is_not_utf8(kiosk, good_src, tmp_path):
    settings, before = kiosk
    b = build(good_src, tmp_path / "stick")
    raw = os.path.join(os.fsencode(b / "voice"), b"take\xff\xfe.wav")
    with open(raw, "wb") as fh:
        fh.write(b"RIFF")
    assert_refused(settings, before, b, "bad-name", "cannot read", "rename it")


def test_file_changed_after_the_manifest_was_built(kiosk, good_src, tmp_path):
    settings, before = kiosk
    b = build(good_src, tmp_path / "stick")
    p = b / "voice" / "take1.wav"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    assert_refused(settings, before, b, "hash-mismatch", "voice/take1.wav", "checksum")


def test_file_not_in_the_manifest(kiosk, good_src, tmp_path):
    settings, before = kiosk
    b = build(good_src, tmp_path / "stick")
    shutil.copyfile(b / "voice" / "take1.wav", b / "voice" / "extra.wav")
    assert_refused(settings, before, b, "not-in-manifest", "voice/extra.wav")


def test_missing_manifest(kiosk, good_src, tmp_path):
    settings, before = kiosk
    b = build(good_src, tmp_path / "stick")
    (b / bundle.MANIFEST).unlink()
    assert_refused(settings, before, b, "manifest-missing", "bundle build")


@pytest.mark.parametrize("kind,code,words", [
    ("none", "no-face", ("No face was found",)),
    ("two", "many-faces", ("The photo shows two faces — use a photo with one person",)),
    ("tiny", "face-too-small", ("pixels wide", "crop the photo closer")),
])
def test_bad_photos(kiosk, good_src, tmp_path, kind, code, words):
    settings, before = kiosk
    src = copy_src(good_src, tmp_path / "src")
    T.save_photo(T.photo(kind), src / "photo.png")
    assert_refused(settings, before, build(src, tmp_path / "stick"), code, *words)


def test_photo_that_does_not_decode(kiosk, good_src, tmp_path):
    settings, before = kiosk
    src = copy_src(good_src, tmp_path / "src")
    (src / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    assert_refused(settings, before, build(src, tmp_path / "stick"), "photo-unreadable", "cannot be opened")


def test_three_seconds_of_voice(kiosk, good_src, tmp_path):
    settings, before = kiosk
    src = copy_src(good_src, tmp_path / "src")
    shutil.rmtree(src / "voice")
    (src / "voice").mkdir()
    T.save_speech(src / "voice" / "short.wav", 3.0)
    assert_refused(settings, before, build(src, tmp_path / "stick"), "voice-too-short",
                   "seconds of speech —", "at least 30 seconds")


@pytest.mark.parametrize("damage", ["truncated", "garbage-header"])
def test_corrupt_wav(kiosk, good_src, tmp_path, damage):
    settings, before = kiosk
    src = copy_src(good_src, tmp_path / "src")
    p = src / "voice" / "take2.wav"
    data = p.read_bytes()
    p.write_bytes(data[:30] if damage == "truncated" else b"RIFX" + os.urandom(40) + data[44:])
    assert_refused(settings, before, build(src, tmp_path / "stick"), "voice-corrupt", "take2.wav", "damaged")


def test_clipped_recordings_are_left_out_and_reported(kiosk, good_src, tmp_path):
    import soundfile as sf

    settings, before = kiosk
    src = copy_src(good_src, tmp_path / "src")
    for p in (src / "voice").glob("*.wav"):
        a, rate = sf.read(str(p), dtype="float32")
        sf.write(str(p), np.clip(a * 40.0, -1, 1), rate, subtype="PCM_16")
    assert_refused(settings, before, build(src, tmp_path / "stick"), "voice-quality", "clipped", "not too loud")


def test_persona_without_a_name(kiosk, good_src, tmp_path):
    settings, before = kiosk
    src = copy_src(good_src, tmp_path / "src")
    (src / "persona.toml").write_text(T.PERSONA.replace('name = "Anna"\n', ""), encoding="utf-8")
    assert_refused(settings, before, build(src, tmp_path / "stick"), "persona", "no 'name'")


def test_persona_with_a_10000_character_style(kiosk, good_src, tmp_path):
    settings, before = kiosk
    src = copy_src(good_src, tmp_path / "src")
    text = T.PERSONA.replace('style = "Warm and brief."', f'style = "{"a" * 10_000}"')
    (src / "persona.toml").write_text(text, encoding="utf-8")
    assert_refused(settings, before, build(src, tmp_path / "stick"), "persona", "'style' is 10000 characters",
                   "keep it under 600")


def test_unsigned_bundle_when_keys_are_configured(kiosk, good_src, tmp_path):
    settings, before = kiosk
    _key, pub = bundle.keygen(tmp_path / "site")
    assert_refused(with_provisioning(settings, trusted_keys=[pub]), before, build(good_src, tmp_path / "stick"),
                   "signature-missing", "only accepts signed bundles")


def test_bundle_signed_with_another_key(kiosk, good_src, tmp_path):
    settings, before = kiosk
    _key, pub = bundle.keygen(tmp_path / "site")
    other, _ = bundle.keygen(tmp_path / "other")
    assert_refused(with_provisioning(settings, trusted_keys=[pub]), before,
                   build(good_src, tmp_path / "stick", key=other), "signature-bad", "does not match")


def test_manifest_changed_after_signing(kiosk, good_src, tmp_path):
    settings, before = kiosk
    key, pub = bundle.keygen(tmp_path / "site")
    b = build(good_src, tmp_path / "stick", key=key)
    (b / bundle.MANIFEST).write_bytes((b / bundle.MANIFEST).read_bytes().replace(b"created", b"created2", 1))
    assert_refused(with_provisioning(settings, trusted_keys=[pub]), before, b, "signature-bad", "does not match")


def test_failure_is_journalled_with_its_code(kiosk, good_src, tmp_path, caplog):
    settings, before = kiosk
    src = copy_src(good_src, tmp_path / "src")
    T.save_photo(T.photo("two"), src / "photo.png")
    with caplog.at_level(logging.WARNING):
        assert_refused(settings, before, build(src, tmp_path / "stick"), "many-faces")
    recs = [r for r in caplog.records if getattr(r, "message_id", None) == logs.PROVISION_FAILED]
    assert recs and recs[0].code == "many-faces"


def test_cli_provision_prints_the_report(kiosk, good_src, tmp_path, capsys):
    from appliance import cli

    settings, before = kiosk
    src = copy_src(good_src, tmp_path / "src")
    (src / "persona.toml").write_text(T.PERSONA.replace('name = "Anna"\n', ""), encoding="utf-8")
    b = build(src, tmp_path / "stick")
    rc = cli.main(["--config", str(settings.paths.config_file), "provision", str(b)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "RESULT: FAILED" in out and "no 'name'" in out
    assert T.tree_digest(settings.paths.profiles_dir) == before


def test_production_weights_on_the_stick_go_to_the_models_folder(kiosk, good_src, models_dir, tmp_path,
                                                                  monkeypatch):
    """faster-whisper-small's vocabulary.txt is byte-identical to whisper-base's: a real production file."""
    settings, before = kiosk
    own_models = tmp_path / "models"
    s2 = Settings(settings.config, dataclasses.replace(settings.paths, models_dir=own_models))
    monkeypatch.setenv(STUB, "1")
    src = copy_src(good_src, tmp_path / "src")
    (src / "models" / "faster-whisper-small").mkdir(parents=True)
    shutil.copyfile(models_dir / "whisper-base" / "vocabulary.txt", src / "models/faster-whisper-small/vocabulary.txt")
    r = pipeline.provision(s2, build(src, tmp_path / "stick"))
    assert r.ok, r.message
    assert any("installed model file faster-whisper-small/vocabulary.txt" in n for n in r.notes)
    from appliance import models as models_mod

    m = models_mod.load_manifest(settings.paths.manifest).get("faster-whisper-small")
    f = next(f for f in m.files if f.name == "vocabulary.txt")
    assert models_mod.check_file(m, f, own_models).ok
    assert not (src / "models").joinpath("x").exists()


@pytest.mark.parametrize("rel,code", [("models/faster-whisper-small/config.json", "model-bad"),
                                      ("models/no-such-model/weights.bin", "model-unknown")])
def test_wrong_or_unknown_weights_on_the_stick(kiosk, good_src, tmp_path, monkeypatch, rel, code):
    settings, before = kiosk
    s2 = Settings(settings.config, dataclasses.replace(settings.paths, models_dir=tmp_path / "models"))
    monkeypatch.setenv(STUB, "1")
    src = copy_src(good_src, tmp_path / "src")
    (src / rel).parent.mkdir(parents=True)
    (src / rel).write_text('{"not": "the model"}')
    assert_refused(s2, before, build(src, tmp_path / "stick"), code, rel)


def test_stick_mount_point_with_the_bundle_in_a_folder(kiosk, good_src, tmp_path, monkeypatch):
    settings, _ = kiosk
    monkeypatch.setenv(STUB, "1")
    stick = tmp_path / "mnt"
    build(good_src, stick / "Anna for the museum")
    (stick / "System Volume Information").mkdir()
    (stick / "notes.txt").write_text("hello")
    r = pipeline.provision(settings, stick)
    assert r.ok, r.message
    assert "bundle folder on the stick: Anna for the museum" in r.report


@pytest.mark.parametrize("layout", ["nothing", "two-bundles", "missing-path"])
def test_stick_without_one_bundle_is_refused_before_copying(kiosk, good_src, tmp_path, layout):
    settings, before = kiosk
    stick = tmp_path / "mnt"
    if layout == "nothing":
        (stick / "holiday photos").mkdir(parents=True)
        T.save_photo(T.photo("one"), stick / "holiday photos" / "me.png")
    elif layout == "two-bundles":
        build(good_src, stick / "a")
        build(good_src, stick / "b")
    r = assert_refused(settings, before, stick, "no-bundle", "No bundle was found on the USB stick")
    assert "copied" not in r.report


def test_source_folder_without_a_manifest(kiosk, good_src, tmp_path):
    settings, before = kiosk
    assert_refused(settings, before, copy_src(good_src, tmp_path / "src"), "manifest-missing",
                   "avatar-kiosk bundle build")


def test_disk_full_while_preparing_the_profile(kiosk, good_src, tmp_path, monkeypatch):
    from provisioning import voice

    settings, before = kiosk
    monkeypatch.setenv(STUB, "1")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(voice, "write_wav", full)
    assert_refused(settings, before, build(good_src, tmp_path / "stick"), "disk-full", "disk filled up")


def test_a_broken_progress_display_does_not_break_provisioning(kiosk, good_src, tmp_path, monkeypatch):
    settings, _ = kiosk
    monkeypatch.setenv(STUB, "1")

    def broken(step, frac):
        raise RuntimeError("screen bug")

    assert pipeline.provision(settings, build(good_src, tmp_path / "stick"), broken).ok


def test_litter_from_other_computers_is_ignored(kiosk, good_src, tmp_path, monkeypatch):
    settings, _ = kiosk
    monkeypatch.setenv(STUB, "1")
    b = build(good_src, tmp_path / "stick")
    (b / "System Volume Information").mkdir()
    (b / "System Volume Information" / "IndexerVolumeGuid").write_bytes(b"x")
    (b / ".Trashes").mkdir()
    (b / ".DS_Store").write_bytes(b"\0" * 10)
    (b / "voice" / "._take1.wav").write_bytes(b"\0" * 10)
    os.symlink("/etc/shadow", b / ".hidden-link")
    r = pipeline.provision(settings, b)
    assert r.ok, r.message


def test_unpinned_lipsync_weights_get_a_site_pin_from_the_bundle(kiosk, good_src, models_dir, tmp_path, monkeypatch):
    """The Wav2Lip ONNX has no published checksum (manifest sha256 "unknown"): the bundle's signed
    checksum list vouches for it, the kiosk records that as the site pin and checks against it."""
    from lipsync_tiny import tiny_wav2lip

    from appliance import models as models_mod
    from appliance.engines.select import resolve

    settings, _ = kiosk
    own = tmp_path / "models"
    own.mkdir()
    manifest = models_mod.load_manifest(settings.paths.manifest)
    for m in manifest.for_tier("embedded"):
        if m.folder(models_dir).exists():
            (own / m.id).symlink_to(m.folder(models_dir), target_is_directory=True)
    s2 = Settings(config_mod.replace(settings.config, "face", engine="neural-lipsync"),
                  dataclasses.replace(settings.paths, models_dir=own))
    m = manifest.get("lipsync-wav2lip-onnx")
    f = m.files[0]
    assert not f.pinned
    _cfg, fallbacks = resolve(s2.config, manifest, own, gpu=False)
    assert "is missing — bring it on a USB bundle" in next(fb.reason for fb in fallbacks if fb.role == "face")

    monkeypatch.setenv(STUB, "1")
    src = copy_src(good_src, tmp_path / "src")
    (src / "models" / m.id).mkdir(parents=True)
    tiny_wav2lip(src / "models" / m.id / f.name)
    r = pipeline.provision(s2, build(src, tmp_path / "stick"))
    assert r.ok, r.message
    assert any("recorded as this site's pin" in n for n in r.notes), r.notes
    installed = m.folder(own) / f.name
    assert models_mod.pin_path(installed).read_text().split()[0] == models_mod.sha256_file(installed)
    assert models_mod.check_file(m, f, own).ok
    cfg, fallbacks = resolve(s2.config, manifest, own, gpu=False)
    assert cfg.face.engine == "neural-lipsync" and "face" not in {fb.role for fb in fallbacks}

    # damaged on disk: the full check (doctor, models verify) names it
    data = bytearray(installed.read_bytes())
    data[-1] ^= 0xFF
    installed.write_bytes(bytes(data))
    st = models_mod.check_file(m, f, own)
    assert st.state == "sha256" and "expected" in st.describe()

    # a new bundle with another export replaces the file and its pin
    tiny_wav2lip(src / "models" / m.id / f.name)
    with open(src / "models" / m.id / f.name, "ab") as fh:
        fh.write(b"\0")  # a different file (trailing bytes; still the same model for this check)
    r = pipeline.provision(s2, build(src, tmp_path / "stick2"))
    assert r.ok, r.message
    assert any(f"installed model file {m.id}/{f.name}" in n for n in r.notes), r.notes
    assert models_mod.check_file(m, f, own).ok


def test_a_killed_provisionings_staging_is_cleared_by_the_next_one(kiosk, good_src, tmp_path):
    settings, before = kiosk
    staging_dir = settings.paths.staging_dir
    left = staging_dir / "job-20261201T000000-999"          # what a kill mid-copy leaves behind
    (left / "voice").mkdir(parents=True)
    (left / "voice" / "take1.wav").write_bytes(b"\0" * 4096)
    b = build(good_src, tmp_path / "stick")
    (b / bundle.MANIFEST).unlink()                          # the next stick is refused, fast
    r = assert_refused(settings, before, b, "manifest-missing")
    assert not left.exists() and any("job-20261201T000000-999" in n for n in r.notes)


def test_a_photo_far_too_big_is_named_too_big_not_damaged(kiosk, good_src, tmp_path):
    """20000×20000 pixels (400 MP): Pillow refuses it before giving its size; the reason is the size."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    settings, before = kiosk
    src = copy_src(good_src, tmp_path / "src")
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
    (src / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IEND", b""))
    assert_refused(settings, before, build(src, tmp_path / "stick"), "photo-too-large",
                   "400 megapixels", "under 40 megapixels")


def test_noise_is_named_as_noise(kiosk, good_src, tmp_path):
    from appliance.audio.wav import write_wav

    settings, before = kiosk
    src = copy_src(good_src, tmp_path / "src")
    shutil.rmtree(src / "voice")
    (src / "voice").mkdir()
    noise = np.random.default_rng(0).normal(0, 0.2, 90 * 16000).astype(np.float32)
    write_wav(src / "voice" / "hall.wav", noise, 16000)
    assert_refused(settings, before, build(src, tmp_path / "stick"), "voice-too-short",
                   "0 seconds of speech", "hall.wav: too much background noise")


@pytest.mark.parametrize("content, words", [(b"", "is empty (0 bytes)"),
                                            (b"these are my notes, not a recording\n", "not a WAV sound file")])
def test_a_wav_that_is_not_audio_gets_a_reason_without_internal_paths(kiosk, good_src, tmp_path, content, words):
    settings, before = kiosk
    src = copy_src(good_src, tmp_path / "src")
    (src / "voice" / "take9.wav").write_bytes(content)
    r = assert_refused(settings, before, build(src, tmp_path / "stick"), "voice-corrupt", "take9.wav", words)
    assert "/" not in r.message and "staging" not in r.message


def test_a_face_too_small_to_detect_is_named_too_small(kiosk, good_src, tmp_path):
    """A face ~20 px wide: the detector misses it at its size; the reason is its size, not "no face"."""
    import cv2

    settings, before = kiosk
    src = copy_src(good_src, tmp_path / "src")
    canvas = np.full((600, 600, 3), 205, np.uint8)
    canvas[260:324, 260:324] = cv2.resize(T.photo("one"), (64, 64), interpolation=cv2.INTER_AREA)
    T.save_photo(canvas, src / "photo.png")
    r = assert_refused(settings, before, build(src, tmp_path / "stick"), "face-too-small", "pixels wide")
    assert "is only" in r.message and int(r.message.split("is only ")[1].split()[0]) < 40
