"""USB provisioning: a bundle on a stick becomes the kiosk's active profile, or is refused with a reason.

Public API:

* ``provisioning.pipeline.provision(settings, path, on_progress=None, *, on_copied=None) -> ProvisionResult``
  — ``path`` is a bundle folder or a stick's mount point; ``on_progress(step_title, fraction)``;
  the result has ``ok``, ``message`` (one sentence for the screen), ``code``, ``profile_id``,
  ``report`` (the text of provision-report.txt) and ``report_path``. Never raises for a bad bundle.
* ``provisioning.profiles.recover(paths)`` — the daemon calls it at every start, before loading the profile.
* ``provisioning.profiles.confirm(paths)`` — the daemon calls it once READY.
* ``provisioning.profiles.active(paths)`` — the active profile's folder (complete), or None.
* ``provisioning.udev.UsbWatcher`` — pyudev block events -> read-only mount -> provision.
"""
