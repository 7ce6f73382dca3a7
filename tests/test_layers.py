"""The package layers, as ARCHITECTURE.md draws them, checked on every import statement
(those inside functions too, which is where optional heavy imports live).

    rstar_pl core        steps.py and the library folders: pure Python, no model library
    rstar_pl backends    hf, vllm, ppm, ray: adapters to model libraries (imported lazily)
    modules              LightningModules, callbacks, strategies, model files
    datamodules          LightningDataModules over the training-data files
    harness              evaluation
    rstar_pl commands    the files at the top of rstar_pl/: may use every layer

A layer imports only from layers above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rstar_pl"

MODEL_LIBRARIES = {"torch", "transformers", "vllm", "lightning", "ray", "safetensors", "accelerate"}
MODEL_BACKENDS = {"hf.py", "ppm.py", "ray.py", "vllm.py"}
#: names kept for one release after a move; they import their new home lazily
SHIMS = {"export.py", "fsdp.py"}


def imported_packages(path: Path) -> set[str]:
    """Top-level package of every absolute import in a file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def imported_modules(path: Path) -> set[str]:
    """Every absolute module an import statement in the file names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def core_files() -> list[Path]:
    files = [PACKAGE / "steps.py"]
    for folder in sorted(p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"):
        files += [
            f
            for f in sorted(folder.rglob("*.py"))
            if not (folder.name == "backends" and f.name in MODEL_BACKENDS)
        ]
    return files


def _ids(files: list[Path]) -> list[str]:
    return [str(f.relative_to(ROOT)) for f in files]


@pytest.mark.parametrize("path", core_files(), ids=_ids(core_files()))
def test_the_core_imports_no_model_library_and_no_upper_layer(path):
    wrong = imported_packages(path) & (MODEL_LIBRARIES | {"modules", "datamodules", "harness"})
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_the_core_uses_no_command():
    commands = {f"rstar_pl.{p.stem}" for p in PACKAGE.glob("*.py")} - {
        "rstar_pl.__init__",
        "rstar_pl.steps",
    }
    for path in core_files():
        wrong = imported_modules(path) & commands
        assert not wrong, f"{path.relative_to(ROOT)} imports the command modules {sorted(wrong)}"


@pytest.mark.parametrize("name", sorted(MODEL_BACKENDS))
def test_model_backends_use_no_training_data_no_harness(name):
    path = PACKAGE / "backends" / name
    wrong = imported_packages(path) & {"datamodules", "harness", "lightning"}
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("modules", {"datamodules", "harness"}),
        ("datamodules", {"harness"}),
    ],
)
def test_lower_training_layers_do_not_import_upper_ones(package, forbidden):
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = imported_packages(path) & forbidden
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_a_file_at_the_top_of_the_package_is_a_command():
    """Each file at the top of rstar_pl/ has a main (the shared vocabulary `steps.py`,
    the package files and the one-release shims aside); helpers live in folders."""
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name in {"__init__.py", "__main__.py", "steps.py"} | SHIMS:
            continue
        functions = {
            n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)
        }
        assert any(f == "main" or f.endswith("_main") for f in functions), (
            f"{path.relative_to(ROOT)} is at the top of rstar_pl/ but is not a command (no main)"
        )


def test_importing_the_core_loads_no_model_library():
    """The same, at run time: importing every core module pulls in none of them."""
    import subprocess
    import sys

    modules = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in core_files()
    ]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(MODEL_LIBRARIES)!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def test_the_moved_export_names_still_resolve_for_one_release():
    """Configs written before the move name `rstar_pl.export.HFExport`; they keep working,
    with a warning that says where it went."""
    import rstar_pl.export as old

    with pytest.warns(FutureWarning, match="moved to modules.export.HFExport"):
        cls = old.HFExport
    from modules.export import HFExport

    assert cls is HFExport
    with pytest.raises(AttributeError):
        old.no_such_name  # noqa: B018
