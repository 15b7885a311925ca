"""The nodes of a helpdesk call (pipecat.flows ``NodeConfig``), and each node's functions.

    greeting ──> triage ──> <category> specialist ──> wrap-up ──> goodbye
                   │  └──> ticket status
                   └─────> escalation (security incidents and P1: ticket + human)

The greeting asks who is calling and what the problem is. Triage gives the problem a category and
priority (a classifier, with the language model when unsure) and picks the specialist node; each
specialist has its own functions: search the runbooks, walk the steps one at a time, open a
ticket, look up a ticket, transfer to a human, end the call. Wrap-up reads back the ticket number
and asks whether there is anything else. Task messages are short: they stay in the model's
context for the rest of the call, and every prompt token costs time on a CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipecat.flows import FlowsFunctionSchema, NodeConfig

if TYPE_CHECKING:
    from voice_agent.flows.functions import HelpdeskFunctions

SPECIALISTS = {
    "account_access": "sign-in, passwords, locked accounts and access rights",
    "email": "Outlook, mailboxes, calendars and mail on phones",
    "network": "VPN, Wi-Fi, wired network, internet and network drives",
    "printer": "printers, print queues and scanners",
    "hardware": "computers, monitors, docks, keyboards and other devices",
    "software": "applications, installs, licences and business systems",
    "phone": "desk phones, softphones and call audio",
    "security": "viruses, phishing and lost or stolen devices",
    "other": "anything else",
}


def _task(text: str) -> list[dict]:
    return [{"role": "developer", "content": text}]  # supplementary to the system prompt


def _fn(name: str, description: str, handler, properties=None, required=()) -> FlowsFunctionSchema:
    return FlowsFunctionSchema(
        name=name,
        description=description,
        properties=properties or {},
        required=list(required),
        handler=handler,
        # quick and synchronous: pipecat would otherwise add its async-tool guidance (~120
        # tokens) to the system prompt and invalidate the model's cached prefix
        cancel_on_interruption=True,
    )


def record_caller(f: HelpdeskFunctions) -> FlowsFunctionSchema:
    return _fn(
        "record_caller",
        "Remember the caller's name and callback number.",
        f.record_caller,
        {"name": {"type": "string"}, "callback_number": {"type": "string"}},
    )


def triage_problem(f: HelpdeskFunctions) -> FlowsFunctionSchema:
    return _fn(
        "triage_problem",
        "Classify the caller's IT problem to route it.",
        f.triage_problem,
        {"description": {"type": "string", "description": "the problem in the caller's words"}},
        ["description"],
    )


def search_runbooks(f: HelpdeskFunctions) -> FlowsFunctionSchema:
    return _fn(
        "search_runbooks",
        "Find the company runbook for a problem and give its first step.",
        f.search_runbooks,
        {"query": {"type": "string"}},
        ["query"],
    )


def next_step(f: HelpdeskFunctions) -> FlowsFunctionSchema:
    return _fn(
        "next_step",
        "Give the next runbook step; worked=true when the last step fixed it.",
        f.next_step,
        {"worked": {"type": "boolean"}},
        ["worked"],
    )


def create_ticket(f: HelpdeskFunctions) -> FlowsFunctionSchema:
    return _fn(
        "create_ticket",
        "Open a ticket for a technician.",
        f.create_ticket,
        {"summary": {"type": "string"}},
        ["summary"],
    )


def ticket_status(f: HelpdeskFunctions) -> FlowsFunctionSchema:
    return _fn(
        "ticket_status",
        "Look up an existing ticket by its number (INC followed by digits).",
        f.ticket_status,
        {"number": {"type": "string"}},
        ["number"],
    )


def transfer_to_human(f: HelpdeskFunctions) -> FlowsFunctionSchema:
    return _fn(
        "transfer_to_human",
        "Transfer the caller to a human technician.",
        f.transfer_to_human,
        {"reason": {"type": "string"}},
    )


def end_call(f: HelpdeskFunctions) -> FlowsFunctionSchema:
    return _fn("end_call", "Say goodbye and end the call.", f.end_call)


def greeting_node(f: HelpdeskFunctions) -> NodeConfig:
    return {
        "name": "greeting",
        "task_messages": _task("Learn the caller's name and their IT problem."),
        "functions": [record_caller(f), triage_problem(f), ticket_status(f), transfer_to_human(f)],
        "respond_immediately": False,
    }


def specialist_node(f: HelpdeskFunctions, category: str) -> NodeConfig:
    area = SPECIALISTS.get(category, SPECIALISTS["other"])
    return {
        "name": f"{category}_support",
        "task_messages": _task(f"Topic: {area}. Help with the company's runbooks."),
        "functions": [
            search_runbooks(f),
            next_step(f),
            create_ticket(f),
            ticket_status(f),
            transfer_to_human(f),
            end_call(f),
        ],
        "respond_immediately": False,
    }


def ticket_status_node(f: HelpdeskFunctions) -> NodeConfig:
    return {
        "name": "ticket_status",
        "task_messages": _task("The caller asks about an existing ticket."),
        "functions": [ticket_status(f), create_ticket(f), transfer_to_human(f), end_call(f)],
        "respond_immediately": False,
    }


def escalate(f: HelpdeskFunctions) -> FlowsFunctionSchema:
    return _fn("escalate", "Open a priority ticket and hand over to a technician.", f.escalate)


def escalation_node(f: HelpdeskFunctions) -> NodeConfig:
    return {
        "name": "escalation",
        "task_messages": _task("Urgent or security problem: open a priority ticket."),
        "functions": [escalate(f), transfer_to_human(f), end_call(f)],
        "respond_immediately": False,
    }


def wrap_up_node(f: HelpdeskFunctions) -> NodeConfig:
    return {
        "name": "wrap_up",
        "task_messages": _task("Ask if there is anything else; end the call if not."),
        "functions": [triage_problem(f), ticket_status(f), end_call(f)],
        "respond_immediately": False,
    }
