"""Links in data folders: followed only inside the data folder, each folder walked once;
label files read up to a byte cap, whatever size they claim."""

import pytest

from tudui.data.folders import class_folder_samples, label_file_samples
from tudui.errors import DataError

from .helpers import make_class_folders, make_label_folders, write_image


def test_a_label_file_linked_out_of_the_data_is_refused(tmp_path, monkeypatch):
    """Linked to /proc/self/environ (size 0), a label file once made the environment, a
    token included, a class name in the checkpoint, the reports and the log."""
    monkeypatch.setenv("SECRET_TOKEN", "do-not-leak")
    root = make_label_folders(tmp_path / "data", {"ants": 3, "bees": 3})
    label = root / "ants_label" / "img0.txt"
    label.unlink()
    label.symlink_to("/proc/self/environ")
    with pytest.raises(DataError, match=r"is a link to /proc/\d+/environ, outside the data") as e:
        label_file_samples(root)
    assert "do-not-leak" not in str(e.value)


def test_a_label_file_is_read_up_to_its_cap(tmp_path):
    root = make_label_folders(tmp_path / "data", {"ants": 3, "bees": 3})
    (root / "ants_label" / "img0.txt").write_text("ants" * 1000)
    with pytest.raises(DataError, match="larger than 1024 bytes"):
        label_file_samples(root)


def test_a_class_folder_linked_to_the_data_folder_is_refused(tmp_path):
    """``again -> .`` once made a third class holding every image twice."""
    root = make_class_folders(tmp_path / "data", {"ants": 3, "bees": 3})
    (root / "again").symlink_to(".")
    with pytest.raises(DataError, match="again leads to .*data, the folder it is in"):
        class_folder_samples(root)
    (root / "again").unlink()
    (root / "again").symlink_to("ants")
    with pytest.raises(DataError, match=f"again leads to {root / 'ants'}"):
        class_folder_samples(root)


def test_links_inside_the_data_are_followed_once_and_loops_end(tmp_path):
    root = make_class_folders(tmp_path / "data", {"ants": 3, "bees": 3})
    (root / "ants" / "loop").symlink_to("..")  # back up to the data folder: a loop
    (root / "ants" / "self").symlink_to(".")
    (root / "bees" / "more").mkdir()
    (root / "bees" / "more" / "linked.png").symlink_to(next((root / "bees").glob("img*")))
    samples = class_folder_samples(root)
    assert sorted(label for _, label in samples) == ["ants"] * 3 + ["bees"] * 4


def test_an_image_linked_out_of_the_data_is_refused(tmp_path):
    elsewhere = make_class_folders(tmp_path / "elsewhere", {"x": 1})
    root = make_class_folders(tmp_path / "data", {"ants": 2, "bees": 2})
    (root / "ants" / "outside.jpg").symlink_to(next((elsewhere / "x").iterdir()))
    with pytest.raises(DataError, match="outside.jpg is a link to .*, outside the data folder"):
        class_folder_samples(root)


def test_deeply_nested_folders_do_not_reach_the_recursion_limit(tmp_path):
    root = make_class_folders(tmp_path / "data", {"ants": 2, "bees": 2})
    deep = root / "ants"
    for _ in range(1100):  # past Python's recursion limit (os.walk recurses before 3.12)
        deep = deep / "d"
        deep.mkdir()  # one at a time: os.makedirs recurses too
    write_image(deep / "deep.png")
    try:
        assert len(class_folder_samples(root)) == 5
    finally:  # removed here, bottom up: shutil.rmtree (pytest's clean-up) recurses too
        (deep / "deep.png").unlink()
        while deep != root / "ants":
            deep.rmdir()
            deep = deep.parent


def test_a_glob_through_a_link_loop_returns(tmp_path):
    """``img='.../**/*.jpg'`` over a link back up once never returned (glob.glob walks
    into links to folders)."""
    from tudui.predict import image_paths

    root = make_class_folders(tmp_path / "photos", {"a": 1, "b": 1})
    (root / "a" / "up").symlink_to("..")
    found = image_paths(f"{root}/**/*.jpg")
    assert found == sorted(root.glob("[ab]/*.jpg"))
