"""The offline bundle for a GPU machine that reaches no package index: what pack.sh downloaded, cut
to what the machine lacks and split into parts that one device call can carry each.

    python bench/gpu/bundle.py split .gpu-bundle          # after pack.sh's downloads in .gpu-bundle/all
    python bench/gpu/bundle.py check bench/gpu/requirements.txt   # on the machine, after the install

``split``: wheels of packages the device image already has (device-packages.txt) are left out and
listed in ``device-provided.txt`` (the rehearsal installs those from the index, as the image has
them); Ray's wheel is repacked without what rt-ray never loads; the rest is packed, largest first,
into parts of at most --part-mib each. ``check``: every requirement of the kit, followed through
each installed distribution's own requirements, is met by what is installed now (the image plus the
bundle on PYTHONPATH); it names each one that is not. pip has no command for that: ``pip check``
judges every package installed, and the image's own unrelated ones would drown the answer.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import zipfile
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).parent
# Inside Ray's wheel, never loaded by rt-ray: the Java worker (32 MB of 79) and the dashboard's web
# client (rt-ray's clusters run without the dashboard). Facts: shared/docs/gpu-machine.md.
RAY_UNUSED = ("ray/jars/", "ray/dashboard/client/")
MIB = 1024 * 1024


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(path: Path) -> str:
    return normalized(path.name.split("-")[0])


def wheel_version(path: Path) -> str:
    return path.name.split("-")[1]


def device_packages() -> set[str]:
    lines = (HERE / "device-packages.txt").read_text().splitlines()
    return {normalized(line) for line in lines if line.strip() and not line.startswith("#")}


def repack_without(wheel: Path, prefixes: tuple[str, ...], out: Path) -> Path:
    """The same wheel less the files under ``prefixes``, its RECORD cut to match (pip checks it)."""
    target = out / wheel.name
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as repacked:
        for item in source.infolist():
            if item.filename.startswith(prefixes):
                continue
            data = source.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                kept = [line for line in data.decode().splitlines() if not line.startswith(prefixes)]
                data = ("\n".join(kept) + "\n").encode()
            repacked.writestr(item, data)
    return target


def parts_by_size(wheels: list[Path], limit: int) -> list[list[Path]]:
    """First fit, largest first: few parts, each at most ``limit`` bytes."""
    parts: list[list[Path]] = []
    sizes: list[int] = []
    for wheel in sorted(wheels, key=lambda w: w.stat().st_size, reverse=True):
        size = wheel.stat().st_size
        if size > limit:
            raise SystemExit(f"{wheel.name} alone is {size / MIB:.1f} MiB, over the part limit of {limit / MIB:.0f} MiB")
        for index, used in enumerate(sizes):
            if used + size <= limit:
                parts[index].append(wheel)
                sizes[index] += size
                break
        else:
            parts.append([wheel])
            sizes.append(size)
    return parts


def split(bundle: Path, part_mib: float) -> None:
    downloaded = sorted((bundle / "all").glob("*.whl"))
    image = device_packages()
    provided = [w for w in downloaded if wheel_name(w) in image]
    needed = [w for w in downloaded if wheel_name(w) not in image]
    (bundle / "device-provided.txt").write_text("".join(f"{wheel_name(w)}=={wheel_version(w)}\n" for w in provided))
    slim = bundle / "slim"
    slim.mkdir(exist_ok=True)
    needed = [repack_without(w, RAY_UNUSED, slim) if wheel_name(w) == "ray" else w for w in needed]
    for index, part in enumerate(parts_by_size(needed, int(part_mib * MIB)), start=1):
        folder = bundle / f"part{index}"
        folder.mkdir()
        for wheel in part:
            shutil.copy2(wheel, folder / wheel.name)
        size = sum(w.stat().st_size for w in part)
        print(f"{folder}: {len(part)} wheels, {size / MIB:.1f} MiB")
    shutil.rmtree(slim)
    print(f"left out, the device image has them: {len(provided)} ({', '.join(wheel_name(w) for w in provided)})")


def requirements_of(lines: list[str]):
    from packaging.requirements import Requirement

    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            yield Requirement(line)


def unmet(requirements_file: Path) -> list[str]:
    """Each requirement in the closure of ``requirements_file`` that no installed distribution meets."""
    from packaging.requirements import Requirement

    problems, seen = [], set()
    todo = [(r, "requirements.txt") for r in requirements_of(requirements_file.read_text().splitlines())]
    while todo:
        requirement, wanted_by = todo.pop()
        key = (normalized(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            installed = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{requirement.name} is missing (needed by {wanted_by}: {requirement})")
            continue
        if not requirement.specifier.contains(installed.version, prereleases=True):
            problems.append(f"{requirement.name} {installed.version} is installed, {wanted_by} needs {requirement}")
        for line in installed.requires or []:
            needed = Requirement(line)
            extras = requirement.extras or {""}
            if needed.marker is None or any(needed.marker.evaluate({"extra": extra}) for extra in extras):
                todo.append((needed, f"{installed.metadata['Name']} {installed.version}"))
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    splitting = commands.add_parser("split")
    splitting.add_argument("bundle", type=Path)
    splitting.add_argument("--part-mib", type=float, default=58)
    checking = commands.add_parser("check")
    checking.add_argument("requirements", type=Path)
    args = parser.parse_args()
    if args.command == "split":
        split(args.bundle, args.part_mib)
        return
    problems = unmet(args.requirements)
    for problem in problems:
        print(f"bundle incomplete: {problem}")
    if problems:
        sys.exit(1)
    print(f"bundle complete: every requirement in the closure of {args.requirements} is installed")


if __name__ == "__main__":
    main()
