"""USB provisioning: a bundle on a stick becomes the kiosk's active profile, or is refused with a reason."""
