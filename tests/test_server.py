"""The FastAPI server with the real models loaded once."""

from fastapi.testclient import TestClient

from voice_agent.server import create_app


def test_healthz_reports_the_loaded_models(small_engines):
    with TestClient(create_app(small_engines.settings, engines=small_engines)) as client:
        body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["models"]["llm"] == "smollm2-135m"
    assert body["llm_backend"] == "local"
