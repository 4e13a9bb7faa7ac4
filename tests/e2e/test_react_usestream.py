"""A React page on `@langchain/react` `useStream` (protocol v2) against skeino, in headless Chromium.

tests/react holds the page and its npm lockfile; the packages are installed with `npm ci` on
first use and the page is bundled with esbuild into the test's temporary folder, then served
beside a skeino process whose CORS allows the page's origin.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest

from serverproc import TESTS, Server, free_port

try:
    from playwright.async_api import Browser, Page, expect
except ImportError:  # the `playwright_api` fixture skips these tests, or fails them under CI
    pass

REACT_DIR = TESTS / "react"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
FULL_REPLY = " ".join(f"tok{i}" for i in range(24))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, node: tuple[str, str]) -> Iterator[str]:
    """The bundled page, served over HTTP on its own port."""
    _, npm = node
    if not (REACT_DIR / "node_modules" / "@langchain" / "react").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=REACT_DIR, check=True,
                       timeout=300)
    out = tmp_path_factory.mktemp("react-site")
    subprocess.run([npm, "run", "--silent", "build", "--", f"--outfile={out / 'app.js'}"], cwd=REACT_DIR,
                   check=True, timeout=120)
    shutil.copy(REACT_DIR / "index.html", out / "index.html")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def api(site: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A skeino process on the test graphs that lets the page's origin call it."""
    tmp = tmp_path_factory.mktemp("react-api")
    base = json.loads((TESTS / "langgraph.json").read_text())
    graphs = {name: str((TESTS / path.split(":")[0]).resolve()) + ":" + path.split(":")[1]
              for name, path in base["graphs"].items()}
    config = {**base, "graphs": graphs, "dependencies": [str((TESTS / d).resolve()) for d in base["dependencies"]],
              "http": {"cors": {"allow_origins": [site], "allow_methods": ["*"], "allow_headers": ["*"],
                                "expose_headers": ["content-location", "location"]}}}
    (tmp / "langgraph.json").write_text(json.dumps(config))
    srv = Server(db=tmp / "skeino.db", config=tmp / "langgraph.json").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
async def browser(chromium: str, playwright_api: Any) -> AsyncIterator[Browser]:
    async with playwright_api.async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    pg = await context.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    yield pg
    await context.close()
    if errors:
        pytest.fail("page errors:\n" + "\n".join(errors))


async def _open(page: Page, site: str, api: Server, assistant: str, extra: str = "") -> None:
    await page.goto(f"{site}/index.html?api={api.url}&assistant={assistant}{extra}")
    await expect(page.locator("#status")).to_have_text("idle")


async def _send(page: Page, text: str) -> None:
    await page.fill("#draft", text)
    await page.click("#send")


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_tokens_stream_and_survive_a_reload(page: Page, site: str, api: Server, transport: str) -> None:
    await _open(page, site, api, "agent", f"&slow=1&transport={transport}")
    await _send(page, "hello")
    # Tokens arrive one after another: the AI message shows a part of the reply before the rest.
    await page.wait_for_function(
        "() => window.__aiTexts.some(t => t.startsWith('tok0 tok1') && !t.includes('tok23'))")
    await page.wait_for_function("() => window.__aiTexts.some(t => t.includes('tok5'))")
    assert "thread=" in page.url
    await page.reload()  # mid-run: the page re-attaches to the thread from the URL
    ai = page.locator("#messages li[data-role=ai]")
    await expect(ai).to_have_text([FULL_REPLY], timeout=30_000)
    await expect(page.locator("#messages li[data-role=human]")).to_have_text(["hello"])
    # Nothing lost or repeated on the way: every text shown was a prefix of the reply.
    shown = await page.evaluate("window.__aiTexts")
    assert shown and all(FULL_REPLY.startswith(t) for t in shown), shown
    thread_id = page.url.split("thread=")[1].split("&")[0]
    state = httpx.get(f"{api.url}/threads/{thread_id}/state").json()
    assert [m["content"] for m in state["values"]["messages"]] == ["hello", FULL_REPLY]


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_interrupt_shown_and_resumed(page: Page, site: str, api: Server, transport: str) -> None:
    await _open(page, site, api, "chat_hitl", f"&transport={transport}")
    await _send(page, "book it")
    await expect(page.locator("#question")).to_have_text("Shall I go ahead?")
    await page.click("#approve")
    await expect(page.locator("#messages li[data-role=ai]")).to_have_text(["Confirmed with 'yes': book it"])
    await expect(page.locator("#interrupt")).to_have_count(0)
    await expect(page.locator("#status")).to_have_text("idle")
