"""Every example in refnet's docstrings runs and prints what it shows.

The examples (the ``Examples`` sections the API reference renders) are doctests:
this runs them for every module of the refnet package that has any, with NumPy's
print options fixed so that array output is stable, and warnings as errors
(pytest's filterwarnings). A module whose optional third-party dependency is
missing is skipped with the reason; a broken refnet import fails.
"""
import doctest
import importlib
import inspect
import pathlib
import re

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "refnet"

# NumPy's defaults, written out, so that a changed default or an earlier test's
# np.set_printoptions cannot change what an example prints.
PRINT_OPTIONS = dict(precision=8, threshold=1000, edgeitems=3, linewidth=75, suppress=False,
                     nanstr="nan", infstr="inf", sign="-", floatmode="maxprec", legacy=False)


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# Every module of the package with at least one example, found from the files (nothing imported).
MODULES = sorted(_module_name(p) for p in PACKAGE.rglob("*.py") if ">>>" in p.read_text(encoding="utf-8"))

# Modules whose every public function and class has an Examples section (the API reference's core).
DOCUMENTED = ["refnet", "refnet.mlp", "refnet.optim", "refnet.io", "refnet.data", "refnet.strategies"]


def _import(name):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] != "refnet":
            pytest.skip(f"{name} needs {e.name}, which is not installed")
        raise


def test_documented_modules_have_examples():
    assert set(DOCUMENTED) <= set(MODULES), sorted(set(DOCUMENTED) - set(MODULES))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = _import(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name} has '>>>' in its source but doctest found no examples"
    with np.printoptions(**PRINT_OPTIONS):
        for test in tests:
            runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples in {name} failed (output above)"


def _public(module):
    """Public functions and classes defined in module (or re-exported by refnet), and their public methods."""
    for name, obj in vars(module).items():
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if obj.__module__ != module.__name__:
            continue
        yield f"{module.__name__}.{name}", obj
        if inspect.isclass(obj) and not issubclass(obj, tuple):
            for base in obj.__mro__[:-1]:
                for attr, member in vars(base).items():
                    if not attr.startswith("_") and (inspect.isfunction(member) or isinstance(member, property)):
                        yield f"{module.__name__}.{name}.{attr}", member


@pytest.mark.parametrize("name", DOCUMENTED[1:])
def test_public_api_has_numpy_sections(name):
    """Each public function, class and method has an Examples section; functions and methods also
    Returns, and Parameters where they take arguments; classes with constructor arguments Parameters."""
    missing = []
    for qualname, obj in _public(_import(name)):
        doc = inspect.getdoc(obj.fget if isinstance(obj, property) else obj) or ""
        sections = set(re.findall(r"^(\w[\w ]*)\n-{3,}$", doc, re.M))
        need = {"Examples"}
        if inspect.isfunction(obj):
            args = [p for p in inspect.signature(obj).parameters if p != "self"]
            need |= {"Returns"} | ({"Parameters"} if args else set())
        elif inspect.isclass(obj) and not issubclass(obj, tuple):
            need |= {"Parameters"} if list(inspect.signature(obj).parameters) else set()
        if need - sections:
            missing.append(f"{qualname}: {sorted(need - sections)}")
    assert not missing, "\n".join(missing)
