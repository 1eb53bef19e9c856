"""Cluster settings: halo.toml `nodes`, models.toml `nodes` / `tensor_split`, node addresses."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.api.auth import is_loopback
from app.catalog.catalog import Defaults, scan
from app.config import load_settings
from app.hardware.nodes import NodeAddressError, parse_address
from tests.conftest import SMOLLM, _require


def test_node_addresses() -> None:
    assert parse_address("box2:50052") == ("box2", 50052)
    assert parse_address("10.0.0.2:1") == ("10.0.0.2", 1)
    for bad in ("box2", ":50052", "box2:", "box2:0", "box2:70000", "box2:x"):
        with pytest.raises(NodeAddressError):
            parse_address(bad)


def test_nodes_from_toml_and_env(tmp_path: Path) -> None:
    toml = tmp_path / "halo.toml"
    toml.write_text('nodes = ["box2:50052", "box3:50052"]\n')
    assert load_settings({}, toml, env={}).nodes == ["box2:50052", "box3:50052"]
    assert load_settings({}, env={"HALO_NODES": "a:1, b:2"}).nodes == ["a:1", "b:2"]
    with pytest.raises(ValidationError, match="host:port"):
        load_settings({}, env={"HALO_NODES": "box2"})
    with pytest.raises(ValidationError, match="twice"):
        load_settings({}, env={"HALO_NODES": "a:1,a:1"})


def test_loopback_hosts() -> None:
    assert all(map(is_loopback, ("127.0.0.1", "127.1.2.3", "localhost", "::1")))
    assert not any(map(is_loopback, ("0.0.0.0", "10.0.0.2", "box2", "")))


def _catalog(tmp_path: Path, table: str, nodes: tuple[str, ...]) -> tuple[dict[str, object],
                                                                           list[str]]:
    (tmp_path / SMOLLM.name).symlink_to(_require(SMOLLM))
    (tmp_path / "models.toml").write_text(f'[models.m]\npath = "{SMOLLM.name}"\n{table}')
    catalog = scan(tmp_path, tmp_path / "models.toml", Defaults(512, 1, 0, nodes))
    entries = {e.id: (e.nodes, e.tensor_split) for e in catalog}
    return dict(entries), [p.reason for p in catalog.problems]


def test_model_nodes_all_and_subsets(tmp_path: Path) -> None:
    entries, problems = _catalog(tmp_path, 'nodes = "all"\n', ("a:1", "b:2"))
    assert entries["m"] == (("a:1", "b:2"), None)
    assert not problems


def test_model_nodes_must_be_cluster_nodes(tmp_path: Path) -> None:
    entries, problems = _catalog(tmp_path, 'nodes = ["c:3"]\n', ("a:1",))
    assert "m" not in entries
    assert "not in halo.toml's nodes" in problems[0]


def test_tensor_split_needs_one_share_per_place(tmp_path: Path) -> None:
    entries, problems = _catalog(tmp_path, 'nodes = "all"\ntensor_split = [1, 1]\n',
                                 ("a:1", "b:2"))
    assert "m" not in entries
    assert "needs 3 shares" in problems[0]
