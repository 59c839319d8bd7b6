from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


def linked_data_dir(tmp_path, leave_out=()) -> Path:
    """A data folder (for ``LAB_DATA_DIR``) that links to the committed files, less those named in ``leave_out``,
    which a test then writes itself."""
    d = tmp_path / "data"
    d.mkdir()
    for f in (ROOT / "data").iterdir():
        if f.name not in leave_out:
            (d / f.name).symlink_to(f)
    return d


@pytest.fixture(scope="module", params=["pretrained", "pretrained-wide"])
def backbone(request):
    """Each backbone a study that runs on both (``--backbone``) has a committed report for."""
    return request.param
