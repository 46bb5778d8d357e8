"""The audio edge: microphones, speakers, endpointing and the self-hearing guard.

Threads live only here, at the device edge (PortAudio callbacks); everything they produce is
handed to the asyncio loop with ``call_soon_threadsafe``.
"""
