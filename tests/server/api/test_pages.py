"""Pages at clean paths: ``GET /<word>`` serves ``web/<word>.html``; everything else stays with the static mount."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.testclient import TestClient

from server.api.pages import page_names, router_for


def app_for(web: Path) -> FastAPI:
    app = FastAPI()
    app.include_router(router_for(web))
    app.mount("/", StaticFiles(directory=web, html=True), name="web")
    return app


def test_a_new_html_file_is_a_page(tmp_path: Path) -> None:
    for name in ("index", "leaks", "alerts", "Bad", "two-words", "v2"):
        (tmp_path / f"{name}.html").write_text(f"<title>{name}</title>")
    (tmp_path / "app.js").write_text("export {};")
    assert page_names(tmp_path) == ["alerts", "leaks"]
    client = TestClient(app_for(tmp_path))
    for name in ("leaks", "alerts"):
        response = client.get(f"/{name}")
        assert response.status_code == 200
        assert response.text == f"<title>{name}</title>"
        assert response.headers["content-type"].startswith("text/html")
    assert client.get("/").text == "<title>index</title>"
    assert client.get("/app.js").text == "export {};"  # files still come from the static mount
    assert client.get("/two-words.html").status_code == 200
    for missing in ("/two-words", "/Bad", "/index", "/nothing", "/leaks/x"):
        assert client.get(missing).status_code == 404, missing


def test_no_web_folder_means_no_pages(tmp_path: Path) -> None:
    assert page_names(tmp_path / "absent") == []
    assert not router_for(tmp_path / "absent").routes
