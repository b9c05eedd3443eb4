"""Storage: models, engine and sessions, the dialect differences, the store behind core's Store protocol, migrations."""
