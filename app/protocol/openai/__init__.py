"""Wire schemas and adapters of the openai protocol family."""
