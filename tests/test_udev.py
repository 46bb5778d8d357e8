"""USB detection driven by replayed udev events: real pyudev.Device objects built from recorded uevent
properties (``Devices.from_environment``, as a udev RUN program sees them); a folder stands in for the
mounted stick."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pyudev = pytest.importorskip("pyudev")

from provisioning import derive, pipeline, profiles, udev  # noqa: E402
from provisioning import testing as T  # noqa: E402

USB_PART = {  # recorded from a FAT32 stick's first partition
    "ACTION": "add", "SEQNUM": "4242", "SUBSYSTEM": "block", "DEVTYPE": "partition", "DEVNAME": "/dev/sdb1",
    "DEVPATH": "/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb/sdb1",
    "ID_BUS": "usb", "ID_USB_DRIVER": "usb-storage", "ID_FS_TYPE": "vfat", "ID_FS_USAGE": "filesystem",
    "ID_FS_LABEL": "KIOSK", "ID_MODEL": "Flash_Disk", "MAJOR": "8", "MINOR": "17",
}
USB_DISK_WITH_TABLE = {**USB_PART, "SEQNUM": "4241", "DEVTYPE": "disk", "DEVNAME": "/dev/sdb",
                       "DEVPATH": USB_PART["DEVPATH"].rsplit("/", 1)[0], "ID_PART_TABLE_TYPE": "dos",
                       "ID_FS_TYPE": "", "ID_FS_USAGE": "", "MINOR": "16"}
USB_PARTITIONLESS = {**USB_PART, "SEQNUM": "4300", "DEVTYPE": "disk", "DEVNAME": "/dev/sdc",
                     "DEVPATH": "/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host7/target7:0:0/7:0:0:0/block/sdc",
                     "ID_FS_TYPE": "exfat", "MINOR": "32"}
SATA_PART = {**USB_PART, "SEQNUM": "4400", "DEVNAME": "/dev/sda1", "ID_BUS": "ata", "ID_USB_DRIVER": "",
             "DEVPATH": "/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda1"}


def device(monkeypatch, props: dict, action: str = "add"):
    """A real pyudev.Device made from uevent properties, the way udev hands them to a RUN program.

    libudev's ``udev_device_new_from_environment`` parses the C ``environ`` *in place* (it cuts each
    ``KEY=VALUE`` string at the ``=``), so it is pointed at a private, mutable copy for the call and the
    process environment is restored untouched afterwards."""
    import ctypes

    entries = [f"{k}={v}".encode() for k, v in {**props, "ACTION": action}.items() if v]
    bufs = [ctypes.create_string_buffer(e) for e in entries]
    arr = (ctypes.c_char_p * (len(bufs) + 1))(*[ctypes.cast(b, ctypes.c_char_p) for b in bufs], None)
    environ = ctypes.c_void_p.in_dll(ctypes.CDLL(None), "environ")
    saved = environ.value
    environ.value = ctypes.addressof(arr)
    try:
        dev = pyudev.Devices.from_environment(pyudev.Context())
    finally:
        environ.value = saved
    assert dev.action == action and dev.subsystem == "block"
    return dev


class FakeMounter:
    """Maps device nodes to folders that stand in for the mounted file systems."""

    def __init__(self, media: dict[str, Path], log: list) -> None:
        self.media, self.log = media, log

    def mount(self, node: str, fs: str, name: str) -> Path:
        self.log.append(("mount", node, fs))
        if node not in self.media:
            raise OSError("wrong fs type, bad superblock")
        return self.media[node]

    def unmount(self, mp: Path) -> None:
        self.log.append(("unmount", mp))


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setenv(derive.STUB_ENV, "1")


@pytest.fixture(scope="module")
def stick_bundle(tmp_path_factory) -> Path:
    return T.make_bundle(tmp_path_factory.mktemp("usb") / "bundle")


def test_replayed_events_provision_only_usb_file_systems(settings, stub, monkeypatch, tmp_path, stick_bundle):
    media1 = tmp_path / "sdb1"
    shutil.copytree(stick_bundle, media1)             # bundle at the top level
    media2 = tmp_path / "sdc"
    shutil.copytree(stick_bundle, media2 / "Anna kiosk")  # bundle as the only folder
    (media2 / "System Volume Information").mkdir()
    log: list = []
    w = udev.UsbWatcher(settings, mounter=FakeMounter({"/dev/sdb1": media1, "/dev/sdc": media2}, log),
                        on_progress=lambda s, f: log.append(("progress", s, f)))
    events = [
        device(monkeypatch, USB_DISK_WITH_TABLE),        # only a partition table: wait for the partition
        device(monkeypatch, USB_PART),                   # the stick's partition: provision
        device(monkeypatch, USB_PART, "remove"),
        device(monkeypatch, SATA_PART),                  # an internal disk: never touched
        device(monkeypatch, USB_PARTITIONLESS),          # a partitionless stick: provision
    ]
    w.run(events)
    assert [m for m in log if m[0] == "mount"] == [("mount", "/dev/sdb1", "vfat"), ("mount", "/dev/sdc", "exfat")]
    assert len(w.results) == 2 and all(r.ok for r in w.results), [r.message for r in w.results]
    # the stick is released as soon as the copy is done, before the bundle is even checked
    i_unmount = log.index(("unmount", media1))
    i_verify = next(i for i, m in enumerate(log) if m[0] == "progress" and m[1] == pipeline.STEPS["verify"])
    assert i_unmount < i_verify
    assert profiles.active_id(settings.paths) == w.results[1].profile_id


def test_stick_without_a_bundle_and_unreadable_stick(settings, stub, monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    (empty / "holiday photos").mkdir(parents=True)
    log: list = []
    w = udev.UsbWatcher(settings, mounter=FakeMounter({"/dev/sdb1": empty}, log))
    r = w.handle(device(monkeypatch, USB_PART))
    assert not r.ok and r.code == "no-bundle" and "No bundle was found" in r.message
    assert ("unmount", empty) in log
    r = w.handle(device(monkeypatch, USB_PARTITIONLESS))
    assert not r.ok and r.code == "mount"


def test_removed_while_mounted_is_unmounted(settings, monkeypatch, tmp_path):
    log: list = []
    w = udev.UsbWatcher(settings, mounter=FakeMounter({}, log), provision_fn=lambda *a, **k: None)
    w.mounted["/dev/sdb1"] = tmp_path
    w.handle(device(monkeypatch, USB_PART, "remove"))
    assert log == [("unmount", tmp_path)] and w.mounted == {}


def test_recorded_property_dicts_are_understood_too():
    assert udev.is_stick(USB_PART) and udev.is_stick(USB_PARTITIONLESS)
    assert not udev.is_stick(USB_DISK_WITH_TABLE) and not udev.is_stick(SATA_PART)
    assert not udev.is_stick({**USB_PART, "ID_FS_TYPE": "crypto_LUKS", "ID_FS_USAGE": "crypto"})


def test_real_mount_is_read_only_nosuid_nodev_noexec(monkeypatch, tmp_path):
    calls = []

    class R:
        returncode, stderr = 0, ""

    monkeypatch.setattr(udev.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or R())
    mp = udev.SystemMounter(tmp_path / "usb").mount("/dev/sdb1", "vfat", "sdb1")
    assert mp == tmp_path / "usb" / "sdb1"
    cmd = calls[0]
    assert cmd[:3] == ["mount", "-t", "vfat"] and cmd[-2:] == ["/dev/sdb1", str(mp)]
    opts = cmd[4].split(",")
    assert {"ro", "nosuid", "nodev", "noexec", "nosymfollow"} <= set(opts)


def test_find_bundle_does_not_follow_links(tmp_path, stick_bundle):
    root = tmp_path / "stick"
    root.mkdir()
    (root / "link").symlink_to(stick_bundle, target_is_directory=True)
    assert udev.find_bundle(root) is None
