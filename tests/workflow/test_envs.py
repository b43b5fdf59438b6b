"""Conda envs: valid, pinned, and providing every module that a rule's script imports.

Each rule's script is parsed (AST, not imported), imports of `tomosynth.*` are followed
through the package, and every third-party top-level module must be provided by a package
listed in the env the rule names (`conda:`). Conda cannot be installed on CI machines, so
the envs are checked statically here; the pip install runs the same code.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ENV_DIR = REPO / "envs"
EXPECTED_ENVS = ("data", "recon", "tomopy", "torch", "eval", "plot")
# Envs without torch (the light ones): a rule whose imports need torch cannot run there.
TORCHLESS_ENVS = ("data", "plot")
# conda-forge name -> the pip distribution installed in the test venv (importlib.metadata).
PIP_NAMES = {
    "pytorch": "torch",
    "pytorch-gpu": "torch",
    "pytorch-cpu": "torch",
    "py-opencv": "opencv-python-headless",
    "matplotlib-base": "matplotlib",
}
# Pinned, but not pip packages of the test venv: the installer, conda's CUDA runtime selector
# and tomopy (conda-forge only). python is compared with the running interpreter.
NOT_PIP = {"pip", "cuda-version", "tomopy"}

# Import name -> packages (conda-forge names, or pip names in the env's pip section) that
# provide it. A module missing here fails the test: add it deliberately.
IMPORT_PACKAGES: dict[str, tuple[str, ...]] = {
    "numpy": ("numpy",),
    "scipy": ("scipy",),
    "h5py": ("h5py",),
    "tifffile": ("tifffile",),
    "PIL": ("pillow",),
    "cv2": ("py-opencv", "opencv", "opencv-python-headless", "opencv-python"),
    "skimage": ("scikit-image",),
    "yaml": ("pyyaml",),
    "jsonschema": ("jsonschema",),
    "tqdm": ("tqdm",),
    "pandas": ("pandas",),
    "matplotlib": ("matplotlib-base", "matplotlib"),
    "torch": ("pytorch", "pytorch-gpu", "pytorch-cpu", "torch"),
    "torchvision": ("torchvision",),
    "torchmetrics": ("torchmetrics",),
    "pytorch_fid": ("pytorch-fid",),
    "frd_score": ("frd-score",),
    "tomopy": ("tomopy",),
    "astra": ("astra-toolbox",),
    "pywt": ("pywavelets",),
    "sklearn": ("scikit-learn",),
    "imageio": ("imageio",),
    "finufft": ("finufft",),
}
# FBP backends (recon.backend) -> module the reconstruct rule's env must provide for it.
BACKEND_MODULES = {"auto": "finufft", "torch": "torch", "astra": "astra", "tomopy": "tomopy"}
BACKEND_MODULES["fourier"] = "finufft"
# Imported only inside the function of their backend; checked per backend instead.
BACKEND_ONLY = {"tomopy", "astra", "finufft"}
LOCAL_MODULES = {"tomosynth", "_bootstrap", "__main__", "__future__"}

_PIN = re.compile(r"^(?:[\w-]+::)?([A-Za-z0-9_.\-]+)\s*(==?)\s*(\d[\w.*+!-]*)(?:=\S+)?$")
_PIP_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\d[\w.+!-]*)$")


def norm(name: str) -> str:
    return name.lower().replace("_", "-")


def load_env(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path}: not a YAML mapping"
    return data


def env_packages(path: Path) -> set[str]:
    """Package names (normalised) listed in an env file, conda and pip."""
    names: set[str] = set()
    for dep in load_env(path).get("dependencies", []):
        if isinstance(dep, dict):
            names |= {norm(re.split(r"[=<>!~ ]", p)[0]) for p in dep.get("pip", [])}
        else:
            m = _PIN.match(str(dep).strip())
            names.add(norm(m.group(1) if m else re.split(r"[=<>!~ ]", str(dep))[0]))
    return names


def env_pins(path: Path) -> list[tuple[str, str]]:
    """(normalised name, pinned version) of every conda and pip dependency of an env file."""
    pins = []
    for dep in load_env(path).get("dependencies", []):
        if isinstance(dep, dict):
            pins += [(norm(m.group(1)), m.group(2)) for p in dep["pip"] if (m := _PIP_PIN.match(p))]
        elif m := _PIN.match(str(dep).strip()):
            pins.append((norm(m.group(1)), m.group(3)))
    return pins


# --- import analysis ------------------------------------------------------------------------
def _module_file(module: str, roots: list[Path]) -> Path | None:
    parts = module.split(".")
    for root in roots:
        base = root.joinpath(*parts)
        for cand in (base.with_suffix(".py"), base / "__init__.py"):
            if cand.is_file():
                return cand
    return None


def _is_import_guard(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = []
        if isinstance(handler.type, ast.Name):
            names = [handler.type.id]
        elif isinstance(handler.type, ast.Tuple):
            names = [e.id for e in handler.type.elts if isinstance(e, ast.Name)]
        if {"ImportError", "ModuleNotFoundError"} & set(names):
            return True
    return False


def _imports(path: Path, module: str) -> list[tuple[str, bool]]:
    """(imported module, optional) pairs of one file; optional = under try/except ImportError."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child, optional)
            return
        if isinstance(node, ast.Try) and _is_import_guard(node):
            for child in node.body:
                visit(child, True)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, optional)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, optional) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, optional))
            # `from pkg import sub` imports the submodule pkg.sub when it is one.
            found.extend((f"{target}.{alias.name}", optional) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    visit(tree, False)
    return found


def third_party_imports(script: Path) -> dict[str, str]:
    """Top-level third-party modules a script needs -> the file that imports them first.

    Follows `tomosynth.*` (with its parent packages' `__init__`) and the scripts' own helper
    modules transitively; optional imports (try/except ImportError) are left out.
    """
    roots = [REPO, script.parent]
    needed: dict[str, str] = {}
    seen: set[str] = set()
    queue = [("__script__", script)]
    while queue:
        module, path = queue.pop()
        for name, optional in _imports(path, module):
            top = name.split(".")[0]
            if not top:
                continue
            if top in LOCAL_MODULES or _module_file(top, [script.parent]) is not None:
                parts = name.split(".")
                for i in range(1, len(parts) + 1):
                    sub = ".".join(parts[:i])
                    file = _module_file(sub, roots)
                    if file is not None and sub not in seen:
                        seen.add(sub)
                        queue.append((sub, file))
            elif top not in sys.stdlib_module_names and not optional:
                needed.setdefault(
                    top, str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
                )
    return needed


# --- tests ----------------------------------------------------------------------------------
def test_expected_env_files_exist():
    missing = [e for e in EXPECTED_ENVS if not (ENV_DIR / f"{e}.yaml").is_file()]
    assert not missing, f"missing env files in envs/: {missing}"


@pytest.mark.parametrize("env", sorted(p.name for p in ENV_DIR.glob("*.yaml")))
def test_env_file_valid_and_pinned(env):
    data = load_env(ENV_DIR / env)
    assert set(data) <= {"name", "channels", "dependencies"}, f"{env}: unexpected keys {set(data)}"
    channels = data.get("channels")
    assert channels and channels[0] == "conda-forge", (
        f"{env}: conda-forge must be the first channel"
    )
    assert "nodefaults" in channels and "defaults" not in channels, f"{env}: use nodefaults"
    deps = data.get("dependencies")
    assert deps, f"{env}: no dependencies"
    unpinned, pip_sections = [], 0
    for dep in deps:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"{env}: unknown dependency mapping {dep}"
            pip_sections += 1
            unpinned += [p for p in dep["pip"] if not _PIP_PIN.match(p)]
        elif not _PIN.match(str(dep).strip()):
            unpinned.append(dep)
    assert not unpinned, f"{env}: dependencies without a pinned version: {unpinned}"
    names = env_packages(ENV_DIR / env)
    assert "python" in names, f"{env}: python version not pinned"
    if pip_sections:
        assert "pip" in names, f"{env}: a pip section needs pip itself in the conda list"


@pytest.mark.parametrize("env", sorted(p.name for p in ENV_DIR.glob("*.yaml")))
def test_env_pins_equal_the_tested_versions(env):
    """Every pin is the version the tests run with (the pip packages of this venv): a conda
    pin of three or more parts equal to it, or to its first parts (py-opencv 5.1.0 is the
    wheel 5.1.0.95); python by major.minor."""
    problems = []
    for name, pinned in env_pins(ENV_DIR / env):
        if name in NOT_PIP:
            continue
        if name == "python":
            tested = f"{sys.version_info.major}.{sys.version_info.minor}"
            ok = pinned == tested
        else:
            try:
                tested = importlib.metadata.version(PIP_NAMES.get(name, name)).split("+")[0]
            except importlib.metadata.PackageNotFoundError:
                problems.append(f"{name}: not installed in the test venv (add it or to NOT_PIP)")
                continue
            ok = pinned.count(".") >= 2 and (tested == pinned or tested.startswith(pinned + "."))
        if not ok:
            problems.append(f"{name} ={pinned}, tested {tested}")
    assert not problems, f"envs/{env}: pins differ from the tested versions: {problems}"


def test_light_envs_have_no_torch():
    for env in TORCHLESS_ENVS:
        names = env_packages(ENV_DIR / f"{env}.yaml")
        heavy = names & {"pytorch", "pytorch-gpu", "pytorch-cpu", "torchvision", "pytorch-fid"}
        assert not heavy, f"envs/{env}.yaml must stay without torch, found {sorted(heavy)}"
        assert "cuda-version" not in names, f"envs/{env}.yaml: no CUDA runtime"


def test_tomopy_only_in_tomopy_env_and_torch_with_cuda():
    packages = {e: env_packages(ENV_DIR / f"{e}.yaml") for e in EXPECTED_ENVS}
    with_tomopy = sorted(e for e, names in packages.items() if "tomopy" in names)
    assert with_tomopy == ["tomopy"], (
        f"tomopy must be in envs/tomopy.yaml only, found in {with_tomopy}"
    )
    for env in ("torch", "eval", "recon"):
        names = packages[env]
        assert "pytorch-gpu" in names or any(
            "cuda" in str(d) for d in load_env(ENV_DIR / f"{env}.yaml")["dependencies"]
        ), f"envs/{env}.yaml: needs a CUDA build of pytorch (pytorch-gpu or a cuda build string)"
        assert "pytorch-cpu" not in names, f"envs/{env}.yaml: pytorch-cpu rules out CUDA"
    assert {"pytorch", "pytorch-gpu", "pytorch-cpu"} & packages["recon"], (
        "envs/recon.yaml: the default FBP backend needs pytorch"
    )


def test_bootstrap_makes_package_importable_from_a_copy(tmp_path):
    """scripts/_bootstrap.py finds tomosynth next to scripts/, not an installed copy."""
    import shutil

    for item in ("scripts", "tomosynth"):
        shutil.copytree(REPO / item, tmp_path / item, ignore=shutil.ignore_patterns("__pycache__"))
    code = "import _bootstrap, tomosynth; print(tomosynth.__file__)"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path / "scripts",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).resolve() == (tmp_path / "tomosynth" / "__init__.py").resolve()


@pytest.fixture(scope="module")
def rules(wf):
    return wf.load_rules()


def test_every_script_rule_names_an_existing_env(rules):
    problems = []
    for rule in rules:
        if rule.script is None:
            continue
        if rule.conda_env is None or rule.conda_env == "<callable>":
            problems.append(f"{rule.name}: `conda:` must name an env file in envs/")
        elif Path(rule.conda_env).parent != ENV_DIR or not Path(rule.conda_env).is_file():
            problems.append(f"{rule.name}: env {rule.conda_env} is not a file in envs/")
        if not Path(rule.script).is_file():
            problems.append(f"{rule.name}: script {rule.script} does not exist")
    assert not problems, "\n".join(problems)


def test_script_imports_are_provided_by_the_rule_env(rules):
    script_rules = [r for r in rules if r.script and r.conda_env and Path(r.conda_env).is_file()]
    assert script_rules, "no script rules found"
    problems = []
    for rule in script_rules:
        provided = env_packages(Path(rule.conda_env))
        env = Path(rule.conda_env).name
        for module, where in sorted(third_party_imports(Path(rule.script)).items()):
            if module in BACKEND_ONLY:
                continue
            if module not in IMPORT_PACKAGES:
                problems.append(f"{rule.name}: `{module}` ({where}) is not in IMPORT_PACKAGES")
            elif not {norm(p) for p in IMPORT_PACKAGES[module]} & provided:
                problems.append(
                    f"{rule.name}: `{module}` ({where}) needs one of {IMPORT_PACKAGES[module]} "
                    f"in envs/{env}"
                )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("backend", ["auto", "torch", "astra", "tomopy", "fourier"])
def test_reconstruct_env_provides_its_backend(backend, tmp_path, wf):
    overlay = tmp_path / "backend.yaml"
    overlay.write_text(f"recon:\n  backend: {backend}\n")
    rules = {r.name: r for r in wf.load_rules(configfiles=(overlay,))}
    if "reconstruct" not in rules:
        pytest.skip("no reconstruct rule yet")
    env = Path(rules["reconstruct"].conda_env)
    module = BACKEND_MODULES[backend]
    assert {norm(p) for p in IMPORT_PACKAGES[module]} & env_packages(env), (
        f"recon.backend={backend}: reconstruct runs in envs/{env.name}, which lacks `{module}`"
    )


def test_gpu_rules_request_one_gpu_and_cpu_rules_none(rules):
    """Training/inference rules (torch env) ask for gpu=1; CPU-only envs never do (the recon
    env has a CUDA PyTorch: reconstruct asks for a GPU as recon.device allows, see below)."""
    problems = []
    for rule in rules:
        if rule.is_local or rule.conda_env is None:
            continue
        env = Path(rule.conda_env).stem
        gpu = rule.resources.get("gpu", 0)
        if "gres" in rule.resources:
            problems.append(f"{rule.name}: use `gpu=1`, not `gres` (the plugin maps gpu to --gpus)")
        if env == "torch" and gpu != 1:
            problems.append(f"{rule.name}: runs in envs/torch.yaml but requests gpu={gpu}")
        if env in ("data", "plot", "tomopy") and gpu or env == "recon" and gpu not in (0, 1):
            problems.append(f"{rule.name}: CPU env envs/{env}.yaml but requests gpu={gpu}")
        for key in ("runtime", "mem_mb"):
            if key not in rule.resources:
                problems.append(f"{rule.name}: no `{key}` resource (SLURM needs it)")
    assert not problems, "\n".join(problems)


def constraint_pins() -> dict[str, str]:
    """Normalised name -> version of every `name==version` line of constraints.txt."""
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[norm(name)] = version
    return pins


def test_install_constraints_equal_the_env_pins():
    """`make install` takes every env-pinned package at the env's version (constraints.txt),
    so a newer release in the registry cannot make the test venv differ from the envs; and
    every constraint (the test tools' too) is the version installed here."""
    constraints = constraint_pins()
    pinned: dict[str, str] = {}
    for path in sorted(ENV_DIR.glob("*.yaml")):
        for name, version in env_pins(path):
            if name not in NOT_PIP and name != "python":
                pinned[norm(PIP_NAMES.get(name, name))] = version
    problems = []
    for name, version in sorted(pinned.items()):
        got = constraints.get(name)
        if got is None or not (got == version or got.startswith(version + ".")):
            problems.append(f"{name}: envs pin {version}, constraints.txt {got}")
    for name, version in sorted(constraints.items()):
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{name}: in constraints.txt, not installed in the test venv")
            continue
        if installed != version:
            problems.append(f"{name}: constraints.txt {version}, installed {installed}")
    assert not problems, problems
    assert "-c constraints.txt" in (REPO / "Makefile").read_text()


def test_constraints_cover_every_package_the_install_brings_in():
    """Every distribution in the dependency closure of `make install` (the project with its
    extras, torch and torchvision) has an exact version in constraints.txt: a new release of
    a dependency's dependency cannot change the test venv (the 7th submission's CI broke on a
    new pandas; ConfigArgParse 1.10 came out since)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import wheelhouse  # the closure walk of `make wheelhouse`

    extras = re.search(r'-e "\.\[([^\]]+)\]"', (REPO / "Makefile").read_text())
    assert extras, "Makefile: the editable install with extras not found"
    roots = [*wheelhouse.project_requirements(tuple(extras.group(1).split(","))), "torchvision"]
    closure = wheelhouse.installed_closure(roots, {"tomosynth"})
    pinned = {wheelhouse.canonical(name) for name in constraint_pins()}
    assert len(closure) > 60  # the walk reached the dependencies' dependencies
    assert not sorted(set(closure) - pinned)
