"""Side-by-side streaming benchmark: halo vs llama-server vs llama_cpp.server (`make bench`)."""
