"""A graph compiled with a name of its own, a context schema and a managed value."""

from dataclasses import dataclass

from langgraph.graph import START, MessagesState, StateGraph
from langgraph.managed import RemainingSteps
from langgraph.runtime import Runtime


@dataclass
class Context:
    """Which model answers."""

    model: str = "fake"
    temperature: float = 0.5


class State(MessagesState):
    count: int
    remaining_steps: RemainingSteps


def step(state: State, runtime: Runtime[Context]) -> dict:
    return {"count": state.get("count", 0) + 1}


builder = StateGraph(State, context_schema=Context)
builder.add_node("step", step)
builder.add_edge(START, "step")
graph = builder.compile(name="ReAct Agent")
