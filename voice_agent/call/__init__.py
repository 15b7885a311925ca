"""One call, whatever the transport: the runner that owns it, the pipeline it runs, what is
recorded of each turn, and what keeps it audible (acknowledgement, turn end, watchdog, admission).
"""
