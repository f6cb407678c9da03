"""local/backing_services without services: the /var/tmp cluster's lifetime, the topics' one definition, env."""

from pathlib import Path

import pytest

from local.backing_services import browser, postgres, settings
from local.backing_services.settings import Config, Topic, template_topics

pytestmark = pytest.mark.unit


@pytest.fixture
def fallback_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "var-tmp"
    root.mkdir()
    monkeypatch.setattr(postgres, "FALLBACK_ROOT", root)
    return root


def fallback_cluster(root: Path, name: str, owner: Path | None) -> Path:
    folder = root / f"logpipe-{name}"
    (folder / "postgres" / "data").mkdir(parents=True)
    (folder / "postgres" / "data" / "PG_VERSION").write_text("17\n")
    if owner is not None:
        (folder / "owner").write_text(f"{owner}\n")
    return folder


def test_a_cluster_whose_clone_is_gone_is_removed(fallback_root: Path, tmp_path: Path) -> None:
    live_clone = tmp_path / "clone" / "local" / ".state"
    live_clone.mkdir(parents=True)
    orphan = fallback_cluster(fallback_root, "orphan", tmp_path / "deleted" / "local" / ".state")
    alive = fallback_cluster(fallback_root, "alive", live_clone)
    unknown = fallback_cluster(fallback_root, "unknown", None)
    postgres.remove_orphaned_fallbacks()
    assert not orphan.exists()
    assert alive.exists() and unknown.exists()


def test_down_purge_removes_the_clones_own_fallback_cluster(
    fallback_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "clone" / "local" / ".state"
    monkeypatch.setenv("LOGPIPE_STATE_DIR", str(state))
    service = postgres.Postgres(Config.from_env())
    folder = fallback_cluster(fallback_root, service.fallback_folder.name.removeprefix("logpipe-"), state)
    (state / "postgres").mkdir(parents=True)
    service.location_file.write_text(f"{folder / 'postgres'}\n")
    assert service.home == folder / "postgres"
    service.purge()
    assert not folder.exists() and not service.location_file.exists()
    assert service.home == state / "postgres"


def test_purge_leaves_a_cluster_inside_the_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGPIPE_STATE_DIR", str(tmp_path / "state"))
    service = postgres.Postgres(Config.from_env())
    service.data.mkdir(parents=True)
    service.purge()
    assert service.data.exists()


def test_the_topics_come_from_the_templates_parameters(tmp_path: Path) -> None:
    assert template_topics() == (Topic("log-events", 6), Topic("log-events-dlq", 1))
    other = tmp_path / "template.yaml"
    other.write_text(
        settings.TEMPLATE.read_text()
        .replace("Default: log-events-dlq", "Default: dead")
        .replace("Default: 6\n", "Default: 12\n", 1)
    )
    assert template_topics(other) == (Topic("log-events", 12), Topic("dead", 1))


def test_env_turns_the_templates_aws_wiring_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL", "KAFKA_TOPIC", "KAFKA_DLQ_TOPIC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOGPIPE_KAFKA_PORT", "19092")
    lines = Config.from_env().env_lines()
    assert "export KAFKA_AUTH=none" in lines
    assert "export DATABASE_SECRET_ARN=''" in lines
    assert "export REDIS_SECRET_ARN=''" in lines
    assert "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092" in lines
    assert "export KAFKA_TOPIC=log-events" in lines


def test_the_browser_step_installs_only_the_missing_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    installed: list[list[str]] = []
    monkeypatch.setattr(browser, "apt_install", lambda packages, reason: installed.append(packages))
    on_path = {"chromium": "/usr/bin/chromium"}
    monkeypatch.setattr(browser.shutil, "which", on_path.get)
    browser.ensure_browser()
    assert installed == [["chromium-driver"]]

    on_path["chromedriver"] = "/usr/bin/chromedriver"
    browser.ensure_browser()
    assert installed == [["chromium-driver"]], "nothing missing: nothing installed"
