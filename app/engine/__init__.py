"""The engine: one llama.cpp worker process per loaded model, and its front-side client.

Only the worker-side modules (model, batch, sampling, loop, worker) import llama_cpp;
`app.engine.client` and what it imports never do.
"""
