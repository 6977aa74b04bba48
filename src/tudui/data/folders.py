"""Finding labelled images in folders: class folders, and the tutorial's label-file layout.

A sample is ``(image path, class name)``. Every problem found in a folder is reported in
one message, so a user fixes a dataset in one pass instead of one error per run. Hidden
folders (``.git``, ``.ipynb_checkpoints``) are not data; links out of the data folder are
refused; links inside it whose target is gone are kept, to be reported with the other
unreadable images.
"""

import logging
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tudui.data.images import IMAGE_EXTENSIONS, is_image_file
from tudui.errors import DataError
from tudui.text import printable

log = logging.getLogger(__name__)

Sample = tuple[Path, str]
MAX_LABEL_BYTES = 1024  # a class name; a larger "label file" is something else
# A label in at most this many files, while another is in ten or more, looks like a typo.
RARE_LABEL_FILES = 2


def list_paths(paths: Iterable[Path | str], limit: int = 20) -> str:
    """``a, b, c`` for an error message; past ``limit`` names, how many more."""
    paths = [printable(str(p)) for p in paths]
    shown = ", ".join(paths[:limit])
    return shown if len(paths) <= limit else f"{shown} and {len(paths) - limit} more"


def _unreadable(error: OSError) -> None:
    raise DataError(
        f"Cannot read the folder {error.filename} ({error.strerror}): fix its permissions "
        "or move it out of the data."
    )


def followed(path: Path, root: Path) -> Path:
    """Where ``path`` leads, links followed: refused unless it is inside ``root`` (resolved),
    the data folder. A link out of it would make any file a dataset's image or label (a
    label file linked to ``/proc/self/environ`` once made the environment a class name)."""
    target = Path(os.path.realpath(path))  # a loop of links: no error, a path that is none
    if path.is_symlink() and not target.is_relative_to(root):
        raise DataError(
            f"{printable(str(path))} is a link to {printable(str(target))}, outside the data "
            f"folder {printable(str(root))}: links are followed only inside it. Remove the "
            "link, or copy what it leads to into the data folder."
        )
    return target


def image_files(folder: Path, root: Path | None = None) -> list[Path]:
    """Every image under ``folder``, sorted, hidden folders left out. Links to image files
    are followed inside ``root`` (the data folder; ``folder`` by default) and refused out
    of it; links to folders are not walked (inside the data they are counted where they
    lead, as torchvision's ImageFolder does): no loop, no folder twice. The walk keeps its
    own stack, so no depth of nesting reaches Python's recursion limit."""
    root = (root or folder).resolve()
    found: list[Path] = []
    waiting = [folder]
    while waiting:
        here = waiting.pop()
        try:
            entries = sorted(os.scandir(here), key=lambda entry: entry.name, reverse=True)
        except OSError as err:
            _unreadable(err)
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if not entry.name.startswith("."):
                    waiting.append(path)
            elif entry.is_symlink() and entry.is_dir():
                followed(path, root)  # out of the data: refused; inside: counted there
            elif is_image_file(path):
                if entry.is_symlink():
                    followed(path, root)
                found.append(path)
    return sorted(found)


def _subfolders(folder: Path, root: Path) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except OSError as err:
        _unreadable(err)
    found = sorted(p for p in entries if p.is_dir() and not p.name.startswith("."))
    seen: dict[Path, Path] = {}
    here = folder.resolve()
    for path in sorted(found, key=Path.is_symlink):  # folders first, then links to them
        target = followed(path, root)
        # A class that holds the folder being read (or the data folder), or lies inside
        # another class (or holds one): its images would count under two classes.
        above = [p for p in (here, root) if p.is_relative_to(target)]
        overlap = [seen[t] for t in seen if t.is_relative_to(target) or target.is_relative_to(t)]
        if above or overlap:
            same = f"{above[0]}, the folder it is in" if above else str(overlap[0])
            raise DataError(
                f"{printable(str(path))} leads to {printable(same)}: its images would "
                "be counted twice, under two classes. Remove the link."
            )
        seen[target] = path
    return found


def _checked_root(folder: Path, root: Path | None) -> Path:
    """The data folder (``folder`` by default), resolved, once ``folder`` is a folder in it:
    a split folder linked out of the data folder is refused as any link."""
    if folder.is_file():
        raise DataError(f"{folder} is a file, not a folder of images. Check data.root.")
    if not folder.is_dir():
        raise DataError(f"Data folder {folder} does not exist. Check data.root.")
    root = (root or folder).resolve()
    followed(folder, root)
    return root


def class_folder_samples(folder: Path, root: Path | None = None) -> list[Sample]:
    """``<folder>/<class>/**/<image>``: the folder name is the label (torchvision's
    ImageFolder). Links are followed inside ``root``, the data folder (``folder`` by default)."""
    root = _checked_root(folder, root)
    classes = _subfolders(folder, root)
    if not classes:
        raise DataError(
            f"{folder} has no class folders: expected {folder}/<class name>/<images>, "
            "one folder per class."
        )
    samples = [(image, c.name) for c in classes for image in image_files(c, root)]
    found = Counter(label for _, label in samples)
    empty = [c for c in classes if not found[c.name]]
    if empty:
        raise DataError(
            f"Class folders without any image file: {list_paths(empty)}. Add images to them "
            f"or remove them (image files end in {', '.join(IMAGE_EXTENSIONS)})."
        )
    return samples


def read_label(path: Path) -> str:
    """The class name in a label file: UTF-8 (a byte-order mark is not part of it), stripped.

    Raises:
        OSError, UnicodeDecodeError, ValueError: the file cannot be a label file.
    """
    if not path.is_file():
        raise ValueError("not a regular file")
    # What is read is capped, not what the file says its size is (/proc files say 0).
    with open(path, "rb") as f:
        data = f.read(MAX_LABEL_BYTES + 1)
    if len(data) > MAX_LABEL_BYTES:
        raise ValueError(f"larger than {MAX_LABEL_BYTES} bytes, too large for a class name")
    return data.decode("utf-8-sig").strip()


def label_file_samples(folder: Path, root: Path | None = None) -> list[Sample]:
    """The tutorial's layout: ``<x>_image/<stem>.<ext>`` beside ``<x>_label/<stem>.txt``.

    The text file holds the class name. Images and labels are paired by file name, not by
    position. A folder without ``*_image`` folders is read as class folders, so val/ and
    test/ may use either layout.
    """
    root = _checked_root(folder, root)
    image_dirs = [p for p in _subfolders(folder, root) if p.name.endswith("_image")]
    if not image_dirs:
        return class_folder_samples(folder, root)
    samples: list[Sample] = []
    problems: dict[str, list[Path | str]] = {
        "images without a label file": [],
        "label files without an image": [],
        "empty label files": [],
        "unreadable label files": [],
        "images sharing one label file (same name, other extension)": [],
    }
    for image_dir in image_dirs:
        label_dir = folder / (image_dir.name.removesuffix("_image") + "_label")
        if not label_dir.is_dir():
            raise DataError(
                f"{image_dir} has no label folder beside it: expected {label_dir} holding "
                "<image name>.txt with the class name for each image."
            )
        images = [p for p in image_files(image_dir, root) if p.parent == image_dir]
        stems = Counter(p.stem for p in images)
        problems["images sharing one label file (same name, other extension)"] += [
            p for p in images if stems[p.stem] > 1
        ]
        labels = {p.stem: p for p in label_dir.glob("*.txt") if not p.name.startswith(".")}
        for label in labels.values():
            followed(label, root)
        used: set[str] = set()
        for image in images:
            # The tutorial's own labelling script cut only ".jpg", so formica.jpeg's label is
            # formica.jpeg.txt: accept the whole file name as well as the name minus extension.
            key = image.stem if image.stem in labels else image.name
            if key not in labels:
                problems["images without a label file"].append(image)
                continue
            used.add(key)
            try:
                name = read_label(labels[key])
            except (OSError, UnicodeDecodeError, ValueError) as err:
                problems["unreadable label files"].append(f"{labels[key]} ({err})")
                continue
            if name:
                samples.append((image, name))
            else:
                problems["empty label files"].append(labels[key])
        problems["label files without an image"] += [
            labels[key] for key in sorted(labels.keys() - used)
        ]
    found = [f"{what}: {list_paths(paths)}" for what, paths in problems.items() if paths]
    if found:
        raise DataError(
            f"{folder} does not pair every image with a label: {'; '.join(found)}. Each "
            "image <x>_image/<name>.<ext> needs <x>_label/<name>.txt holding its class name "
            "in UTF-8."
        )
    if not samples:
        raise DataError(f"{folder} has no images in {list_paths(image_dirs)}.")
    _warn_of_rare_labels(samples, folder)
    return samples


def _warn_of_rare_labels(samples: list[Sample], folder: Path) -> None:
    """One warning for labels that look like typos of another (``bess`` among ``bees``)."""
    counts = Counter(label for _, label in samples)
    common = max(counts.values())
    rare = [label for label, n in counts.items() if n <= RARE_LABEL_FILES and common >= 10]
    if rare:
        files = {label: [path for path, name in samples if name == label] for label in rare}
        listed = "; ".join(f"{label!r} in {list_paths(files[label])}" for label in rare)
        log.warning(
            "%s: labels in only a few files, while others have %d: %s. A typo? Each becomes "
            "a class of its own.",
            folder,
            common,
            listed,
        )
