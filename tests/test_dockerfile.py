"""Parse-level checks of the Dockerfile and .dockerignore (the image itself is built and run by
.ci/image_check, which also installs dockerfile-parse before the tests run)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

dockerfile_parse = pytest.importorskip(
    "dockerfile_parse",
    reason="dockerfile-parse is not installed (.ci/image_check installs it: pip install "
    "dockerfile-parse)",
)

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# pytorch/pytorch:<torch>-cuda<cuda>-cudnn<cudnn>-runtime, e.g. 2.6.0-cuda12.4-cudnn9-runtime
BASE_TAG = re.compile(
    r"^pytorch/pytorch:(?P<torch>\d+\.\d+\.\d+)-cuda(?P<cuda>\d+\.\d+)-cudnn(?P<cudnn>\d+)-runtime$"
)


@pytest.fixture(scope="module")
def parser():
    return dockerfile_parse.DockerfileParser(path=str(DOCKERFILE))


def instructions(parser, name: str) -> list[dict]:
    return [i for i in parser.structure if i["instruction"] == name]


def arg_defaults(parser) -> dict[str, str]:
    defaults = {}
    for ins in instructions(parser, "ARG"):
        key, _, value = ins["value"].partition("=")
        defaults[key.strip()] = value.strip().strip("\"'")
    return defaults


def resolve(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), value)


def test_default_base_is_a_pinned_cuda_runtime_pytorch_image(parser):
    base = parser.baseimage  # resolves `ARG BASE=...` before `FROM ${BASE}`
    match = BASE_TAG.match(base)
    assert match, f"default base {base!r} is not pytorch/pytorch:<x.y.z>-cuda<v>-cudnn<v>-runtime"
    assert "latest" not in base
    torch_version = tuple(int(p) for p in match["torch"].split("."))
    # the project's floor (pyproject.toml): torch>=X.Y
    floor = re.search(r'"torch>=(\d+)\.(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert floor, "pyproject.toml names no torch>=X.Y floor"
    assert torch_version[:2] >= tuple(map(int, floor.groups())), (
        f"the base's torch {match['torch']} is older than the project's floor"
    )
    assert arg_defaults(parser)["BASE"] == base


def test_base_is_a_build_argument(parser):
    # CI builds the same file on a CPU stand-in: --build-arg BASE=localhost/ci-torch-base:latest
    (from_,) = instructions(parser, "FROM")
    assert from_["value"] in ("${BASE}", "$BASE")
    first_arg = instructions(parser, "ARG")[0]
    assert first_arg["startline"] < from_["startline"]


def test_runs_as_a_non_root_user(parser):
    users = instructions(parser, "USER")
    assert users, "no USER instruction: the image would run as root"
    user = resolve(users[-1]["value"], arg_defaults(parser)).split(":")[0]
    assert user not in ("root", "0", ""), f"USER {users[-1]['value']} is root"
    assert any("useradd" in i["value"] for i in instructions(parser, "RUN"))


def test_entrypoint_is_vrnn_fit_and_cmd_names_a_config_in_the_repo(parser):
    (entrypoint,) = instructions(parser, "ENTRYPOINT")
    assert entrypoint["value"].strip() == '["vrnn-fit"]'
    assert 'vrnn-fit = "vrnn_lightning.fit:main"' in (ROOT / "pyproject.toml").read_text()
    cmd = parser.cmd
    assert cmd.startswith("["), "CMD should be exec form"
    args = re.findall(r'"([^"]*)"', cmd)
    assert args[0] == "--config"
    assert (ROOT / args[1]).is_file(), f"CMD's config {args[1]} is not in the repo"


def test_pip_is_python_m_pip_and_keeps_the_base_torch(parser):
    runs = " ".join(i["value"] for i in instructions(parser, "RUN"))
    installs = re.findall(r"(\S+ \S+ )?\bpip3? install\b[^&|;]*", runs)
    assert installs, "no pip install in the Dockerfile"
    for m in re.finditer(r"(\S+)\s+(\S+)\s+pip3?\s+install\b([^&|;]*)", runs):
        assert (m.group(1), m.group(2)) == ("python", "-m"), f"not `python -m pip`: {m.group(0)}"
        assert "--no-cache-dir" in m.group(3)
        assert "--constraint" in m.group(3) or "-c " in m.group(3), (
            "pip install without a constraint pinning the base's torch"
        )
    assert not re.search(r"(?<!-m )\bpip3? install", runs), "a bare `pip install`"


def test_the_image_leaves_the_wandb_mode_to_vrnn_fit(parser):
    # vrnn-fit's own rule (logger.wandb.mode, else $WANDB_MODE, else online under a sweep agent,
    # else offline) gives offline by default; an ENV WANDB_MODE would override the sweep case.
    # .ci/image_check runs the image with no mode set and checks that the run is offline.
    assert "WANDB_MODE" not in parser.envs
    assert not any(k.startswith("WANDB_") and "KEY" in k for k in parser.envs), "a baked-in key"


def copy_sources(parser) -> list[str]:
    sources = []
    for ins in instructions(parser, "COPY"):
        words = [w for w in shlex.split(ins["value"]) if not w.startswith("--")]
        assert not any(w.startswith("--from") for w in shlex.split(ins["value"]))
        sources += words[:-1]
    return sources


def test_copy_sources_exist_and_are_in_the_context(parser):
    rules = dockerignore_rules()
    sources = copy_sources(parser)
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), f"COPY source {src} is not in the repo"
        if src not in (".", "./"):
            assert not ignored(src.rstrip("/"), rules), f"COPY source {src} is in .dockerignore"


# .dockerignore, with Docker's rules: patterns in order, the last one that matches a path or
# one of its parent folders decides; `!` re-includes; `*` and `?` stay within one path element,
# `**` spans any number of them.


def _pattern_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            c = pattern[i]
            out += "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c)
            i += 1
    return re.compile(out)


def dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((negate, _pattern_regex(pattern)))
    return rules


def ignored(path: str, rules) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    result = False
    for negate, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            result = not negate
    return result


@pytest.mark.parametrize(
    "path",
    [
        "runs/demo/checkpoints/last.ckpt",
        "data_cache/synthetic_speech-0/train.h5",
        "wandb/offline-run-1/run.wandb",
        ".git/HEAD",
        ".venv-ci/bin/python",
        "vrnn_lightning/__pycache__/fit.cpython-311.pyc",
        "vrnn_lightning.egg-info/PKG-INFO",
        ".pytest_cache/README.md",
        "tests/test_dockerfile.py",
        "bench/out/table.md",
    ],
)
def test_dockerignore_keeps_outputs_and_caches_out(path):
    assert ignored(path, dockerignore_rules()), f"{path} would be sent to the build"


@pytest.mark.parametrize(
    "path",
    ["pyproject.toml", "README.md", "vrnn_lightning/fit.py", "conf/demo.yaml", "sweeps/a.yaml"],
)
def test_dockerignore_lets_the_package_and_configs_in(path):
    assert not ignored(path, dockerignore_rules()), f"{path} would be left out of the build"


def test_dockerignore_matcher_follows_docker_rules():
    rules = [(False, _pattern_regex("*")), (True, _pattern_regex("src"))]
    assert ignored("x.txt", rules) and not ignored("src/a/b.py", rules)
    rules = [(False, _pattern_regex("**/__pycache__"))]
    assert ignored("__pycache__/a.pyc", rules) and ignored("a/b/__pycache__/c.pyc", rules)
    assert not ignored("a/pycache.py", rules)


# what torch.compile and the caches need in the image (.ci/image_check runs model.compile=true
# in it, read-only, as a uid that is not the image's, with an unwritable $HOME)

CACHE_VARIABLES = (
    "XDG_CACHE_HOME",
    "TRITON_CACHE_DIR",
    "TORCHINDUCTOR_CACHE_DIR",
    "MPLCONFIGDIR",
    "WANDB_DIR",
    "WANDB_CACHE_DIR",
    "WANDB_CONFIG_DIR",
)


def test_the_image_installs_the_c_and_cpp_compilers_torch_compile_needs(parser):
    runs = [i["value"] for i in instructions(parser, "RUN")]
    installs = [r for r in runs if re.search(r"apt-get install\b", r)]
    assert installs, "no apt-get install: the runtime base has no C compiler for torch.compile"
    words = set(re.split(r"[\s\\]+", " ".join(installs)))
    assert {"gcc", "g++"} <= words, f"gcc and g++ are not installed: {installs}"
    assert any("--no-install-recommends" in r for r in installs)
    assert any("rm -rf /var/lib/apt/lists" in r for r in installs), "apt lists left in a layer"
    # the compilers are installed as root, before the image switches to its user
    (user,) = instructions(parser, "USER")
    assert all(
        i["startline"] < user["startline"]
        for i in instructions(parser, "RUN")
        if "apt-get" in i["value"]
    )
    # and the base's Python has the headers that Inductor and Triton compile against
    assert any("Python.h" in r for r in runs), "no check that the base Python has Python.h"


@pytest.mark.parametrize("name", CACHE_VARIABLES)
def test_every_cache_is_under_tmp(parser, name):
    # /tmp is writable under any uid: a tmpfs with --read-only, the host's under Apptainer
    value = parser.envs.get(name)
    assert value, f"ENV {name} is not set: the tool's default is under $HOME"
    assert value == "/tmp" or value.startswith("/tmp/"), f"{name}={value} is not under /tmp"


def test_cache_folders_are_world_writable_and_run_folders_group_0(parser):
    runs = " ".join(i["value"] for i in instructions(parser, "RUN"))
    assert re.search(r"chmod -R 1777 \S*XDG_CACHE_HOME", runs), "cache folders not world-writable"
    # OpenShift's arbitrary uid runs in group 0: runs/ and data_cache/ are group 0 and writable
    assert re.search(r"chown \S+:0 /workspace runs data_cache", runs)
    assert re.search(r"chmod g\+rwx /workspace runs data_cache", runs)
