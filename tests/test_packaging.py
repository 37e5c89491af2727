"""The repository's promises about itself: the README's set-up commands,
CI running exactly the test command, the build's OpenMP and module names,
and the Cython nogil discipline."""

import pathlib
import re
import sys

import fastsgd
from fastsgd import _engine

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_starts_with_two_setup_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert len(commands) == 2
    assert "python -m fastsgd" in commands[0]
    assert "pytest" in commands[1] and ".[test]" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci


def test_openmp_built_in_on_linux():
    info = fastsgd.build_info()
    if sys.platform.startswith("linux"):
        assert info["openmp"], "the Linux build must have OpenMP"
    assert info["default_n_threads"] >= 1


def test_extension_module_is_qualified():
    assert _engine.Engine.__module__ == "fastsgd._engine"


def test_no_module_of_the_package_shadows_the_standard_library():
    # a file of the package run as a script (the memory bench does) puts the
    # package folder first on sys.path: a module there named like a standard
    # one (an extension called _random did) breaks `import random`
    package = pathlib.Path(fastsgd.__file__).parent
    names = {path.name.split(".")[0] for path in package.iterdir()}
    assert not names & set(sys.stdlib_module_names)


def test_cdef_functions_in_nogil_code_are_noexcept():
    # Cython 3 checks for exceptions after every call of a cdef function not
    # marked noexcept, taking the GIL (scikit-learn / implicit #678: 63x
    # slower).  Every cdef function of the engine is noexcept, except the
    # one whose job is to re-raise a pending Ctrl-C.
    allowed = {"raise_pending"}
    for path in (ROOT / "src" / "fastsgd").glob("*.p*"):
        source = path.read_text()
        for match in re.finditer(r"^cdef (?:inline )?[\w\s\*]+?(\w+)\((.*?)\)([^:]*):",
                                 source, re.S | re.M):
            name, tail = match.group(1), match.group(3)
            if name in allowed or "class" in match.group(0).split("(")[0]:
                continue
            assert "noexcept" in tail or "except" in tail, f"{path.name}: {name} lacks noexcept"


def test_show_config_prints(capsys):
    fastsgd.show_config()
    out = capsys.readouterr().out
    assert "OpenMP" in out and "kernels" in out
