"""`build_app`: the page's layout and the wiring of its events to the handlers in the sibling modules.

Layout: a conversations sidebar, the status line, and four tabs (Chat, Tools, Search, Documents & models),
plus a hidden API surface (`/chat`) for gradio_client. Handlers live in `chat.ChatTab` (chat, status line,
meter), `conversations.Sidebar` (the sidebar and the page load), `forms` and `documents`; this module only
places components and connects them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.config import Settings
from assistant.ui.chat import ChatTab
from assistant.ui.conversations import BROWSER_STORAGE_KEY, LazyStore, Sidebar, browser_secret
from assistant.ui.documents import mount_documents_tab
from assistant.ui.forms import tool_form
from assistant.ui.render import context_meter_markdown, search_markdown
from assistant.ui.status import STATUS_REFRESH_S, StatusProbe, model_choices

if TYPE_CHECKING:
    from assistant.agent import Agent
    from assistant.ollama import OllamaLayer
    from knowledge.search import KnowledgeBase
    from tools.registry import Registry

__all__ = ["EXAMPLE_QUESTIONS", "build_app"]

EXAMPLE_QUESTIONS: list[str] = [
    "Will llama3.3:70b fit on a 48 GB M4 Pro with 16k context?",
    "How fast would qwen2.5:32b run on an M3 Max?",
    "What did the article measure for SDXL on a Mac Studio?",
    "I have $1500, what should I buy to run local LLMs?",
]

CLOSE_SIDEBAR_ON_PHONES = """() => {
  if (window.innerWidth >= 768) return;
  const toggle = document.querySelector('button.toggle-button[aria-label="Toggle Sidebar"]');
  if (toggle) toggle.click();
}"""

# Runs as the question box is enabled; focus lands once it is (a disabled box cannot take it).
FOCUS_QUESTION_BOX = """() => {
  let frames = 600;
  const focus = () => {
    const box = document.querySelector('#chat-input textarea');
    if (box && !box.disabled) box.focus();
    else if (frames-- > 0) requestAnimationFrame(focus);
  };
  requestAnimationFrame(focus);
}"""

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
METER: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}


@dataclass
class SidebarParts:
    new: gr.Button
    listing: gr.Radio
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    export: gr.Button
    export_file: gr.File


@dataclass
class ChatParts:
    chatbot: gr.Chatbot
    message: gr.Textbox
    send: gr.Button
    stop: gr.Button
    model: gr.Dropdown
    meter: gr.Markdown
    clear: gr.Button
    chart: gr.Plot


@dataclass
class PageState:
    session: gr.State
    browser_id: gr.BrowserState
    seen_models: gr.State
    status: gr.Markdown
    timer: gr.Timer


def _sidebar() -> SidebarParts:
    with gr.Sidebar(label="Conversations", open=True, elem_id="conversations-sidebar"):
        new = gr.Button("+ New conversation", elem_id="new-conversation")
        listing = gr.Radio(
            choices=[], value=None, label="Conversations", elem_id="conversation-list", interactive=True
        )
        title = gr.Textbox(label="Title", elem_id="conversation-title", max_lines=1)
        with gr.Row():
            rename = gr.Button("Rename", size="sm", elem_id="rename-conversation")
            delete = gr.Button("Delete", size="sm", variant="stop", elem_id="delete-conversation")
        export = gr.Button("Export as Markdown", size="sm", elem_id="export-conversation")
        export_file = gr.File(label="Markdown export", visible=False, elem_id="conversation-export")
    return SidebarParts(new, listing, title, rename, delete, export, export_file)


def _chat_tab(settings: Settings, choices: list[str], model: str) -> ChatParts:
    with gr.Tab("Chat", id="chat"), gr.Row(equal_height=False):
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(
                label="Chat",
                elem_id="chatbot",
                height=560,
                buttons=["copy"],
                feedback_options=None,
                placeholder="Ask about Macs and local models — try an example below.",
                group_consecutive_messages=False,
            )
            with gr.Row():
                message = gr.Textbox(
                    placeholder="Ask a question and press Enter",
                    show_label=False,
                    scale=8,
                    min_width=120,
                    elem_id="chat-input",
                    max_lines=6,
                    interactive=False,  # until the page load has said whose page this is (`_wire_load`)
                )
                # Narrow minimum widths (default 160 px each) leave the question box most of the row and
                # keep box, Send and Stop on one line at 390 px.
                send = gr.Button(
                    "Send", variant="primary", scale=1, min_width=70, elem_id="send", interactive=False
                )
                stop = gr.Button("Stop", variant="stop", scale=1, min_width=70, elem_id="stop")
            gr.Examples(examples=[[q] for q in EXAMPLE_QUESTIONS], inputs=[message], label="Examples")
        with gr.Column(scale=2):
            picker = gr.Dropdown(
                choices=choices,
                value=model,
                label="Chat model",
                info="Installed Ollama models that support tool calling.",
                allow_custom_value=True,
                elem_id="model-picker",
            )
            meter = gr.Markdown(context_meter_markdown(None, settings), elem_id="context-meter")
            clear = gr.Button("Clear chat", elem_id="clear")
            chart = gr.Plot(label="Chart", elem_id="chat-chart")
    return ChatParts(chatbot, message, send, stop, picker, meter, clear, chart)


def _tools_tab(toolset: Registry) -> None:
    with gr.Tab("Tools", id="tools"):
        gr.Markdown(
            "Run any tool directly — no model needed. Empty fields use the tool's defaults; "
            "on a Mac the machine fields default to this Mac where the tool supports it."
        )
        with gr.Tabs():
            for tool in toolset:
                tool_form(tool, toolset)


def _search_tab(knowledge: KnowledgeBase | None) -> None:
    with gr.Tab("Search", id="search"):
        with gr.Row():
            query = gr.Textbox(label="Search the knowledge base", scale=6, elem_id="search-input")
            k = gr.Slider(1, 20, value=5, step=1, label="passages", scale=1)
        button = gr.Button("Search", variant="primary", elem_id="search-button")
        results = gr.Markdown(elem_id="search-results")

    def search(q: str, n: int) -> str:
        return search_markdown(knowledge, q, n)

    query.submit(search, [query, k], results, api_name="search_knowledge")
    button.click(search, [query, k], results, **PRIVATE)


def _chat_api(chat: ChatTab, session: gr.State) -> None:
    """Hidden API surface: message + model in, streamed answer text + turn summary out (session-scoped)."""
    with gr.Row(visible=False):
        message = gr.Textbox()
        model = gr.Textbox()
        answer = gr.Textbox()
        summary = gr.JSON()
        button = gr.Button()
    button.click(
        chat.chat_api,
        [message, model, session],
        [answer, summary, session],
        api_name="chat",
        api_description="One chat turn in this client's session; streams the answer, then a summary.",
    )


def _wire_chat(chat: ChatTab, side: Sidebar, page: PageState, parts: ChatParts, bar: SidebarParts) -> None:
    session, meter = page.session, [parts.meter]
    listing = [bar.listing, bar.title]
    turn: dict[str, Any] = {"api_visibility": "private", "trigger_mode": "once", "show_progress": "minimal"}
    chat_outputs = [parts.message, parts.chatbot, session, parts.chart]
    for trigger in (parts.message.submit, parts.send.click):
        trigger(chat.respond, [parts.message, session, parts.model], chat_outputs, **turn).then(
            side.after_turn, [session], listing, **PRIVATE
        ).then(chat.show_meter, [session], meter, **METER)
    # Not queued: it must get through while this session's answer holds the queue.
    parts.stop.click(chat.stop, [session], None, queue=False, **PRIVATE)
    page.timer.tick(
        chat.refresh_status,
        [parts.model, page.seen_models],
        [page.status, parts.model, page.seen_models],
        api_visibility="private",
        show_progress="hidden",
        queue=False,
    )


def _wire_sidebar(chat: ChatTab, side: Sidebar, page: PageState, parts: ChatParts, bar: SidebarParts) -> None:
    session, meter = page.session, [parts.meter]
    listing = [bar.listing, bar.title]
    # The Chatbot's own trash icon and "New conversation" start a new conversation too.
    for trigger in (parts.clear.click, parts.chatbot.clear, bar.new.click):
        trigger(
            side.new_chat, [session], [parts.chatbot, session, parts.chart, parts.message], **PRIVATE
        ).then(side.listing, [session], listing, **PRIVATE).then(chat.show_meter, [session], meter, **METER)
    opened = [session, parts.chatbot, parts.chart, *listing]
    bar.listing.input(side.select, [bar.listing, session], opened, **PRIVATE).then(
        chat.show_meter, [session], meter, **METER
    )
    bar.rename.click(side.rename, [bar.title, session], listing, **PRIVATE)
    bar.title.submit(side.rename, [bar.title, session], listing, **PRIVATE)
    bar.delete.click(side.delete, [session], opened, **PRIVATE).then(
        chat.show_meter, [session], meter, **METER
    )
    bar.export.click(side.export, [session], [bar.export_file], **PRIVATE)


def _wire_load(
    app: gr.Blocks, chat: ChatTab, side: Sidebar, page: PageState, parts: ChatParts, bar: SidebarParts
) -> None:
    """The page load says whose page it is and reopens their latest conversation; only then can a question
    be asked. (Asked earlier, it would run in a session without an owner: answered but never saved, and the
    load's own session would then replace it.)"""
    opened = [page.session, parts.chatbot, parts.chart, bar.listing, bar.title]
    app.load(side.on_load, [page.browser_id], [page.browser_id, *opened], **PRIVATE).then(
        chat.show_meter, [page.session], [parts.meter], **METER
    ).then(chat.ready, None, [parts.message, parts.send], js=FOCUS_QUESTION_BOX, **PRIVATE)
    # On a phone the open sidebar would cover the chat: start it closed there (its toggle reopens it).
    app.load(None, None, None, js=CLOSE_SIDEBAR_ON_PHONES, **PRIVATE)


def build_app(
    settings: Settings,
    *,
    agent: Agent | None,
    toolset: Registry,
    knowledge: KnowledgeBase | None = None,
    ollama: OllamaLayer | None = None,
    status_probe: StatusProbe | None = None,
) -> gr.Blocks:
    """The whole UI. `agent` may be None (chat then explains why); Tools and Search work regardless."""
    probe = status_probe or _status_probe(settings, ollama)
    store = LazyStore(settings.data_dir)
    chat = ChatTab(settings, agent, toolset, store, probe, knowledge)
    side = Sidebar(store, agent, chat.chart_fn)
    choices, model = model_choices(probe.status(), settings)
    with gr.Blocks(title="Mac AI Advisor", analytics_enabled=False, fill_width=False) as app:
        session = gr.State(None)
        browser_id = gr.BrowserState(
            None, storage_key=BROWSER_STORAGE_KEY, secret=browser_secret(settings.data_dir)
        )
        bar = _sidebar()
        seen_models = gr.State(choices)
        gr.Markdown(
            "## Mac AI Advisor\nWhich Mac, which model, how fast, will it fit — answered by a local model "
            "with tools and cited passages. Nothing leaves this machine."
        )
        status = gr.Markdown(chat.status_line(), elem_id="ollama-status")
        page = PageState(session, browser_id, seen_models, status, gr.Timer(STATUS_REFRESH_S))
        with gr.Tabs():
            parts = _chat_tab(settings, choices, model)
            _tools_tab(toolset)
            _search_tab(knowledge)
            mount_documents_tab(
                settings,
                knowledge=knowledge,
                ollama=ollama,
                probe=probe,
                model_picker=parts.model,
                seen_models=seen_models,
            )
        _chat_api(chat, session)
        _wire_chat(chat, side, page, parts, bar)
        _wire_sidebar(chat, side, page, parts, bar)
        _wire_load(app, chat, side, page, parts, bar)
    # Chats wait on Ollama, not on the CPU: let many sessions stream at once (Ollama queues them itself).
    app.queue(default_concurrency_limit=32, max_size=256)
    return app


def _status_probe(settings: Settings, ollama: OllamaLayer | None) -> StatusProbe:
    """Its own client with a short timeout: a hung Ollama must not hold the status line for minutes."""
    from assistant.ollama import OllamaLayer

    probe_layer = OllamaLayer(settings.ollama_host, timeout_s=settings.probe_timeout_s) if ollama else None
    return StatusProbe(probe_layer, settings.ollama_host)
