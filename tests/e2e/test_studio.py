"""End-to-end tests of the bundled Studio web UI in headless Chromium.

The Studio is driven exactly like a user would (clicks, typing, reloads) against a
real server process, and what it shows is cross-checked with the official SDK.
Screenshots of every screen land in test-artifacts/studio/ at the repository root.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

try:
    from playwright.async_api import Browser, Page, expect
except ImportError:  # the `playwright_api` fixture skips these tests, or fails them under CI
    pass

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "studio"
SLOW_TOKENS = {"configurable": {"fake_token_delay": 0.05, "fake_tokens": 24}}


@pytest.fixture(scope="module")
async def browser(chromium: str, playwright_api: Any) -> AsyncIterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with playwright_api.async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh browser context per test; any console error or page error fails the test."""
    context = await browser.new_context(viewport={"width": 1400, "height": 860})
    pg = await context.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    yield pg
    await context.close()
    if errors:
        pytest.fail("browser console errors:\n" + "\n".join(errors))


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), animations="disabled")


async def open_studio(page: Page, server: Any, route: str = "") -> None:
    await page.goto(f"{server.url}/studio/{route}")
    await page.wait_for_selector("body.ready")


async def new_thread(page: Page, server: Any, graph: str) -> str:
    """Open an assistant screen, create a thread from it and wait until the composer is ready."""
    await open_studio(page, server, f"#/assistants/{graph}")
    await page.locator("main").get_by_role("button", name="New thread", exact=True).click()
    await page.wait_for_url(re.compile(r"#/threads/[0-9a-f-]{36}$"))
    await page.wait_for_selector("form.composer[data-ready=true]")
    return page.url.rsplit("/", 1)[1]


async def settled(page: Page) -> int:
    return int(await page.get_attribute(".thread-page", "data-runs-settled") or 0)


async def wait_settled(page: Page, before: int, timeout: float = 20_000) -> None:
    """Wait until one more streamed run has ended and the thread was reloaded."""
    await page.wait_for_function(
        "n => Number(document.querySelector('.thread-page')?.dataset.runsSettled || 0) > n", arg=before, timeout=timeout)


async def set_run_config(page: Page, config: dict[str, Any] | None) -> None:
    toggle = page.get_by_role("button", name="Run options")
    if await toggle.get_attribute("aria-expanded") != "true":
        await toggle.click()
    await page.get_by_label("Config (JSON)").fill(json.dumps(config) if config else "")
    await toggle.click()  # fold the options away again; the values stay


async def send_message(page: Page, text: str) -> int:
    before = await settled(page)
    await page.get_by_label("Your message").fill(text)
    await page.get_by_label("Your message").press("Enter")
    return before


async def send_json(page: Page, value: Any) -> int:
    before = await settled(page)
    await page.get_by_label("Input (JSON)").fill(json.dumps(value))
    await page.get_by_test_id("send").click()
    return before


def message_texts(values: dict[str, Any]) -> list[str]:
    return [m["content"] for m in values.get("messages", [])]


# ---------------------------------------------------------------- screens


async def test_assistants_graph_and_schemas(page: Page, server: Any) -> None:
    await page.goto(server.url + "/")
    await page.wait_for_selector("body.ready")
    assert page.url.rstrip("/").endswith("/studio"), page.url
    await expect(page.get_by_test_id("assistant-item").first).to_be_visible()
    await shot(page, "home")

    await page.locator("[data-testid=assistant-item][data-graph-id=agent]").click()
    graph = page.get_by_test_id("graph")
    for node in ("__start__", "agent", "tools", "__end__"):
        await expect(graph.locator(f"g.graph-node[data-node='{node}']")).to_be_visible()
    await expect(graph.locator("path.graph-edge.conditional")).to_have_count(2)
    await expect(page.locator(".schema-table")).to_contain_text("messages")
    await page.get_by_role("tab", name="Config").click()
    await expect(page.get_by_role("tabpanel")).to_be_visible()
    await page.get_by_role("tab", name="Input").click()
    await shot(page, "assistant")

    await page.locator("[data-testid=assistant-item][data-graph-id=pipeline]").click()
    await expect(page.get_by_test_id("graph").locator("g.graph-node[data-node=parent_step]")).to_be_visible()
    await page.get_by_label("Show subgraphs").check()
    await expect(page.get_by_test_id("graph").locator("g.graph-cluster[data-cluster=child]")).to_be_visible()
    await shot(page, "assistant-subgraph")

    # "Try it" starts a new thread with a first run from the assistant screen.
    await page.locator("[data-testid=assistant-item][data-graph-id=agent]").click()
    await page.get_by_label("First message").fill("hi from the form")
    await page.get_by_role("button", name="Run in a new thread").click()
    await page.wait_for_url(re.compile(r"#/threads/[0-9a-f-]{36}$"))
    await expect(page.locator(".msg-assistant [data-testid=msg-text]").last).to_have_text("You said: hi from the form")
    await expect(page.locator(".trace-summary")).to_have_attribute("data-status", "success")


async def test_chat_streams_tokens_trace_history_and_fork(page: Page, server: Any, client: Any) -> None:
    thread_id = await new_thread(page, server, "agent")
    await set_run_config(page, SLOW_TOKENS)
    before = await send_message(page, "hello studio")

    # Tokens arrive one by one: the streaming bubble must grow while the run is live.
    streaming = page.locator(".msg-assistant.streaming [data-testid=msg-text]")
    observed: list[str] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        texts = await streaming.all_text_contents()
        if texts and texts[0].strip() and (not observed or texts[0] != observed[-1]):
            observed.append(texts[0])
            if len(observed) == 4:
                await shot(page, "chat-streaming")
        if observed and await settled(page) > before:
            break
        await asyncio.sleep(0.04)
    await wait_settled(page, before)
    assert len(observed) >= 2, f"expected the reply to grow while streaming, saw {observed!r}"
    assert all(len(a) < len(b) for a, b in zip(observed, observed[1:])), observed
    expected = " ".join(f"tok{i}" for i in range(24))
    await expect(page.locator(".msg-assistant [data-testid=msg-text]").last).to_have_text(expected)

    # The node trace shows the node that ran, finished, with a duration and its update.
    trace = page.locator(".trace-item[data-node=agent]")
    await expect(trace).to_have_attribute("data-status", "done")
    await expect(trace.locator(".trace-dur")).to_have_text(re.compile(r"\d+(\.\d+)? m?s"))
    await expect(page.locator(".trace-summary")).to_have_attribute("data-status", "success")
    await trace.locator("details.trace-update > summary").click()
    await shot(page, "chat-trace")

    # A tool call and its result are rendered as distinct cards.
    await set_run_config(page, None)
    before = await send_message(page, "What is the weather in Oslo?")
    await wait_settled(page, before)
    await expect(page.locator("[data-testid=tool-call][data-tool-name=get_weather]")).to_contain_text('"city": "Oslo"')
    await expect(page.get_by_test_id("tool-result")).to_contain_text("It is sunny and 21 degrees in Oslo.")
    await expect(page.locator(".msg-assistant [data-testid=msg-text]").last).to_contain_text("The tool answered")
    await expect(page.locator(".trace-item[data-node=tools]")).to_have_attribute("data-status", "done")
    await shot(page, "chat-tools")
    await page.get_by_role("tab", name="Graph").click()
    await page.locator("#theme-toggle").click()
    await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    await shot(page, "chat-tools-dark")
    await page.locator("#theme-toggle").click()
    await expect(page.locator("html")).to_have_attribute("data-theme", "light")

    # Time travel: fork a new run from the checkpoint that ended the first turn.
    history = await client.threads.get_history(thread_id, limit=50)
    first_turn = next(s for s in history if not s["next"] and len(s["values"].get("messages", [])) == 2)
    checkpoint_id = first_turn["checkpoint"]["checkpoint_id"]
    await page.get_by_role("tab", name="History").click()
    item = page.locator(f"[data-testid=checkpoint][data-checkpoint-id='{checkpoint_id}']")
    await item.click()
    await expect(item).to_have_attribute("aria-pressed", "true")
    detail = page.get_by_test_id("checkpoint-detail")
    await expect(detail).to_be_visible()
    await shot(page, "history")
    await detail.get_by_role("button", name="Fork from here").click()
    await expect(page.locator(".fork-banner")).to_contain_text(checkpoint_id[:8])
    before = await send_message(page, "forked branch")
    await wait_settled(page, before)
    await expect(page.locator(".fork-banner")).to_be_hidden()

    state = await client.threads.get_state(thread_id)
    texts = message_texts(state["values"])
    assert texts == ["hello studio", expected, "forked branch", "You said: forked branch"], texts
    await expect(page.locator(".msg[data-role=user]")).to_have_count(2)
    await expect(page.locator(".msg-assistant [data-testid=msg-text]").last).to_have_text("You said: forked branch")
    # The old branch is still in the history.
    history = await client.threads.get_history(thread_id, limit=50)
    assert any(len(s["values"].get("messages", [])) == 6 for s in history)


async def test_state_inspector_and_edit(page: Page, server: Any, client: Any) -> None:
    thread_id = await new_thread(page, server, "counter")
    await expect(page.get_by_label("Input (JSON)")).to_be_visible()
    before = await send_json(page, {"count": 0})
    await wait_settled(page, before)
    await expect(page.get_by_test_id("values-card")).to_contain_text("count: 3")

    await page.get_by_role("tab", name="State").click()
    panel = page.locator(".state-panel")
    await expect(panel.locator(".json-tree").first).to_contain_text("count: 3")
    await shot(page, "state")
    await panel.get_by_role("button", name="Edit state").click()
    await page.get_by_label("Values (JSON)").fill('{"count": 42}')
    await page.get_by_role("button", name="Save state").click()
    await expect(panel.locator(".json-tree").first).to_contain_text("count: 42")
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"count": 42}
    assert state["metadata"]["source"] == "update"


async def test_hitl_interrupt_approve(page: Page, server: Any, client: Any) -> None:
    thread_id = await new_thread(page, server, "hitl")
    before = await send_json(page, {"task": "ship the release"})
    await wait_settled(page, before)

    card = page.get_by_test_id("interrupt")
    await expect(card).to_be_visible()
    await expect(card).to_contain_text("Approve this plan?")
    await expect(card).to_contain_text("Plan for ship the release")
    await expect(page.get_by_test_id("thread-status")).to_have_attribute("data-status", "interrupted")
    await expect(page.locator(".trace-item[data-node=review]")).to_have_attribute("data-status", "interrupted")
    await shot(page, "hitl-interrupt")
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"

    before = await settled(page)
    await card.get_by_role("button", name="Approve").click()
    await wait_settled(page, before)
    await expect(page.get_by_test_id("interrupt")).to_have_count(0)
    await expect(page.get_by_test_id("values-card")).to_contain_text('result: "Executed: Plan for ship the release')
    await expect(page.locator(".trace-item[data-node=act]")).to_have_attribute("data-status", "done")
    await expect(page.get_by_test_id("thread-status")).to_have_attribute("data-status", "idle")
    await shot(page, "hitl-approved")

    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    state = await client.threads.get_state(thread_id)
    assert state["values"]["result"].startswith("Executed"), state["values"]
    assert state["values"]["approved"] is True


async def test_cancel_slow_run(page: Page, server: Any, client: Any) -> None:
    thread_id = await new_thread(page, server, "slow")
    before = await send_json(page, {"seconds": 30})
    await expect(page.locator(".trace-item[data-node=nap]")).to_have_attribute("data-status", "running")
    # While busy, the composer offers a multitask strategy for the next run.
    await expect(page.get_by_label("Thread is busy:")).to_be_visible()
    await page.get_by_role("tab", name="Runs").click()
    row = page.locator("[data-testid=run][data-status=running]")
    await expect(row).to_have_count(1)
    run_id = await row.get_attribute("data-run-id")
    await shot(page, "runs")

    await row.get_by_role("button", name=re.compile("Cancel run")).click()
    await wait_settled(page, before)
    await expect(page.locator(f"[data-testid=run][data-run-id='{run_id}']")).to_have_attribute("data-status", "interrupted")
    await expect(page.locator(".trace-summary")).to_have_attribute("data-status", "cancelled")
    await shot(page, "runs-cancelled")

    run = await client.runs.get(thread_id, run_id)
    assert run["status"] == "interrupted"


async def test_reconnects_after_reload(page: Page, server: Any, client: Any) -> None:
    thread_id = await new_thread(page, server, "agent")
    await set_run_config(page, {"configurable": {"fake_token_delay": 0.05, "fake_tokens": 40}})
    joins: list[dict[str, str]] = []
    page.on("request", lambda r: joins.append(r.headers) if r.method == "GET" and re.search(r"/runs/[^/]+/stream$", r.url) else None)
    await send_message(page, "count slowly")
    streaming = page.locator(".msg-assistant.streaming [data-testid=msg-text]")
    await expect(streaming).to_contain_text("tok6")

    await page.reload()
    await page.wait_for_selector("body.ready")
    # The restored run is re-joined where it left off and keeps streaming.
    await expect(page.locator(".trace-summary .chip", has_text="reconnected")).to_be_visible()
    await shot(page, "reconnected")
    await expect(page.locator(".msg-assistant [data-testid=msg-text]").last).to_have_text(
        " ".join(f"tok{i}" for i in range(40)), timeout=20_000)
    assert joins and "last-event-id" in joins[0], joins
    assert int(joins[0]["last-event-id"]) > 0

    await expect(page.get_by_test_id("thread-status")).to_have_attribute("data-status", "idle", timeout=10_000)
    runs = await client.runs.list(thread_id)
    assert [r["status"] for r in runs] == ["success"]


async def test_error_is_shown_where_it_happened(page: Page, server: Any) -> None:
    await new_thread(page, server, "failing")
    before = await send_json(page, {"x": 1})
    await wait_settled(page, before)
    error = page.get_by_test_id("run-error")
    await expect(error).to_contain_text("ValueError")
    await expect(error).to_contain_text("boom")
    await expect(error).to_contain_text("explode")
    node = page.locator(".trace-item[data-node=explode]")
    await expect(node).to_have_attribute("data-status", "error")
    await expect(node.locator(".trace-error")).to_contain_text("boom")
    await page.get_by_role("tab", name="Graph").click()
    await expect(page.locator(".graph-panel g.graph-node.error[data-node=explode]")).to_be_visible()
    await page.get_by_role("tab", name="Trace").click()
    await shot(page, "error")


async def test_threads_screen_create_delete_and_theme(page: Page, server: Any, client: Any) -> None:
    await open_studio(page, server, "#/threads")
    await page.get_by_label("Assistant", exact=True).select_option(label="counter")
    await page.get_by_label("Metadata (JSON, optional)").fill('{"topic": "e2e"}')
    await page.get_by_role("button", name="Create thread").click()
    await page.wait_for_url(re.compile(r"#/threads/[0-9a-f-]{36}$"))
    thread_id = page.url.rsplit("/", 1)[1]
    assert (await client.threads.get(thread_id))["metadata"]["topic"] == "e2e"

    await page.get_by_role("link", name="Threads", exact=True).first.click()
    row = page.locator(f"tr[data-thread-id='{thread_id}']")
    await expect(row).to_contain_text("topic: e2e")
    await expect(row.locator(".badge")).to_have_text("idle")
    await expect(page.locator(f"[data-testid=thread-item][data-thread-id='{thread_id}']")).to_be_visible()
    await shot(page, "threads")

    # The keyboard works too: the theme toggle is a real button.
    toggle = page.locator("#theme-toggle")
    start = await page.evaluate("document.documentElement.dataset.theme")
    await toggle.focus()
    await page.keyboard.press("Enter")
    other = "dark" if start == "light" else "light"
    await expect(page.locator("html")).to_have_attribute("data-theme", other)
    if other == "dark":
        await shot(page, "threads-dark")
    await page.reload()
    await page.wait_for_selector("body.ready")
    await expect(page.locator("html")).to_have_attribute("data-theme", other)

    await row.get_by_role("button", name="Delete").click()
    await row.get_by_role("button", name="Confirm delete").click()
    await expect(row).to_have_count(0)
    remaining = await client.threads.search(limit=100)
    assert thread_id not in {t["thread_id"] for t in remaining}

    # Narrow screens: the sidebar becomes a drawer that opens and closes from the keyboard.
    await page.set_viewport_size({"width": 390, "height": 844})
    menu = page.get_by_role("button", name="Open navigation")
    await expect(menu).to_be_visible()
    await expect(page.locator("#sidebar")).to_be_hidden()
    await menu.focus()
    await page.keyboard.press("Enter")
    await expect(menu).to_have_attribute("aria-expanded", "true")
    await expect(page.locator("#sidebar")).to_be_visible()
    await shot(page, "mobile-drawer")
    await page.keyboard.press("Escape")
    await expect(page.locator("#sidebar")).to_be_hidden()
    await expect(menu).to_be_focused()


async def test_markdown_subset_is_safe(page: Page, server: Any) -> None:
    """Replies are rendered with the Studio's own Markdown subset, which escapes all HTML."""
    await open_studio(page, server)
    html = await page.evaluate("""async () => {
        const { renderMarkdown } = await import("./js/markdown.js");
        return renderMarkdown([
            "# Title", "Some **bold**, *italic* and `<code>` text.",
            "<img src=x onerror=alert(1)> <script>alert(2)</script>",
            "[ok](https://example.com/?a=1&b=2) [bad](javascript:alert(3)) [quote](https://x.test/\\"onmouseover=alert(4))",
            "- one", "- two", "", "```", "<b>raw</b>", "```",
        ].join("\\n"));
    }""")
    assert "<strong>bold</strong>" in html and "<em>italic</em>" in html
    assert "<code>&lt;code&gt;</code>" in html
    assert "<ul><li>one</li><li>two</li></ul>" in html
    assert "<pre><code>&lt;b&gt;raw&lt;/b&gt;</code></pre>" in html
    assert '<a href="https://example.com/?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">ok</a>' in html
    assert "<img" not in html and "<script" not in html
    assert 'href="javascript:' not in html
    assert "&quot;onmouseover" in html and '"onmouseover' not in html


async def test_asks_for_an_api_key_when_the_server_wants_one(browser: Browser, tmp_path: Path) -> None:
    from serverproc import Server

    key = "studio-key-" + "k" * 20
    srv = Server(db=tmp_path / "keyed.db", env={"SKEINO_API_KEYS": key}).start()
    context = await browser.new_context()
    try:
        pg = await context.new_page()
        prompts: list[str] = []

        async def answer(dialog: Any) -> None:
            prompts.append(dialog.message)
            await dialog.accept(key)

        pg.on("dialog", answer)
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        await pg.goto(f"{srv.url}/studio/")
        await pg.wait_for_selector("body.ready")
        await expect(pg.locator("[data-testid=assistant-item][data-graph-id=pipeline]")).to_be_visible()
        # Asked once; the key is kept for the tab and sent on every later call.
        assert prompts == ["This server needs an API key:"]
        await pg.reload()
        await pg.wait_for_selector("body.ready")
        await expect(pg.locator("[data-testid=assistant-item][data-graph-id=pipeline]")).to_be_visible()
        assert len(prompts) == 1 and not errors
    finally:
        await context.close()
        srv.stop()


async def test_works_under_custom_auth_with_a_bearer_token(browser: Browser, tmp_path: Path) -> None:
    """The token the Studio asks for reaches a custom authenticate handler as Authorization: Bearer."""
    from serverproc import TESTS, Server

    srv = Server(db=tmp_path / "custom.db", config=TESTS / "custom_auth" / "langgraph.json").start()
    context = await browser.new_context()
    try:
        pg = await context.new_page()
        prompts: list[str] = []

        async def answer(dialog: Any) -> None:
            prompts.append(dialog.message)
            await dialog.accept("token-alice")

        pg.on("dialog", answer)
        await pg.goto(f"{srv.url}/studio/")
        await pg.wait_for_selector("body.ready")
        await expect(pg.locator("[data-testid=assistant-item][data-graph-id=whoami]")).to_be_visible()
        assert prompts == ["This server needs an API key:"]
    finally:
        await context.close()
        srv.stop()
