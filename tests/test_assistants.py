"""/assistants end to end: a real server driven by the official langgraph-sdk client."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from helpers import is_iso, names, raw, tag
from serverproc import TEST_CONFIG, Server

# The namespace the official server derives default assistant ids from.
NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
GRAPH_IDS = list(json.loads(TEST_CONFIG.read_text())["graphs"])
ASSISTANT_KEYS = {"assistant_id", "graph_id", "config", "context", "metadata", "name", "description", "version",
                  "created_at", "updated_at"}


pytestmark = pytest.mark.usefixtures("no_server_errors")


# default assistants ---------------------------------------------------------------------------
async def test_every_graph_has_a_deterministic_system_assistant(client: Any) -> None:
    for graph_id in GRAPH_IDS:
        assistant = await client.assistants.get(graph_id)
        assert assistant["assistant_id"] == str(uuid.uuid5(NAMESPACE, graph_id))
        assert assistant["graph_id"] == graph_id
        assert assistant["metadata"] == {"created_by": "system"}
        # As on the official server: the compiled graph's own name, else the graph id.
        assert assistant["name"] == ("ReAct Agent" if graph_id == "named" else graph_id)
        assert assistant["version"] == 1
        assert assistant["config"] == {} and assistant["context"] == {}
        assert set(assistant) == ASSISTANT_KEYS
        assert is_iso(assistant["created_at"]) and is_iso(assistant["updated_at"])
        # The graph id and the uuid address the same record.
        assert await client.assistants.get(assistant["assistant_id"]) == assistant


async def test_default_ids_match_the_official_server(client: Any) -> None:
    # Ids recorded from the official server: saved configs and clients rely on them.
    assert (await client.assistants.get("counter"))["assistant_id"] == "09d6caf4-2ef3-5a8b-b1a7-114690ed5d45"
    assert (await client.assistants.get("hitl"))["assistant_id"] == "d2a02ed8-fb92-5e43-81ea-cb78d82caa2f"


async def test_search_default_assistant_by_graph(client: Any) -> None:
    found = await client.assistants.search(graph_id="counter", metadata={"created_by": "system"})
    assert [a["assistant_id"] for a in found] == [str(uuid.uuid5(NAMESPACE, "counter"))]
    assert set(found[0]) == ASSISTANT_KEYS
    assert await client.assistants.count(graph_id="counter", metadata={"created_by": "system"}) == 1


# create / get ----------------------------------------------------------------------------------
async def test_create_without_id(client: Any) -> None:
    t = tag()
    created = await client.assistants.create(
        "counter", config={"configurable": {"k": 1}}, context={"c": 2}, metadata={"suite": t},
        name="mine", description="my counter",
    )
    assert uuid.UUID(created["assistant_id"])
    assert created["assistant_id"] != str(uuid.uuid5(NAMESPACE, "counter"))
    assert created["graph_id"] == "counter"
    assert created["config"] == {"configurable": {"k": 1}}
    assert created["context"] == {"c": 2}
    assert created["metadata"] == {"suite": t}
    assert created["name"] == "mine" and created["description"] == "my counter"
    assert created["version"] == 1
    assert set(created) == ASSISTANT_KEYS
    assert await client.assistants.get(created["assistant_id"]) == created


async def test_create_defaults(client: Any) -> None:
    created = await client.assistants.create("hitl")
    assert created["name"] == "Untitled"
    assert created["config"] == {} and created["context"] == {} and created["metadata"] == {}
    assert created["description"] is None


async def test_create_with_id_and_if_exists(client: Any) -> None:
    assistant_id = str(uuid.uuid4())
    created = await client.assistants.create("counter", assistant_id=assistant_id, name="first")
    assert created["assistant_id"] == assistant_id

    with pytest.raises(ConflictError) as exc:
        await client.assistants.create("counter", assistant_id=assistant_id, name="second")
    assert exc.value.response.status_code == 409
    assert assistant_id in exc.value.response.json()["detail"]
    with pytest.raises(ConflictError):
        await client.assistants.create("counter", assistant_id=assistant_id, if_exists="raise")

    kept = await client.assistants.create("hitl", assistant_id=assistant_id, name="third", if_exists="do_nothing")
    assert kept["name"] == "first" and kept["graph_id"] == "counter" and kept["version"] == 1
    assert (await client.assistants.get(assistant_id))["name"] == "first"


async def test_create_refuses_bad_input(client: Any) -> None:
    r = await raw(client, "POST", "/assistants", json={"name": "no graph"})
    assert r.status_code == 422
    assert names(r, "graph_id")

    r = await raw(client, "POST", "/assistants", json={"graph_id": "counter", "colour": "blue"})
    assert r.status_code == 422
    assert names(r, "colour")

    r = await raw(client, "POST", "/assistants", json={"graph_id": "counter", "config": "not an object"})
    assert r.status_code == 422
    assert names(r, "config")

    r = await raw(client, "POST", "/assistants", json={"graph_id": "counter", "if_exists": "overwrite"})
    assert r.status_code == 422
    assert names(r, "if_exists")

    with pytest.raises(UnprocessableEntityError):
        await client.assistants.create("counter", assistant_id="not-a-uuid")

    with pytest.raises(NotFoundError) as exc:
        await client.assistants.create("no_such_graph")
    assert "no_such_graph" in exc.value.response.json()["detail"]


async def test_unknown_assistant_is_404_everywhere(client: Any) -> None:
    missing = str(uuid.uuid4())
    calls = [
        client.assistants.get(missing),
        client.assistants.get("not-a-uuid-nor-a-graph"),
        client.assistants.update(missing, name="x"),
        client.assistants.delete(missing),
        client.assistants.get_graph(missing),
        client.assistants.get_schemas(missing),
        client.assistants.get_subgraphs(missing),
        client.assistants.get_versions(missing),
        client.assistants.set_latest(missing, 1),
    ]
    for call in calls:
        with pytest.raises(NotFoundError) as exc:
            await call
        assert exc.value.response.status_code == 404
        detail = exc.value.response.json()["detail"]
        assert detail in (f"Assistant with ID {missing} not found",
                          "Assistant with ID not-a-uuid-nor-a-graph not found"), detail


# patch / versions / latest ---------------------------------------------------------------------
async def test_patch_creates_versions_and_set_latest(client: Any) -> None:
    t = tag()
    a = await client.assistants.create("counter", config={"configurable": {"v": 1}}, metadata={"suite": t, "keep": 1},
                                       name="v1")
    aid = a["assistant_id"]

    v2 = await client.assistants.update(aid, config={"configurable": {"v": 2}}, metadata={"stage": "two"}, name="v2")
    assert v2["assistant_id"] == aid and v2["version"] == 2
    assert v2["name"] == "v2" and v2["config"] == {"configurable": {"v": 2}}
    # Metadata is merged into the current one, not replaced.
    assert v2["metadata"] == {"suite": t, "keep": 1, "stage": "two"}
    assert v2["created_at"] == a["created_at"] and v2["updated_at"] >= a["updated_at"]
    assert await client.assistants.get(aid) == v2

    # A patch leaves fields it does not name alone.
    v3 = await client.assistants.update(aid, description="third")
    assert v3["version"] == 3 and v3["name"] == "v2" and v3["config"] == {"configurable": {"v": 2}}
    assert v3["description"] == "third"

    versions = await client.assistants.get_versions(aid)
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert [v["name"] for v in versions] == ["v2", "v2", "v1"]
    assert versions[2]["config"] == {"configurable": {"v": 1}}
    assert all(v["assistant_id"] == aid and v["graph_id"] == "counter" for v in versions)
    assert [v["version"] for v in await client.assistants.get_versions(aid, limit=1)] == [3]
    assert [v["version"] for v in await client.assistants.get_versions(aid, limit=2, offset=1)] == [2, 1]
    assert [v["version"] for v in await client.assistants.get_versions(aid, metadata={"stage": "two"})] == [3, 2]

    back = await client.assistants.set_latest(aid, 1)
    assert back["version"] == 1 and back["name"] == "v1"
    assert back["config"] == {"configurable": {"v": 1}}
    assert back["metadata"] == {"suite": t, "keep": 1}
    assert await client.assistants.get(aid) == back

    # Patching after going back writes a new version; no history is overwritten.
    v4 = await client.assistants.update(aid, name="v4")
    assert v4["version"] == 4 and v4["config"] == {"configurable": {"v": 1}}
    assert [v["version"] for v in await client.assistants.get_versions(aid, limit=10)] == [4, 3, 2, 1]

    with pytest.raises(NotFoundError):
        await client.assistants.set_latest(aid, 99)
    assert (await client.assistants.get(aid))["version"] == 4


async def test_patch_graph_id(client: Any) -> None:
    a = await client.assistants.create("counter")
    moved = await client.assistants.update(a["assistant_id"], graph_id="hitl")
    assert moved["graph_id"] == "hitl" and moved["version"] == 2
    graph = await client.assistants.get_graph(a["assistant_id"])
    assert {n["id"] for n in graph["nodes"]} >= {"draft", "review", "act"}
    with pytest.raises(NotFoundError):
        await client.assistants.update(a["assistant_id"], graph_id="no_such_graph")


async def test_patch_and_latest_refuse_bad_bodies(client: Any) -> None:
    a = await client.assistants.create("counter")
    r = await raw(client, "PATCH", f"/assistants/{a['assistant_id']}", json={"nickname": "x"})
    assert r.status_code == 422 and names(r, "nickname")
    r = await raw(client, "POST", f"/assistants/{a['assistant_id']}/latest", json={})
    assert r.status_code == 422 and names(r, "version")
    r = await raw(client, "POST", f"/assistants/{a['assistant_id']}/versions", json={"limit": 0})
    assert r.status_code == 422 and names(r, "limit")
    assert (await client.assistants.get(a["assistant_id"]))["version"] == 1


# delete ---------------------------------------------------------------------------------------
async def test_delete(client: Any) -> None:
    t = tag()
    a = await client.assistants.create("counter", metadata={"suite": t})
    await client.assistants.update(a["assistant_id"], name="second")
    assert await client.assistants.delete(a["assistant_id"]) is None
    with pytest.raises(NotFoundError):
        await client.assistants.get(a["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.get_versions(a["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.delete(a["assistant_id"])
    assert await client.assistants.search(metadata={"suite": t}) == []
    assert await client.assistants.count(metadata={"suite": t}) == 0
    # The id is free again.
    again = await client.assistants.create("hitl", assistant_id=a["assistant_id"])
    assert again["version"] == 1 and again["graph_id"] == "hitl"


async def test_delete_with_threads(client: Any) -> None:
    a = await client.assistants.create("counter")
    mine = await client.threads.create()
    other = await client.threads.create()
    await client.runs.wait(mine["thread_id"], a["assistant_id"], input={"count": 0})
    await client.runs.wait(other["thread_id"], "counter", input={"count": 0})
    await client.assistants.delete(a["assistant_id"], delete_threads=True)
    with pytest.raises(NotFoundError):
        await client.threads.get(mine["thread_id"])
    assert (await client.threads.get(other["thread_id"]))["values"] == {"count": 3}


# search / count --------------------------------------------------------------------------------
@pytest.fixture
async def trio(client: Any) -> tuple[str, list[dict[str, Any]]]:
    """Three assistants sharing a fresh metadata tag, created in the order zeta, alpha, mid."""
    t = tag()
    made = []
    for name, graph_id, extra in (("zeta", "counter", {"nested": {"a": 1, "b": 2}}), ("alpha", "counter", {}),
                                  ("mid", "hitl", {"flag": True})):
        made.append(await client.assistants.create(graph_id, name=f"{name}-{t}", metadata={"suite": t, **extra}))
    return t, made


async def test_search_filters(client: Any, trio: tuple[str, list[dict[str, Any]]]) -> None:
    t, (zeta, alpha, mid) = trio
    ids = lambda rows: {r["assistant_id"] for r in rows}  # noqa: E731

    assert ids(await client.assistants.search(metadata={"suite": t})) == ids([zeta, alpha, mid])
    assert await client.assistants.count(metadata={"suite": t}) == 3

    assert ids(await client.assistants.search(metadata={"suite": t}, graph_id="counter")) == ids([zeta, alpha])
    assert await client.assistants.count(metadata={"suite": t}, graph_id="counter") == 2
    assert ids(await client.assistants.search(metadata={"suite": t}, graph_id="hitl")) == ids([mid])

    # Name matches a substring, ignoring case.
    assert ids(await client.assistants.search(name=t)) == ids([zeta, alpha, mid])
    assert ids(await client.assistants.search(name=f"ALPHA-{t}")) == ids([alpha])
    assert await client.assistants.count(name=f"alpha-{t}") == 1

    # Metadata is containment: nested objects match on the keys given, types are exact.
    assert ids(await client.assistants.search(metadata={"suite": t, "nested": {"a": 1}})) == ids([zeta])
    assert await client.assistants.search(metadata={"suite": t, "nested": {"a": 2}}) == []
    assert ids(await client.assistants.search(metadata={"suite": t, "flag": True})) == ids([mid])
    assert await client.assistants.search(metadata={"suite": t, "flag": 1}) == []
    assert await client.assistants.count(metadata={"suite": t, "flag": 1}) == 0

    assert await client.assistants.count() >= len(GRAPH_IDS) + 3


async def test_search_sort_and_paginate(client: Any, trio: tuple[str, list[dict[str, Any]]]) -> None:
    t, (zeta, alpha, mid) = trio
    names = lambda rows: [r["name"].split("-")[0] for r in rows]  # noqa: E731
    f = {"metadata": {"suite": t}}

    assert names(await client.assistants.search(**f)) == ["mid", "alpha", "zeta"]  # newest first by default
    assert names(await client.assistants.search(**f, sort_by="created_at", sort_order="asc")) == ["zeta", "alpha", "mid"]
    assert names(await client.assistants.search(**f, sort_by="name", sort_order="asc")) == ["alpha", "mid", "zeta"]
    assert names(await client.assistants.search(**f, sort_by="name", sort_order="desc")) == ["zeta", "mid", "alpha"]
    by_id = await client.assistants.search(**f, sort_by="assistant_id", sort_order="asc")
    assert [r["assistant_id"] for r in by_id] == sorted(r["assistant_id"] for r in (zeta, alpha, mid))
    by_graph = await client.assistants.search(**f, sort_by="graph_id", sort_order="desc")
    assert by_graph[0]["graph_id"] == "hitl"

    await client.assistants.update(zeta["assistant_id"], name=f"zeta-{t}")
    assert names(await client.assistants.search(**f, sort_by="updated_at", sort_order="desc"))[0] == "zeta"

    page1 = await client.assistants.search(**f, sort_by="name", sort_order="asc", limit=2)
    page2 = await client.assistants.search(**f, sort_by="name", sort_order="asc", limit=2, offset=2)
    assert names(page1) == ["alpha", "mid"] and names(page2) == ["zeta"]
    assert await client.assistants.search(**f, limit=2, offset=3) == []

    # The object response carries the next page's offset, and none on the last page.
    first = await client.assistants.search(**f, sort_by="name", sort_order="asc", limit=2, response_format="object")
    assert names(first["assistants"]) == ["alpha", "mid"] and first["next"] == "2"
    last = await client.assistants.search(**f, sort_by="name", sort_order="asc", limit=2, offset=int(first["next"]),
                                          response_format="object")
    assert names(last["assistants"]) == ["zeta"] and last["next"] is None
    exact = await client.assistants.search(**f, limit=3, response_format="object")
    assert len(exact["assistants"]) == 3 and exact["next"] is None


async def test_search_select(client: Any, trio: tuple[str, list[dict[str, Any]]]) -> None:
    t, made = trio
    rows = await client.assistants.search(metadata={"suite": t}, select=["assistant_id", "name"])
    assert len(rows) == 3 and all(set(r) == {"assistant_id", "name"} for r in rows)
    assert {r["assistant_id"] for r in rows} == {a["assistant_id"] for a in made}


async def test_search_refuses_bad_bodies(client: Any) -> None:
    for body, loc in (({"limit": 0}, "limit"), ({"offset": -1}, "offset"), ({"sort_by": "version"}, "sort_by"),
                      ({"sort_order": "up"}, "sort_order"), ({"metadata": []}, "metadata"), ({"colour": 1}, "colour")):
        r = await raw(client, "POST", "/assistants/search", json=body)
        assert r.status_code == 422, body
        assert names(r, loc)
    r = await raw(client, "POST", "/assistants/count", json={"limit": 3})
    assert r.status_code == 422 and names(r, "limit")


# graph / schemas / subgraphs ---------------------------------------------------------------------
async def test_graph_matches_the_official_shape(client: Any) -> None:
    graph = await client.assistants.get_graph("counter")
    # Recorded from the official server for the same three-node counter.
    assert graph == {
        "nodes": [
            {"id": "__start__", "type": "runnable", "data": {"name": "__start__"}},
            {"id": "a", "type": "runnable", "data": {"name": "a"}},
            {"id": "b", "type": "runnable", "data": {"name": "b"}},
            {"id": "c", "type": "runnable", "data": {"name": "c"}},
            {"id": "__end__"},
        ],
        "edges": [
            {"source": "__start__", "target": "a"},
            {"source": "a", "target": "b"},
            {"source": "b", "target": "c"},
            {"source": "c", "target": "__end__"},
        ],
    }


async def test_graph_xray_expands_subgraphs(client: Any) -> None:
    flat = await client.assistants.get_graph("pipeline")
    assert {n["id"] for n in flat["nodes"]} == {"__start__", "parent_step", "child", "finish", "__end__"}
    edges = {(e["source"], e["target"]) for e in flat["edges"]}
    assert {("parent_step", "child"), ("child", "finish")} <= edges

    for xray in (True, 1, 2):
        deep = await client.assistants.get_graph("pipeline", xray=xray)
        node_ids = {n["id"] for n in deep["nodes"]}
        assert "child:child_step" in node_ids and "child" not in node_ids, xray
        deep_edges = {(e["source"], e["target"]) for e in deep["edges"]}
        assert {("parent_step", "child:child_step"), ("child:child_step", "finish")} <= deep_edges

    # An assistant uuid works as well as a graph id.
    created = await client.assistants.create("pipeline")
    assert await client.assistants.get_graph(created["assistant_id"]) == flat


async def test_schemas(client: Any) -> None:
    schemas = await client.assistants.get_schemas("counter")
    assert set(schemas) == {"graph_id", "input_schema", "output_schema", "state_schema", "config_schema",
                            "context_schema"}
    assert schemas["graph_id"] == "counter"
    for slot in ("input_schema", "output_schema", "state_schema"):
        assert schemas[slot]["type"] == "object", slot
        assert schemas[slot]["properties"]["count"]["type"] == "integer", slot
    # Recorded from the official server: no context schema means nothing to configure, and
    # the state schema is titled after the graph (its id, as the graph has no name).
    assert schemas["config_schema"] == {}
    assert schemas["context_schema"] is None
    assert schemas["state_schema"]["title"] == "counter_state"
    assert schemas["state_schema"]["properties"]["count"] == {"default": None, "title": "Count", "type": "integer"}

    hitl = await client.assistants.get_schemas("hitl")
    assert set(hitl["input_schema"]["properties"]) == {"task", "plan", "approved", "feedback", "result"}

    agent = await client.assistants.get_schemas("agent")
    assert "messages" in agent["input_schema"]["properties"]
    assert "messages" in agent["state_schema"]["properties"]


async def test_schemas_of_a_named_graph_with_context_match_the_official_server(client: Any) -> None:
    schemas = await client.assistants.get_schemas("named")
    context = {"description": "Which model answers.", "title": "Context", "type": "object",
               "properties": {"model": {"default": "fake", "title": "Model", "type": "string"},
                              "temperature": {"default": 0.5, "title": "Temperature", "type": "number"}}}
    # config_schema is what goes under config.configurable, not a wrapper around it.
    assert schemas["config_schema"] == context
    assert schemas["context_schema"] == context
    # The state lists what `values` holds: the managed `remaining_steps` is not part of it.
    state = schemas["state_schema"]
    assert state["title"] == "ReAct AgentState"
    assert set(state["properties"]) == {"messages", "count"}


async def test_subgraphs(client: Any) -> None:
    subgraphs = await client.assistants.get_subgraphs("pipeline")
    assert list(subgraphs) == ["child"]
    child = subgraphs["child"]
    assert {"input_schema", "output_schema", "state_schema", "config_schema"} <= set(child)
    assert child["state_schema"]["properties"]["value"]["type"] == "string"

    assert list(await client.assistants.get_subgraphs("pipeline", namespace="child")) == ["child"]
    assert list(await client.assistants.get_subgraphs("pipeline", recurse=True)) == ["child"]
    assert await client.assistants.get_subgraphs("pipeline", namespace="no_such_child") == {}
    assert await client.assistants.get_subgraphs("counter") == {}


async def test_a_default_assistant_follows_its_graph_renamed_between_restarts(tmp_path: Path) -> None:
    (tmp_path / "g.py").write_text(
        "import os\n"
        "from langgraph.graph import START, StateGraph\n"
        "from typing_extensions import TypedDict\n"
        "class S(TypedDict):\n    x: int\n"
        "b = StateGraph(S)\nb.add_node('n', lambda s: {'x': 1})\nb.add_edge(START, 'n')\n"
        "graph = b.compile(name=os.environ.get('GRAPH_NAME') or None)\n"
    )
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"g": "./g.py:graph"}}))
    seen = []
    for name in ("First Name", ""):
        server = Server(db=tmp_path / "skeino.db", config=config, env={"GRAPH_NAME": name}).start()
        try:
            client = get_client(url=server.url)
            seen.append(await client.assistants.get("g"))
            await client.http.client.aclose()
        finally:
            server.stop()
    assert [(a["name"], a["version"]) for a in seen] == [("First Name", 1), ("g", 2)]
