"""The speech engines and the audio around them: recognition (faster-whisper, its vocabulary and
answer grammars), synthesis (Piper, and what it must never read aloud), PCM decoding and gain."""
