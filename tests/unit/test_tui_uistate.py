"""What the interactive client remembers between runs (`tui.uistate`): a small JSON
file under the state directory; missing, damaged or unwritable files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailbag.errors import StoreError
from mailbag.paths import Paths
from mailbag.tui.uistate import UiState


def test_nothing_remembered_yet_then_saved_and_read_back(tmp_path: Path) -> None:
    path = Paths(tmp_path, tmp_path / "data", tmp_path / "state").tui_state_file
    assert path == tmp_path / "state" / "tui.json"
    state, problem = UiState.load(path)
    assert problem is None and not state.threaded("work", "INBOX")
    assert not path.exists()  # nothing written until something changes

    state.set_threaded("work", "INBOX", True)
    state.set_threaded("work", "Lists/python", True)
    state.set_threaded("home", "INBOX", True)
    state.set_threaded("home", "INBOX", False)
    assert json.loads(path.read_text()) == {
        "version": 1,
        "threaded": {"work": ["INBOX", "Lists/python"]},
    }
    again, problem = UiState.load(path)
    assert problem is None
    assert again.threaded("work", "INBOX") and again.threaded("work", "Lists/python")
    assert not again.threaded("home", "INBOX") and not again.threaded("work", "Sent")
    assert [p.name for p in path.parent.iterdir()] == ["tui.json"]  # no temporary left


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"\xff\xfe", b"[1, 2]", b'{"threaded": {"work": "INBOX"}}', b'{"threaded": 3}'],
)
def test_a_damaged_file_is_reported_and_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "tui.json"
    path.write_bytes(content)
    state, problem = UiState.load(path)
    assert problem is not None and str(path) in problem and "defaults" in problem
    assert not state.threaded("work", "INBOX")
    state.set_threaded("work", "INBOX", True)  # the next change writes a good one
    assert UiState.load(path)[0].threaded("work", "INBOX")


def test_an_unwritable_state_directory_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    state, problem = UiState.load(blocker / "tui.json")
    assert problem is not None  # it cannot even be read
    with pytest.raises(StoreError) as caught:
        state.set_threaded("work", "INBOX", True)
    assert "could not save" in caught.value.message and caught.value.hint
    assert state.threaded("work", "INBOX")  # still on for this run
