"""Core types and the one dispatcher every channel goes through; imports nothing of ours but i18n."""
