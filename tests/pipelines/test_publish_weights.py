"""Publish copies the blend weights chosen for the champion version (its registry tag) into
the publication: read from a real MLflow registry (no Spark needed)."""

from __future__ import annotations

import logging

import pytest

from pipelines import publish
from recolake import tracking
from recolake.ranking import Weights
from tests.conftest import make_settings


@pytest.fixture
def registry(tmp_path):
    settings = make_settings(tmp_path)
    client = tracking.configure(settings)
    client.create_registered_model(settings.registered_model_name)
    source = tmp_path / "model"
    source.mkdir()

    def version(tags: dict[str, str]):
        made = client.create_model_version(settings.registered_model_name, str(source), tags=tags)
        client.set_registered_model_alias(
            settings.registered_model_name, settings.champion_alias, made.version
        )
        return client.get_model_version_by_alias(
            settings.registered_model_name, settings.champion_alias
        )

    return version


def test_the_champions_tag_becomes_the_served_weights(registry, caplog):
    chosen = Weights(als=0.4, popular=0.7, anchor_decay=0.6)
    champion = registry({tracking.SERVED_WEIGHTS_TAG: chosen.to_json()})
    assert publish.served_weights(champion) == chosen

    untagged = registry({})
    with caplog.at_level(logging.WARNING, logger="recolake.publish"):
        assert publish.served_weights(untagged) is None
    assert f"no {tracking.SERVED_WEIGHTS_TAG} tag" in caplog.text


def test_a_malformed_tag_stops_the_publish(registry):
    champion = registry({tracking.SERVED_WEIGHTS_TAG: '{"als": -1}'})
    with pytest.raises(ValueError, match="not valid blend weights"):
        publish.served_weights(champion)
