"""Presence: who is in front of the kiosk, from an optional USB camera.

The camera and the face detector run on one thread (:mod:`.watcher`); what leaves that thread are
small frozen events (:mod:`.events`) — never an image, a face box or a crop. The state machine
that turns "faces in this frame" into "a visitor arrived / left" is pure (:mod:`.tracker`) and
counts the camera's own time, so a video file can stand in for the camera and ten minutes of it
run in seconds.
"""
