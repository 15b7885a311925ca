"""Helpdesk voice agent: server, pipeline, services, storage."""
