"""Finding labelled images in folders: class folders, and the tutorial's label-file layout.

A sample is ``(image path, class name)``. Every problem found in a folder is reported in
one message, so a user fixes a dataset in one pass instead of one error per run.
"""

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tudui.data.images import IMAGE_EXTENSIONS, is_image_file
from tudui.errors import DataError

Sample = tuple[Path, str]


def list_paths(paths: Iterable[Path], limit: int = 20) -> str:
    """``a, b, c`` for an error message; past ``limit`` names, how many more."""
    paths = [str(p) for p in paths]
    shown = ", ".join(paths[:limit])
    return shown if len(paths) <= limit else f"{shown} and {len(paths) - limit} more"


def image_files(folder: Path) -> list[Path]:
    """Every image under ``folder``, recursively, sorted; other files are ignored."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def class_folder_samples(folder: Path) -> list[Sample]:
    """``<folder>/<class>/**/<image>``: the folder name is the label (torchvision's ImageFolder)."""
    if not folder.is_dir():
        raise DataError(f"Data folder {folder} does not exist. Check data.root.")
    classes = _subfolders(folder)
    if not classes:
        raise DataError(
            f"{folder} has no class folders: expected {folder}/<class name>/<images>, "
            "one folder per class."
        )
    samples = [(image, c.name) for c in classes for image in image_files(c)]
    found = Counter(label for _, label in samples)
    empty = [c for c in classes if not found[c.name]]
    if empty:
        raise DataError(
            f"Class folders without any image file: {list_paths(empty)}. Add images to them "
            f"or remove them (image files end in {', '.join(IMAGE_EXTENSIONS)})."
        )
    return samples


def label_file_samples(folder: Path) -> list[Sample]:
    """The tutorial's layout: ``<x>_image/<stem>.<ext>`` beside ``<x>_label/<stem>.txt``.

    The text file holds the class name. Images and labels are paired by file name, not by
    position. A folder without ``*_image`` folders is read as class folders, so val/ and
    test/ may use either layout.
    """
    image_dirs = sorted(folder.glob("*_image")) if folder.is_dir() else []
    if not image_dirs:
        return class_folder_samples(folder)
    samples: list[Sample] = []
    unlabelled: list[Path] = []
    orphan_labels: list[Path] = []
    empty_labels: list[Path] = []
    same_stem: list[Path] = []
    for image_dir in image_dirs:
        label_dir = folder / (image_dir.name.removesuffix("_image") + "_label")
        if not label_dir.is_dir():
            raise DataError(
                f"{image_dir} has no label folder beside it: expected {label_dir} holding "
                "<image name>.txt with the class name for each image."
            )
        images = [p for p in sorted(image_dir.iterdir()) if p.is_file() and is_image_file(p)]
        stems = Counter(p.stem for p in images)
        same_stem += [p for p in images if stems[p.stem] > 1]
        labels = {p.stem: p for p in label_dir.glob("*.txt") if not p.name.startswith(".")}
        used: set[str] = set()
        for image in images:
            # The tutorial's own labelling script cut only ".jpg", so formica.jpeg's label is
            # formica.jpeg.txt: accept the whole file name as well as the name minus extension.
            key = image.stem if image.stem in labels else image.name
            if key not in labels:
                unlabelled.append(image)
                continue
            used.add(key)
            try:
                name = labels[key].read_text(encoding="utf-8").strip()
            except UnicodeDecodeError:
                raise DataError(f"{labels[key]} is not UTF-8 text: save it as UTF-8.") from None
            if name:
                samples.append((image, name))
            else:
                empty_labels.append(labels[key])
        orphan_labels += [labels[key] for key in sorted(labels.keys() - used)]
    problems = [
        f"{what}: {list_paths(paths)}"
        for what, paths in [
            ("images without a label file", unlabelled),
            ("label files without an image", orphan_labels),
            ("empty label files", empty_labels),
            ("images sharing one label file (same name, other extension)", same_stem),
        ]
        if paths
    ]
    if problems:
        raise DataError(
            f"{folder} does not pair every image with a label: {'; '.join(problems)}. Each "
            "image <x>_image/<name>.<ext> needs <x>_label/<name>.txt holding its class name."
        )
    if not samples:
        raise DataError(f"{folder} has no images in {list_paths(image_dirs)}.")
    return samples
