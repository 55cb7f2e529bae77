"""Embedded models whose GGUF file a package reassembles from chunk packages (no model needed:
the packages here are made up, so only the refusals and the clean-up are exercised)."""

from __future__ import annotations

import sys

import pytest

from surveytune.backends import embedded
from surveytune.backends.embedded import embedded_model_path
from surveytune.backends.errors import ModelError


def _package(root, name: str, body: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text(body)


@pytest.fixture
def fake_packages(tmp_path, monkeypatch):
    root = tmp_path / "site"
    _package(root, "chunky_bad_sum",
             "def assemble(path):\n"
             "    open(path, 'wb').write(b'GGUF...')\n"
             "    raise ValueError('Assembled file sha256 did not match')\n")
    _package(root, "chunky_nothing", "")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("SURVEYTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(embedded.EMBEDDED_MODELS, "bad-sum",
                        ("chunky_bad_sum", "m.gguf", "pip install chunky"))
    monkeypatch.setitem(embedded.EMBEDDED_MODELS, "no-file",
                        ("chunky_nothing", "m.gguf", "pip install nothing"))
    monkeypatch.setitem(embedded.EMBEDDED_MODELS, "not-installed",
                        ("chunky_absent", "m.gguf", "pip install absent"))
    yield tmp_path / "cache" / "models"
    for name in ("chunky_bad_sum", "chunky_nothing"):
        sys.modules.pop(name, None)


def test_a_failed_reassembly_is_one_line_and_leaves_nothing(fake_packages):
    with pytest.raises(ModelError, match=r"cannot reassemble m\.gguf from chunky_bad_sum: "
                                         r"Assembled file sha256 did not match; reinstall "
                                         r"with: pip install chunky"):
        embedded_model_path("bad-sum")
    assert list(fake_packages.iterdir()) == []  # no half-written model folder


def test_a_package_without_the_file_or_assemble_names_the_install(fake_packages):
    with pytest.raises(ModelError, match="chunky_nothing holds no m.gguf; reinstall with: "
                                         "pip install nothing"):
        embedded_model_path("no-file")
    with pytest.raises(ModelError, match="needs the package 'chunky_absent': pip install absent"):
        embedded_model_path("not-installed")
    assert list(fake_packages.iterdir()) == []
