import pytest

from musiclord import __version__
from musiclord.cli import SUBCOMMANDS, main


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize("command", [c.replace("_", "-") for c in SUBCOMMANDS])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
