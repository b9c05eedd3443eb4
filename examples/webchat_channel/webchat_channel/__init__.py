"""A web chat widget channel for engagebot: the example channel of docs/adapters.md."""
