"""Install a package the way importlib.metadata finds it: a module and a ``*.dist-info`` with entry points.

A ``.dist-info`` folder with ``METADATA`` and ``entry_points.txt`` on ``sys.path`` is what pip leaves in
site-packages; building it by hand in a temporary folder installs in milliseconds instead of a pip run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
WEBCHAT = ROOT / "examples" / "webchat_channel"


def install_dist(site: Path, name: str, entry_points: dict[str, dict[str, str]], *,
                 packages: dict[str, Path | str] | None = None, version: str = "0.1.0") -> Path:
    """Install distribution ``name`` into ``site``: ``packages`` (a folder to copy, or one module's source)."""
    site.mkdir(parents=True, exist_ok=True)
    for package, source in (packages or {}).items():
        if isinstance(source, Path):
            shutil.copytree(source, site / package, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (site / f"{package}.py").write_text(source, "utf-8")
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", "utf-8")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in eps.items()) + "\n"
        for group, eps in entry_points.items()), "utf-8")
    return site


def install_webchat(site: Path) -> Path:
    """The example channel of examples/webchat_channel, as its pyproject.toml declares it."""
    return install_dist(site, "engagebot-webchat", {"engagebot.channels": {"webchat": "webchat_channel.plugin:plugin"}},
                        packages={"webchat_channel": WEBCHAT / "webchat_channel"})
