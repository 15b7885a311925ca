"""Who the caller is: transports that carry a call into the voice pipeline."""
