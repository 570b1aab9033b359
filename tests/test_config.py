from dataclasses import dataclass, field

import pytest

from musiclord.config import apply_overrides, from_dict, load_config, save_config, to_dict
from musiclord.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    steps: int = 10
    name: str = "a"


@dataclass(frozen=True)
class Outer:
    seed: int = 0
    flag: bool = False
    sizes: tuple[int, ...] = (1, 2)
    path: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_overrides_are_typed_and_nested():
    cfg = apply_overrides(Outer(), ["seed=3", "flag=true", "inner.lr=0.5", "sizes=4,5,6", "path=none"])
    assert cfg.seed == 3 and cfg.flag is True and cfg.inner.lr == 0.5 and cfg.sizes == (4, 5, 6)
    assert cfg.path is None
    assert Outer().seed == 0  # frozen original untouched


@pytest.mark.parametrize(
    "override",
    ["nope=1", "seed=abc", "seed=1.5", "flag=maybe", "inner.nope=2", "inner=3", "seed", "seed.x=1"],
)
def test_bad_overrides_are_clear_errors(override):
    with pytest.raises(ConfigError):
        apply_overrides(Outer(), [override])


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(Outer(), ["inner.name=b", "sizes=7"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(Outer, tmp_path / "c.yaml") == cfg
    assert from_dict(Outer, to_dict(cfg)) == cfg


def test_yaml_unknown_key_and_missing_file(tmp_path):
    (tmp_path / "c.yaml").write_text("seed: 1\nbogus: 2\n")
    with pytest.raises(ConfigError, match="bogus"):
        load_config(Outer, tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("seed: [1,\n")
    with pytest.raises(ConfigError):
        load_config(Outer, tmp_path / "bad.yaml")


def test_yaml_is_parsed_safely(tmp_path):
    (tmp_path / "evil.yaml").write_text("seed: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError):
        load_config(Outer, tmp_path / "evil.yaml")
