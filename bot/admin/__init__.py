"""Operators: accounts and roles, the admin API and console, the inbox and the handoff to agents."""
