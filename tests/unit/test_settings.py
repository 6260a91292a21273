from __future__ import annotations

from pathlib import Path

import pytest

from workers.settings import Settings, SettingsError, get_settings


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("POLARIS_SETTINGS_FILE", "POLARIS_KAFKA_BOOTSTRAP", "POLARIS_POSTGRES_DSN"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()


def test_defaults_work_on_a_fresh_machine() -> None:
    settings = get_settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.postgres.port == 5433 and settings.postgres.database == "polaris"
    assert settings.redis_port == 6380 and settings.neo4j_port == 7687


def test_bad_broker_names_the_setting_and_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLARIS_KAFKA_BOOTSTRAP", "kafka-without-port")
    with pytest.raises(SettingsError) as error:
        get_settings()
    message = str(error.value)
    assert "kafka_bootstrap" in message and "POLARIS_KAFKA_BOOTSTRAP" in message
    assert "kafka-without-port" in message and "host:port" in message


def test_bad_dsn_names_the_setting_and_the_value_but_not_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLARIS_POSTGRES_DSN", "mysql://admin:hunter2@db:3306/x")
    with pytest.raises(SettingsError) as error:
        get_settings()
    message = str(error.value)
    assert "postgres_dsn" in message and "mysql://db:3306/x" in message
    assert "hunter2" not in message


def test_settings_file_is_read_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "polaris.yaml"
    file.write_text("redis_url: redis://10.0.0.5:7000/1\nkafka_bootstrap: a:1\n")
    monkeypatch.setenv("POLARIS_SETTINGS_FILE", str(file))
    monkeypatch.setenv("POLARIS_KAFKA_BOOTSTRAP", "b:2")
    settings = get_settings()
    assert settings.redis_url == "redis://10.0.0.5:7000/1" and settings.kafka_bootstrap == "b:2"


def test_unknown_key_in_settings_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "polaris.yaml"
    file.write_text("kafka_bootstrp: a:1\n")
    monkeypatch.setenv("POLARIS_SETTINGS_FILE", str(file))
    with pytest.raises(SettingsError, match="kafka_bootstrp"):
        get_settings()


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError):
        settings.kafka_bootstrap = "x:1"  # type: ignore[misc]
