"""The kiosk's voice: speaker embeddings, similarity to the profile's samples, and voice matching."""
