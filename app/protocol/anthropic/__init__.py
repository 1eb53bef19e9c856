"""Wire schemas and adapters of the anthropic protocol family."""
