"""Models: find model files (a path, the hub cache or a download, else the models PyPI packages ship), and load
the embedder and the LLM (llama.cpp in-process or an OpenAI-compatible server) for the other stages."""
