"""The screen: the renderer (pygame, owns the main thread), the audio-clock frame mapping and the
video recorder. Importing this package does not import pygame; :mod:`.renderer` does.

Public API (details in each module's docstring)::

    from appliance.screen.renderer import Renderer
    Renderer(settings.config.display, headless=False, fps=25)
        .draw(model: ScreenModel, face: np.ndarray | None, t: float | None = None) -> pygame.Surface
        .present(); .pump() -> bool; .rgb() -> (H, W, 3) uint8; .save_png(path); .close()

    from appliance.screen.clock import AudioClock, frame_index
    frame_index(played_samples, sample_rate, fps) -> int
    AudioClock(played: Callable[[], int], sample_rate, fps).due() -> int | None

    from appliance.screen.record import Recorder
    Recorder(path, size=(w, h), fps).add_frame(rgb); .finish(audio_wav_path) -> Path

The main-thread loop, as the demo / daemon would run it (``played`` is the speaker's counter of
samples played, at ``rate``; the tracker was fed every TTS chunk at its clock position)::

    clock = AudioClock(speaker.played_samples, rate, fps)
    while renderer.pump():
        k = clock.due()                     # None: this frame is already on screen
        if k is None:
            wait_a_little(); continue
        t = k / fps
        face = animator.frame(t, tracker.pose_at_frame(k))
        renderer.draw(screen_model, face, t=t)
        renderer.present()
        if recorder: recorder.add_frame(renderer.rgb())
"""
