"""halo: an OpenAI-compatible local LLM server for AMD Strix Halo."""
