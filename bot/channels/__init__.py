"""Channel adapters (one package per platform) and what they share: the Channel interface, edge checks, plugins."""
