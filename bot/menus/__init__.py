"""The brand's menu: the file operators load (``engagebot menu load``), stored and pushed to each platform."""

from .spec import MenuFile, MenuFileError, parse_menu

__all__ = ["MenuFile", "MenuFileError", "parse_menu"]
