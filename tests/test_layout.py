"""The package's layout: one subpackage per stage, and every import points to an earlier stage.

The rules are the table below, written once; docs/design.md draws the same tree.
Imports are read with ``ast``: relative ones are resolved, and those inside functions or
``if TYPE_CHECKING:`` count like any other, so a lazy import that points back fails as surely
as one at the top of a module.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "grokexp"

FILES = ("os", "pathlib", "shutil", "tempfile")  # reading and writing files
TERMINAL = ("sys", "subprocess", "click")  # the shell's side: arguments, printing, processes

# The stages, in order. A stage may import the stages above it in this table, itself and the
# shared modules (SHARED); never a stage below it. "Never" names what its own modules must not
# import (the first part of an import's name: "torch" also stands for "torch.nn").
STAGES: list[tuple[str, str, tuple[str, ...]]] = [
    # package      what it holds                                      never imports
    ("spec", "the validated spec: sections, parse, --set, JSON Schema",
     ("torch", "numpy", "mlflow", "optuna", "matplotlib", "click")),
    ("engine", "data, sweep, init, model, step, optim, workers, train",
     ("mlflow", "optuna", "matplotlib", *FILES, *TERMINAL)),
    ("figures", "run, paper, sweep and study figures: data in, Figure out",
     ("mlflow", "optuna", *FILES, *TERMINAL)),
    ("tracking", "Tracker and MLflow, RunReader, retries, store checks, recovery, checkpoints",
     ("optuna", "click")),
    ("diagnostics", "metrics (pure), the hook that calls them, the background probes",
     ("mlflow", "optuna", *FILES, *TERMINAL)),
    ("run", "grokexp run's work: the runner, the memory budget",
     ("mlflow", "optuna", "click")),
    ("forecast", "grokexp forecast: onsets, lead times, separation, forecasts (pure numpy)",
     ("torch", "mlflow", "optuna", "matplotlib", *FILES, *TERMINAL)),
    ("study", "grokexp optimize: ask-and-tell, space, batches, storage, objective, report",
     ("mlflow", "click")),
    ("paper", "grokexp reproduce and figures: specs, claims, checks, gallery",
     ("mlflow", "optuna", "click")),
    ("cli", "the commands: the only door in, imported by nothing", ()),
]

# The only modules at the top of grokexp/, and the grokexp modules each of them may import.
TOP: dict[str, tuple[str, ...]] = {
    "grokexp": (),  # __init__.py: the version
    "grokexp.__main__": ("grokexp.cli",),  # python -m grokexp
    "grokexp.errors": (),  # the errors every stage raises
    "grokexp.series": (),  # one member's metric series: the loop fills it, every stage reads it
    "grokexp.grokking": (),  # the grokking rules: grok epoch, rise, onset, censoring
    "grokexp.redact": ("grokexp.tracking.redact",),  # the path README documented, for users
}
# Every stage may import these (and nothing else of TOP).
SHARED = ("grokexp", "grokexp.errors", "grokexp.series", "grokexp.grokking")

ORDER = {name: i for i, (name, _, _) in enumerate(STAGES)}
NEVER = {name: set(never) for name, _, never in STAGES}


def find_modules(package: Path) -> dict[str, Path]:
    """Dotted module name → file, for every .py under ``package`` (a package by its __init__)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = [package.name, *path.relative_to(package).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def read_imports(name: str, path: Path, known: dict[str, Path]
                 ) -> tuple[list[tuple[int, str, bool]], list[tuple[int, str]]]:
    """(line, grokexp module, written absolute) for each import of the package's own modules,
    and (line, first part of the name) for every other import."""
    root = name.split(".")[0]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    own: list[tuple[int, str, bool]] = []
    other: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == root:
                    own.append((node.lineno, alias.name, True))
                else:
                    other.append((node.lineno, alias.name.split(".")[0]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != root:
                if target != "__future__":
                    other.append((node.lineno, target.split(".")[0]))
                continue
            for alias in node.names:  # `from . import x` imports the module x when there is one
                sub = f"{target}.{alias.name}"
                own.append((node.lineno, sub if sub in known else target, not node.level))
    return list(dict.fromkeys(own)), list(dict.fromkeys(other))


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ORDER else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module, or a module importing
    itself (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    found.append(sorted(component))
    return found


def layout_problems(package: Path) -> list[str]:
    """Every way the tree under ``package`` breaks the table above, one line each."""
    known = find_modules(package)
    root = package.name
    problems = []
    for path in sorted(package.iterdir()):
        if path.is_file() and path.suffix == ".py":
            name = f"{root}.{path.stem}" if path.stem != "__init__" else root
            if name not in TOP:
                allowed = ", ".join(m.rpartition(".")[2] + ".py" if "." in m else "__init__.py"
                                    for m in TOP)
                problems.append(f"{path.name}: a module at the top of {root}/; it belongs in "
                                f"a stage's package (only {allowed} live there)")
        elif path.is_dir() and path.name != "__pycache__" and path.name not in ORDER:
            problems.append(f"{path.name}/: not a stage (the stages: {', '.join(ORDER)})")
    for stage in ORDER:
        if not (package / stage / "__init__.py").is_file():
            problems.append(f"{stage}/: the stage's package is missing")
    for folder in sorted({p.parent for p in package.rglob("*.py")}):
        if not (folder / "__init__.py").is_file():
            problems.append(f"{folder.relative_to(package.parent)}/: no __init__.py")

    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        where = f"{path.relative_to(package.parent)}"
        own, other = read_imports(name, path, known)
        stage = stage_of(name)
        graph[name].update(target for _, target, _ in own)
        if stage is None and name not in TOP:
            continue  # misplaced, said above; its imports are judged once it has a stage
        for line, target, absolute in own:
            if absolute:
                problems.append(f"{where}:{line}: imports {target} by its absolute name; "
                                "the package's own imports are relative")
            if target not in known:
                problems.append(f"{where}:{line}: imports {target}, which does not exist")
            elif name in TOP:
                if target not in TOP[name]:
                    problems.append(f"{where}:{line}: imports {target}; a top-level module "
                                    f"may import only {', '.join(TOP[name]) or 'nothing'}")
            elif target in SHARED:
                continue
            elif stage is None or (target_stage := stage_of(target)) is None:
                problems.append(f"{where}:{line}: imports {target}, which no stage may import")
            elif ORDER[target_stage] > ORDER[stage]:
                problems.append(f"{where}:{line}: {stage} imports {target}, of the later "
                                f"stage {target_stage} (an arrow pointing back)")
        for line, module in other:
            if stage is not None and module in NEVER[stage]:
                problems.append(f"{where}:{line}: {stage} must not import {module}")
    for component in cycles(graph):
        problems.append("import cycle: " + " -> ".join([*component, component[0]]))
    return problems


MAX_LINES = 300  # "when one grows past that, it is two ideas" (STYLE.md)
ENVIRONMENT = ("environ", "getenv", "putenv", "unsetenv")  # os's doors to the environment
# Private attributes of the libraries we build on: each use carries a comment saying
# "private API" and why (the public call that is missing, or the measurement that kept it).
PRIVATE = re.compile(r"\btorch\._|(?<!self)\._storage\b|\._trial_id\b|spawn\.get_preparation_data")


def environment_readers(package: Path) -> list[str]:
    """Modules outside cli/ that touch the environment (os.environ, os.getenv, ...)."""
    found = []
    for name, path in find_modules(package).items():
        if stage_of(name) == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            word = (node.attr if isinstance(node, ast.Attribute)
                    else node.id if isinstance(node, ast.Name) else None)
            if isinstance(node, ast.ImportFrom) and node.module == "os":
                word = next((a.name for a in node.names if a.name in ENVIRONMENT), None)
            if word in ENVIRONMENT:
                found.append(f"{path.relative_to(package.parent)}:{node.lineno}: reads the "
                             f"environment ({word}); only cli/ does")
    return found


def code_by_line(text: str) -> dict[int, str]:
    """Each line's code without its strings and comments, tokens joined without spaces."""
    code: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.NAME, tokenize.OP, tokenize.NUMBER):
            code[tok.start[0]] = code.get(tok.start[0], "") + tok.string
    return code


def unexplained_private_uses(package: Path) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for number, code in sorted(code_by_line(text).items()):
            if PRIVATE.search(code):
                nearby = " ".join(lines[max(0, number - 4):number]).lower()
                if "private api" not in nearby:
                    found.append(f"{path.relative_to(package.parent)}:{number}: "
                                 f"{lines[number - 1].strip()}")
    return found


def test_every_module_holds_one_idea():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines"


def test_only_the_cli_reads_the_environment():
    assert environment_readers(PACKAGE) == []


def test_private_api_is_named_where_it_is_used():
    assert unexplained_private_uses(PACKAGE) == []


def test_the_environment_and_private_rules_catch_offenders(tmp_path):
    pkg = tmp_path / "grokexp"
    for rel, text in {
        "engine/a.py": "import os\nx = os.environ.get('A')\n",
        "engine/b.py": "from os import getenv\n",
        "cli/c.py": "import os\nx = os.environ\n",
        "study/d.py": "s = study._storage\n",
        "study/e.py": "# private API: no public way (optuna#1)\ns = study._storage\n",
    }.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    readers = "\n".join(environment_readers(pkg))
    assert "grokexp/engine/a.py:2" in readers and "grokexp/engine/b.py:1" in readers
    assert "cli/c.py" not in readers
    assert unexplained_private_uses(pkg) == ["grokexp/study/d.py:1: s = study._storage"]


def test_the_package_follows_the_table():
    assert layout_problems(PACKAGE) == []


def test_every_stage_says_what_it_does_and_what_it_imports():
    for stage in ORDER:
        doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text()))
        lines = [line for line in (doc or "").splitlines() if line.strip()]
        assert len(lines) == 2 and lines[1].startswith("Imports: "), (stage, doc)


def test_the_rules_catch_a_tree_that_breaks_them(tmp_path):
    """A flat module, an arrow pointing back, a cycle, torch in spec/, click in engine/,
    mlflow in diagnostics/, a lazy import of the cli, and an import of the redact shim."""
    pkg = tmp_path / "grokexp"
    files = {f"{stage}/__init__.py": '"""A stage.\n\nImports: earlier stages."""\n'
             for stage in ORDER}
    files.update({
        "__init__.py": "",
        "errors.py": "",
        "redact.py": "from .tracking.redact import x\n",
        "tracking/redact.py": "x = 1\n",
        "spec_io.py": "from .errors import SpecError\n",
        "spec/schema.py": "import torch\nfrom .io import load\n",
        "spec/io.py": "from .schema import Spec\nfrom ..engine.model import Model\n",
        "engine/model.py": "import click\n",
        "diagnostics/hook.py": "def f():\n    import mlflow.tracking\n    from ..cli import main\n",
        "study/batch.py": "from ..redact import x\nimport grokexp.errors\n",
    })
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    found = "\n".join(layout_problems(pkg))
    for expected in [
        "spec_io.py: a module at the top of grokexp/",
        "grokexp/spec/schema.py:1: spec must not import torch",
        "grokexp/spec/io.py:2: spec imports grokexp.engine.model, of the later stage engine",
        "grokexp/engine/model.py:1: engine must not import click",
        "grokexp/diagnostics/hook.py:2: diagnostics must not import mlflow",
        "grokexp/diagnostics/hook.py:3: diagnostics imports grokexp.cli, of the later stage cli",
        "grokexp/study/batch.py:1: imports grokexp.redact, which no stage may import",
        "grokexp/study/batch.py:2: imports grokexp.errors by its absolute name",
        "import cycle: grokexp.spec.io -> grokexp.spec.schema -> grokexp.spec.io",
    ]:
        assert expected in found, f"{expected!r} not in:\n{found}"
