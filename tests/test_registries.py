"""elign.registries: every declared built-in is registered by the module it names; names, errors, imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from elign import registries
from elign.registries import Registry


@pytest.mark.parametrize("registry", registries.ALL, ids=lambda r: r.kind)
def test_each_builtin_is_registered_by_its_module(registry):
    for name in registry.builtin_names():
        entry = registry.get(name)  # imports the declared module
        assert callable(entry), name
        assert entry.__module__ == registry.module_of(name), name


def test_names_lookup_and_errors():
    reg = Registry("widget", {"b": "elign.constants"}, fold=str.lower)
    assert reg.names() == ["b"] and "B" in reg and "c" not in reg

    def thing():
        pass

    reg.register("C", thing)
    assert reg.get("c") is thing and reg.names() == ["b", "c"] and reg.builtin_names() == ["b"]
    with pytest.raises(ValueError, match="already registered"):
        reg.register("c", lambda: None)
    with pytest.raises(ValueError, match="built in, by elign.constants"):
        reg.register("b", thing)  # a built-in name belongs to its module
    with pytest.raises(KeyError, match="unknown widget 'd'; registered: 'b', 'c'"):
        reg.get("d")
    with pytest.raises(ValueError, match="unknown widget 'C'"):
        reg.check("C")  # the config takes names as spelled
    with pytest.raises(ValueError, match="cannot be unregistered"):
        reg.unregister("b")
    reg.unregister("c")
    assert reg.names() == ["b"]
    with pytest.raises(KeyError, match="unknown widget 'b'"):
        reg.get("b")  # declared, but elign.constants registers nothing


def test_the_config_checks_names_without_importing_torch():
    code = "import sys, elign.config as c; c.validate_config({}); print(sorted(m for m in sys.modules if m == 'torch'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
