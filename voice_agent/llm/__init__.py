"""The language model in a call: the llama.cpp service inside pipecat (``service``), the
compact prompt and tool-call convention (``prompt``), and what the model may say (``reply_guard``).
"""
