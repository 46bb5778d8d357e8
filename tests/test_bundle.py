"""The bundle format and the installers' laptop command: build, sign, verify."""

from __future__ import annotations

import pytest
from support import bundles as T

from provisioning import bundle, verify
from provisioning.errors import ProvisionError


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return T.make_source(tmp_path_factory.mktemp("b") / "src", voice_s=6.0, voice_files=2)


def test_build_writes_a_manifest_of_every_file(src, tmp_path):
    out = tmp_path / "bundle"
    entries = bundle.build(src, out)
    paths = sorted(e.path for e in entries)
    assert paths == ["persona.toml", "photo.png", "voice/take1.wav", "voice/take2.wav"]
    parsed = bundle.parse_manifest((out / bundle.MANIFEST).read_bytes())
    assert sorted(parsed, key=lambda e: e.path) == sorted(entries, key=lambda e: e.path)
    vb = verify.verify(out, [])
    assert not vb.signed and vb.photo.name == "photo.png" and len(vb.voices) == 2


def test_signature_round_trip_and_tamper(src, tmp_path):
    key, pub = bundle.keygen(tmp_path / "keys" / "site")
    assert key.stat().st_mode & 0o077 == 0  # the private key is readable by its owner only
    out = tmp_path / "bundle"
    bundle.build(src, out, key=key)
    assert verify.verify(out, [pub]).signed
    data = (out / bundle.MANIFEST).read_bytes()
    sig = (out / bundle.SIGNATURE).read_text()
    assert bundle.verify_signature(data, sig, ["00" * 32, pub])
    assert not bundle.verify_signature(data + b"\n", sig, [pub])
    assert not bundle.verify_signature(data, "zz", [pub])
    with pytest.raises(ProvisionError) as e:
        verify.verify(out, ["11" * 32])
    assert e.value.code == "signature-bad"


@pytest.mark.parametrize("p", ["../x", "/abs", "a/../../b", "voice/./x.wav", "C:/x", "voice//x.wav", ".hidden",
                               "voice/.x.wav", "a\\b"])
def test_unsafe_manifest_paths(p):
    with pytest.raises(ProvisionError) as e:
        verify.check_path(p)
    assert e.value.code == "unsafe-path"


def test_unexpected_files_are_refused(src, tmp_path):
    out = tmp_path / "bundle"
    bundle.build(src, out)
    (out / "run.sh").write_text("#!/bin/sh\nrm -rf /\n")
    entries = bundle.scan(out)
    (out / bundle.MANIFEST).write_bytes(bundle.render_manifest(entries))
    with pytest.raises(ProvisionError) as e:
        verify.verify(out, [])
    assert e.value.code == "unexpected-file" and "run.sh" in e.value.message


def test_cli_keygen_and_build(src, tmp_path, capsys, settings):
    from appliance import cli

    cfg = ["--config", str(settings.paths.config_file)]
    assert cli.main([*cfg, "bundle", "keygen", str(tmp_path / "site")]) == 0
    out = capsys.readouterr().out
    pub = (tmp_path / "site.pub").read_text().strip()
    assert pub in out and "trusted_keys" in out
    dest = tmp_path / "stick" / "bundle"
    assert cli.main([*cfg, "bundle", "build", str(src), str(dest), "--key", str(tmp_path / "site.key")]) == 0
    assert "signed" in capsys.readouterr().out
    assert verify.verify(dest, [pub]).signed


def test_cli_build_reports_problems_in_the_source(tmp_path, capsys, settings):
    from appliance import cli

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "persona.toml").write_text('name = "A"\n')
    (tmp_path / "src" / "notes.txt").write_text("todo")
    rc = cli.main(["--config", str(settings.paths.config_file), "bundle", "build", str(tmp_path / "src"),
                   str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1 and "exactly one photo" in err and "voice" in err and "notes.txt is not part" in err


def test_cli_build_never_replaces_a_folder_that_is_not_a_bundle(src, tmp_path, capsys, settings):
    from appliance import cli

    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "holiday.jpg").write_bytes(b"precious")
    rc = cli.main(["--config", str(settings.paths.config_file), "bundle", "build", str(src), str(stick)])
    assert rc == 1 and "not part of a bundle (holiday.jpg)" in capsys.readouterr().err
    assert (stick / "holiday.jpg").read_bytes() == b"precious"
    assert cli.main(["--config", str(settings.paths.config_file), "bundle", "build", str(src),
                     str(stick / "anna")]) == 0
    assert cli.main(["--config", str(settings.paths.config_file), "bundle", "build", str(src),
                     str(stick / "anna")]) == 0  # rebuilding over an earlier bundle is fine


def test_a_stray_manifest_does_not_make_a_folder_ours_to_delete(src, tmp_path, capsys, settings):
    """A stick's root holding a bundle's manifest.toml among other files: both files survive."""
    from appliance import cli

    dest = tmp_path / "stick"
    (dest / "sub").mkdir(parents=True)
    (dest / "thesis.txt").write_text("four years of work")
    (dest / "sub" / "photos.txt").write_text("list")
    (dest / "manifest.toml").write_bytes(bundle.render_manifest([]))
    rc = cli.main(["--config", str(settings.paths.config_file), "bundle", "build", str(src), str(dest)])
    err = capsys.readouterr().err
    assert rc == 1 and "sub/photos.txt" in err and "thesis.txt" in err
    assert (dest / "thesis.txt").read_text() == "four years of work" and (dest / "sub" / "photos.txt").exists()
    with pytest.raises(bundle.BundleError):                    # the library refuses too, not only the CLI
        bundle.build(src, dest)
    assert (dest / "thesis.txt").exists()


def test_rebuilding_a_bundle_replaces_only_what_it_wrote(src, tmp_path):
    dest = tmp_path / "anna"
    bundle.build(src, dest)
    first = {e.path for e in bundle.scan(dest)}
    bundle.build(src, dest)
    assert {e.path for e in bundle.scan(dest)} == first and not list(tmp_path.glob(".anna.building-*"))
    (dest / "my-notes.txt").write_text("mine")                  # the installer added a file: not ours
    with pytest.raises(bundle.BundleError, match="my-notes.txt"):
        bundle.build(src, dest)
    assert (dest / "my-notes.txt").read_text() == "mine" and (dest / bundle.MANIFEST).is_file()


def test_keygen_never_replaces_a_sites_key(tmp_path, capsys, settings):
    from appliance import cli

    cfg = ["--config", str(settings.paths.config_file)]
    assert cli.main([*cfg, "bundle", "keygen", str(tmp_path / "site")]) == 0
    key = (tmp_path / "site.key").read_bytes()
    capsys.readouterr()
    assert cli.main([*cfg, "bundle", "keygen", str(tmp_path / "site")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "site.key").read_bytes() == key           # the old private key is still there
