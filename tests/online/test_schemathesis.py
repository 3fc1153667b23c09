"""The OpenAPI document is the truth: schemathesis (from PyPI) fuzzes every operation of the
real app under uvicorn, against real Redis with a small publication written, with every check
(status codes documented, bodies matching their schemas, no 5xx, ...), a fixed seed and a
bounded number of examples."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.conftest import make_settings
from tests.online.conftest import publish_sample

pytestmark = pytest.mark.redis

TOKEN = "schemathesis-write-token"
SEED = 20260101
MAX_EXAMPLES = 25


def st_binary() -> str:
    found = Path(sys.executable).with_name("st")
    if found.exists():
        return str(found)
    which = shutil.which("st")
    assert which, "schemathesis is not installed: pip install -c requirements.lock -e '.[dev]'"
    return which


@pytest.fixture
def api(redis_client, redis_server, tmp_path, api_server_factory):
    settings = make_settings(
        tmp_path,
        redis_url=redis_server.url,
        api_token=SecretStr(TOKEN),
        api_read_token=SecretStr("schemathesis-read-token"),
        landing_dir=str(tmp_path / "landing"),
    )
    publish_sample(redis_server.url, settings)
    return api_server_factory(settings)


EVENTS_CONFIG = Path(__file__).with_name("schemathesis-events.toml")
#: PUT /v1/rules: the two rules a static schema cannot say (end after start, unique ids)
RULES_CONFIG = Path(__file__).with_name("schemathesis-rules.toml")


def run_schemathesis(
    url: str, tmp_path: Path, *extra: str, config: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            st_binary(),
            *(["--config-file", str(config)] if config else []),
            "run",
            f"{url}/openapi.json",
            "-H",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--generation-deterministic",
            "--workers",
            "1",
            "--max-time",
            "60",
            "--request-timeout",
            "10",
            "--no-color",
            "--report-dir",
            str(tmp_path / "st-report"),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )


def test_every_read_operation_conforms_to_its_openapi_document(api, tmp_path):
    done = run_schemathesis(api.url, tmp_path, "--exclude-path", "/v1/events", config=RULES_CONFIG)
    (tmp_path / "st.out").write_text(done.stdout)
    print(done.stdout[-12000:])
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout


def test_events_operation_conforms_to_its_openapi_document(api, tmp_path):
    """Every check, with the two statuses the intake's documented rules give (see the config
    file: future timestamps 422, partial acceptance 202)."""
    done = run_schemathesis(api.url, tmp_path, "--include-path", "/v1/events", config=EVENTS_CONFIG)
    (tmp_path / "st.out").write_text(done.stdout)
    print(done.stdout[-12000:])
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout
