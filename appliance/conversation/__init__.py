"""The conversation turn: endpointed speech -> STT -> persona LLM -> sentences -> TTS -> speaker."""
