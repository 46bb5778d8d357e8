"""Stand-ins for the daemon's own mechanics (never imported by the runtime)."""
