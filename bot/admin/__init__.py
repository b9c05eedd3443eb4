"""Operators: accounts and roles, the audit log, the admin service layer (shared by the CLI and the API),
the admin REST API with its OpenAPI document, the console, the inbox and the handoff to agents."""
