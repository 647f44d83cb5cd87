"""Each registry is defined once; where a torch-free mirror in genbench.config must stay (so that configs
validate without torch; tests/test_cli.py checks that importing it stays light), these tests hold it
equal to the registry it mirrors."""

from __future__ import annotations

from typing import Annotated, Union, get_args, get_origin

import pytest

from genbench.config import (
    DOWNLOADABLE_SETS,
    NET_ROLES,
    PLAYERS,
    TOY_SETS,
    BudgetConfig,
    DatasetName,
    MethodConfig,
    NetConfig,
    RunConfig,
)
from genbench.data import SOURCES
from genbench.methods import METHODS
from genbench.nets import NETS
from genbench.study import StudyBudget, StudyConfig


def _kinds(union) -> set[str]:
    """The ``kind`` literals of a discriminated union of config models."""
    while get_origin(union) is Annotated:
        union = get_args(union)[0]
    assert get_origin(union) is Union
    return {k for model in get_args(union) for k in get_args(model.model_fields["kind"].annotation)}


def test_players_are_the_methods_players():
    assert set(PLAYERS) == set(METHODS) == _kinds(MethodConfig)
    for kind, cls in METHODS.items():
        assert cls.players == PLAYERS[kind]
        assert cls.sample_player in cls.players and set(cls.data_players) <= set(cls.players)


def test_net_roles_are_the_players_and_the_nets_registry():
    assert set(NET_ROLES) == {p for players in PLAYERS.values() for p in players}
    kinds = [k for role in NET_ROLES.values() for k in role]
    assert len(kinds) == len(set(kinds))   # each kind fills one role
    assert set(kinds) == set(NETS) == _kinds(NetConfig)


def test_dataset_names_are_the_sources_and_toy_sets():
    assert tuple(SOURCES) == DOWNLOADABLE_SETS
    assert all(name == s.name for name, s in SOURCES.items())
    assert set(DOWNLOADABLE_SETS) | set(TOY_SETS) <= set(get_args(DatasetName))
    assert RunConfig.model_validate({"data": {"name": TOY_SETS[0]}, "nets": {"model": {"kind": "mlp"}}})


def test_study_budget_is_the_run_budget_listed_minutes_first():
    assert issubclass(StudyBudget, BudgetConfig)
    assert StudyConfig.model_fields["budget"].annotation is StudyBudget
    budget = StudyBudget(steps=3, epochs=1.5, minutes=2)
    assert list(budget.as_dict()) == ["minutes", "steps", "epochs"]
    assert list(budget.model_dump()) == ["minutes", "kimg", "steps", "epochs"]
    assert BudgetConfig(**budget.as_dict()).as_dict() == budget.as_dict()   # what train.budget receives
    with pytest.raises(ValueError, match="set at least one of steps, epochs, kimg, minutes"):
        StudyBudget()
