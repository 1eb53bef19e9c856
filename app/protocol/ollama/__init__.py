"""Wire schemas and adapters of the ollama protocol family."""
