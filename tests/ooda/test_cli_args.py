"""Arguments the command line refuses before any work: exit 2 naming the bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from ooda import AuditLog
from ooda.cli import main


@pytest.mark.parametrize(
    "args",
    [
        ["serve-ui", "--port", "99999"],
        ["serve", "--port", "-5"],
        ["run", "--config", "ooda.yaml", "--metrics-port", "65536"],
        ["run", "--config", "ooda.yaml", "--metrics-port", "http"],
    ],
)
def test_a_port_outside_0_to_65535_is_refused(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        main(args)
    assert refused.value.code == 2
    assert "port" in capsys.readouterr().err


def test_report_refuses_an_out_folder_it_cannot_write_into(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    AuditLog(tmp_path / "audit.db").close()
    (tmp_path / "pages.html").write_text("")
    args = ["report", "--audit", str(tmp_path / "audit.db"), "--out"]
    assert main([*args, str(tmp_path / "pages.html")]) == 2
    assert "pages.html is a file, not a folder to write into" in capsys.readouterr().out
    assert main([*args, str(tmp_path / "pages.html" / "sub")]) == 2
    assert f"cannot create {tmp_path / 'pages.html' / 'sub'}" in capsys.readouterr().out
    assert main([*args, str(tmp_path / "pages")]) == 0
    assert (tmp_path / "pages" / "index.html").exists()
